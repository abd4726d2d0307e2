"""The paper's three losses: cross-entropy on the labels, KL divergence to the teacher's softened logits, and the
distance between mapped hidden states (MSE for regression where the first two take logits)."""

from __future__ import annotations


def hard_loss(student_logits, labels, regression: bool):
    """Cross-entropy on the labels (mean squared error for regression)."""
    import torch.nn.functional as F

    if regression:
        return F.mse_loss(student_logits.squeeze(-1), labels.float())
    return F.cross_entropy(student_logits, labels)


def soft_loss(student_logits, teacher_logits, temperature: float, regression: bool):
    """KL(teacher || student) on temperature-softened distributions, times T^2 (MSE to the teacher for regression)."""
    import torch.nn.functional as F

    if regression:
        return F.mse_loss(student_logits.squeeze(-1), teacher_logits.squeeze(-1))
    t = temperature
    return (
        F.kl_div(
            F.log_softmax(student_logits / t, -1),
            F.log_softmax(teacher_logits / t, -1),
            log_target=True,
            reduction="batchmean",
        )
        * t
        * t
    )


def feature_loss(student_states, teacher_states, lmap: list[int], attention_mask, projection, kind: str):
    """Mean over mapped layer pairs of the per-token MSE or (1 - cosine) between projected student states and
    teacher states, averaged over real (unpadded) tokens. States are each layer's output (index 0 = embeddings)."""
    import torch.nn.functional as F

    mask = attention_mask.unsqueeze(-1).to(student_states[1].dtype)
    tokens = mask.sum()
    total = 0.0
    for i, j in enumerate(lmap):
        s = projection(student_states[i + 1])
        t = teacher_states[j + 1]
        if kind == "mse":
            per_token = ((s - t) ** 2).mean(-1, keepdim=True)
        else:
            per_token = 1 - F.cosine_similarity(s, t, dim=-1).unsqueeze(-1)
        total = total + (per_token * mask).sum() / tokens
    return total / len(lmap)
