"""Building models for a StudentShape with transformers' Auto classes, and cutting attention heads.

Imports torch and transformers inside functions: `kdbench --help` must not pay for them.
"""

from __future__ import annotations

import copy

from kdbench.core.errors import KdbenchError
from kdbench.zoo.students import StudentShape


def student_config(teacher_config, shape: StudentShape):
    """The teacher's config (labels and problem type included) with the student's sizes (heads before pruning)."""
    cfg = copy.deepcopy(teacher_config)
    cfg.num_hidden_layers = shape.layers
    cfg.num_attention_heads = shape.config_heads or shape.heads
    cfg.hidden_size = shape.hidden
    cfg.intermediate_size = shape.ffn
    cfg.pruned_heads = {}  # pruning, if any, is applied (and recorded) by build_model
    if hasattr(cfg, "embedding_size"):  # ALBERT/ELECTRA-style factorised embeddings follow the width
        cfg.embedding_size = shape.hidden
    return cfg


# Attention blocks by architecture: (Q, K, V) linear names on the self-attention module, and the path from the
# self-attention's parent to the output projection. Covers BERT, RoBERTa, ELECTRA (query/key/value + output.dense)
# and MPNet (q/k/v/o on one module).
_QKV_LAYOUTS = ((("query", "key", "value"), ("output", "dense"), "self"), (("q", "k", "v"), ("o",), None))


def _slice_linear(layer, keep: int, dim: int):
    """A new nn.Linear keeping the first `keep` outputs (dim=0) or inputs (dim=1) of `layer`."""
    import torch

    w = layer.weight.narrow(dim, 0, keep)
    out_f, in_f = w.shape
    new = torch.nn.Linear(in_f, out_f, bias=layer.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if layer.bias is not None:
            new.bias.copy_(layer.bias if dim == 1 else layer.bias.narrow(0, 0, keep))
    return new


def prune_heads(model, heads: int) -> int:
    """Keep the first `heads` attention heads of every layer (their projections shrink); return layers changed.

    Works on the module attributes that transformers' own `prune_heads` edits (num_attention_heads, all_head_size),
    which exist in transformers 4.x and 5.x, instead of that method, which 5.x dropped for several encoders.
    """
    changed = 0
    for module in list(model.modules()):  # a list: the loop replaces child modules
        for qkv, out_path, self_name in _QKV_LAYOUTS:
            attn = getattr(module, self_name, None) if self_name else module
            if attn is None or not all(hasattr(attn, n) for n in qkv) or not hasattr(attn, "num_attention_heads"):
                continue
            head_dim = int(attn.attention_head_size)
            keep = heads * head_dim
            for n in qkv:
                setattr(attn, n, _slice_linear(getattr(attn, n), keep, dim=0))
            parent, *rest = (module, *out_path)
            for n in rest[:-1]:
                parent = getattr(parent, n)
            setattr(parent, rest[-1], _slice_linear(getattr(parent, rest[-1]), keep, dim=1))
            attn.num_attention_heads = heads
            attn.all_head_size = keep
            if hasattr(attn, "config"):
                attn.config = copy.copy(attn.config)
                attn.config.num_attention_heads = heads
            changed += 1
    for module in list(model.modules()):  # MPNet: one relative-position bias per head, shared by all layers
        bias = getattr(module, "relative_attention_bias", None)
        if bias is not None and hasattr(module, "n_heads"):
            import torch

            new = torch.nn.Embedding(bias.num_embeddings, heads, device=bias.weight.device, dtype=bias.weight.dtype)
            with torch.no_grad():
                new.weight.copy_(bias.weight[:, :heads])
            module.relative_attention_bias = new
            module.n_heads = heads
    if changed == 0:
        raise KdbenchError(f"cannot prune attention heads of {type(model).__name__}: unknown attention layout")
    return changed


def build_model(teacher_config, shape: StudentShape, device: str = "cpu", attn_implementation: str | None = None):
    """A randomly initialised sequence-classification model of the student's shape, in eval mode."""
    import torch
    from transformers import AutoModelForSequenceClassification

    cfg = student_config(teacher_config, shape)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with torch.device(device):
        model = AutoModelForSequenceClassification.from_config(cfg, **kwargs)
    if shape.pruned:
        prune_heads(model, shape.heads)
        # Recorded the way transformers 4.x records its own pruning, so `from_pretrained` rebuilds the narrower
        # projections before loading the weights (it prunes the listed heads; we kept the first ones).
        model.config.pruned_heads = {i: list(range(shape.heads, shape.config_heads)) for i in range(shape.layers)}
    return model.eval()


def load_trained(model_dir, device: str = "cpu"):
    """A saved sequence-classification model (fp32, eval mode), pruned-head students included.

    transformers 4.x rebuilds pruned projections from `config.pruned_heads` inside `from_pretrained`; 5.x dropped
    that for several encoders and then refuses the narrower weights. So a pruned model is built at full width from its
    config, cut with `prune_heads` (which keeps the first heads, as kdbench records them) and loaded from its files.
    """
    from pathlib import Path

    model_dir = Path(model_dir)
    try:
        return _load_trained(model_dir, device)
    except KdbenchError:
        raise
    except Exception as exc:  # OSError, SafetensorError, ValueError...: missing or corrupt files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise KdbenchError(f"cannot load the model in {model_dir}: {first}") from None


def _load_trained(model_dir, device: str):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    cfg = AutoConfig.from_pretrained(model_dir)
    pruned = {int(k): list(v) for k, v in (getattr(cfg, "pruned_heads", None) or {}).items()}
    if not pruned:
        return AutoModelForSequenceClassification.from_pretrained(model_dir, **fp32_weights()).eval().to(device)
    import torch
    from safetensors.torch import load_file

    removed = {len(v) for v in pruned.values()}
    if len(removed) != 1:
        raise KdbenchError(f"{model_dir}: layers have different numbers of pruned heads; kdbench cannot load it")
    keep = cfg.num_attention_heads - removed.pop()
    cfg.pruned_heads = {}
    with torch.device("cpu"):
        model = AutoModelForSequenceClassification.from_config(cfg, **fp32_weights())
    prune_heads(model, keep)
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise KdbenchError(f"{model_dir} has no *.safetensors weights")
    state = {k: v for f in files for k, v in load_file(str(f)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # buffers such as position_ids are not saved; any missing parameter means the files do not fit the config
    missing = [k for k in missing if k in dict(model.named_parameters())]
    if missing or unexpected:
        raise KdbenchError(
            f"{model_dir}: weights do not fit its config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.config.pruned_heads = pruned
    return model.float().eval().to(device)


def count_parameters(teacher_config, shape: StudentShape) -> int:
    """Exact parameter count of the student with a 2-label head, built on the meta device (no memory, no time)."""
    model = build_model(teacher_config, shape, device="meta")
    return sum(p.numel() for p in model.parameters())


def attention_implementation(model) -> str:
    """The attention implementation transformers picked for `model` (eager, sdpa, flash_attention_2, ...)."""
    impl = getattr(model.config, "_attn_implementation", None)
    return str(impl) if impl else "eager"


def quiet_loading() -> None:
    """No "Loading weights" progress bar (transformers 5 draws one per from_pretrained): models load in a blink, and
    a command that then fails must print one line."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def fp32_weights() -> dict:
    """from_pretrained keyword for fp32 weights whatever the checkpoint's dtype: `dtype` since transformers 4.56
    (5.x keeps the saved dtype without it), `torch_dtype` before. Every kdbench load goes through it, so it also turns
    the loading bar off."""
    import torch
    import transformers

    quiet_loading()

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch.float32}
