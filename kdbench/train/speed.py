"""Training-step speed: samples/s of one optimisation step of fine-tuning (the teacher alone) or of distillation (a
student with the teacher's forward pass and the paper's three losses), and the share of the card's bf16 ceiling that
step reaches (model FLOPs utilisation, MFU).

This times the step itself, with random token ids of a fixed length and no data loading, evaluation or checkpoints:
the upper bound a training loop can reach. A Trainer run's own samples/s (in each run's metrics.json) shows what the
rest of the loop costs on top.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.core.env import check_device
from kdbench.measure.clock import clock_for
from kdbench.zoo.flops import sequence_flops
from kdbench.zoo.students import StudentShape


@dataclass(frozen=True)
class StepSpeed:
    """One measured training step: what ran, at which size, and its raw per-step seconds."""

    kind: str  # "finetune" (the teacher alone) or "distill" (student + teacher forward + three losses)
    model: str  # the trained model's name (the student for distill)
    batch_size: int  # sequences per step
    seq_len: int  # tokens per sequence
    dtype: str  # bf16 (autocast) or fp32
    device: str  # cpu or cuda
    flops_per_step: int  # analytic: 3 x forward of the trained model (forward + backward) + the teacher's forward
    samples_s: tuple[float, ...]  # seconds of each timed step

    @property
    def p50(self) -> float:
        import numpy as np

        return float(np.median(self.samples_s))

    @property
    def samples_per_s(self) -> float:
        return self.batch_size / self.p50

    @property
    def tflops(self) -> float:
        return self.flops_per_step / self.p50 / 1e12

    def to_dict(self, ceiling_tflops: float | None = None) -> dict:
        return {
            "kind": self.kind,
            "model": self.model,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "dtype": self.dtype,
            "device": self.device,
            "flops_per_step": self.flops_per_step,
            "p50_s": self.p50,
            "samples_per_s": self.samples_per_s,
            "tokens_per_s": self.samples_per_s * self.seq_len,
            "tflops": self.tflops,
            "mfu": self.tflops / ceiling_tflops if ceiling_tflops else None,
            "samples_s": list(self.samples_s),
        }


def _step_fn(
    teacher_config,
    teacher: StudentShape,
    student: StudentShape | None,
    batch: int,
    seq: int,
    device: str,
    dtype: str,
    seed: int,
):
    """Build the models, optimizer and inputs; return the function that runs one optimisation step."""
    import contextlib

    import torch

    from kdbench.measure.profile import make_inputs
    from kdbench.train.losses import feature_loss, hard_loss, soft_loss
    from kdbench.train.student import layer_map
    from kdbench.zoo.modeling import build_model

    torch.manual_seed(seed)
    trained = build_model(teacher_config, student or teacher, device=device).train()
    arrays = make_inputs(teacher_config.vocab_size, batch, seq, seed)
    inputs = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
    labels = torch.randint(0, trained.config.num_labels, (batch,), device=device)
    params = list(trained.parameters())
    frozen = None
    projection = torch.nn.Identity()
    if student is not None:
        frozen = build_model(teacher_config, teacher, device=device).eval()
        if student.hidden != teacher.hidden:
            projection = torch.nn.Linear(student.hidden, teacher.hidden, device=device)
            params += list(projection.parameters())
        lmap = layer_map(student.layers, teacher.layers)
    optimizer = torch.optim.AdamW(params, lr=5e-5, **({"fused": True} if device == "cuda" else {}))
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            if frozen is None:
                loss = trained(**inputs, labels=labels).loss
            else:
                out = trained(**inputs, output_hidden_states=True)
                with torch.no_grad():
                    ref = frozen(**inputs, output_hidden_states=True)
                loss = 0.33 * hard_loss(out.logits, labels, False) + 0.33 * soft_loss(
                    out.logits, ref.logits, 2.0, False
                )
                loss = loss + 0.33 * feature_loss(
                    out.hidden_states, ref.hidden_states, lmap, inputs["attention_mask"], projection, "mse"
                )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def measure_step(
    teacher_config,
    teacher: StudentShape,
    student: StudentShape | None = None,
    batch_size: int = 12,
    seq_len: int = 128,
    device: str = "cpu",
    dtype: str = "fp32",
    warmup_runs: int = 3,
    min_runs: int = 10,
    min_time_s: float = 0.5,
    max_time_s: float = 10.0,
    seed: int = 0,
) -> StepSpeed:
    """Time the fine-tuning step of `teacher` (student None) or the distillation step of `student` from it."""
    import torch

    from kdbench.measure.clock import measure

    check_device(device)
    step = _step_fn(teacher_config, teacher, student, batch_size, seq_len, device, dtype, seed)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    samples = measure(step, sync, clock_for(device), warmup_runs, min_runs, min_time_s, max_time_s)
    trained = student or teacher
    flops = 3 * sequence_flops(trained, seq_len) + (sequence_flops(teacher, seq_len) if student else 0)
    return StepSpeed(
        "distill" if student else "finetune",
        trained.name,
        batch_size,
        seq_len,
        dtype,
        device,
        flops * batch_size,
        tuple(samples),
    )
