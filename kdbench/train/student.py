"""The student built from the fine-tuned teacher: which teacher layer each student layer follows (first to first,
last to last, the rest spread evenly) and which teacher tensors it starts from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


def layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Teacher layer for each student layer: first to first, last to last, the rest spread uniformly between."""
    assert 0 < student_layers <= teacher_layers, "resolve() rejects students deeper than the teacher"
    if student_layers == 1:
        return [teacher_layers - 1]
    step = (teacher_layers - 1) / (student_layers - 1)
    return [round(i * step) for i in range(student_layers)]


@dataclass
class InitReport:
    """Which student tensors came from the teacher: copied whole, sliced (pruned heads, or narrower with --init
    slice), or left random."""

    copied: list[str] = field(default_factory=list)
    sliced: list[str] = field(default_factory=list)
    random: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.copied)} tensors copied, {len(self.sliced)} sliced from the teacher's, "
            f"{len(self.random)} random"
        )


_LAYER = re.compile(r"\.layer\.(\d+)\.")


def init_from_teacher(student, teacher, lmap: list[int], pruned: bool, slice_all: bool = False) -> InitReport:
    """Copy teacher tensors into the student where shapes allow.

    A student tensor in layer i takes the teacher's tensor of layer lmap[i]; other tensors (embeddings, classifier)
    take the same name. Equal shapes are copied; for pruned-head students (teacher's head width kept) the attention
    tensors take the teacher's first heads, matching `kdbench.zoo.modeling.prune_heads`. With `slice_all` every smaller
    tensor takes the teacher's leading slice ("weight selection"): a narrower student keeps the teacher's first
    hidden dimensions in every layer alike, so the residual stream stays consistent from embeddings to classifier.
    """
    import torch

    report = InitReport()
    t_params = dict(teacher.named_parameters())
    with torch.no_grad():
        for name, param in student.named_parameters():
            t_name = _LAYER.sub(lambda m: f".layer.{lmap[int(m.group(1))]}.", name)
            src = t_params.get(t_name)
            if src is None:
                report.random.append(name)
            elif src.shape == param.shape:
                param.copy_(src)
                report.copied.append(name)
            elif (
                (pruned or slice_all)
                and src.dim() == param.dim()
                and all(s <= t for s, t in zip(param.shape, src.shape, strict=True))
            ):
                param.copy_(src[tuple(slice(0, s) for s in param.shape)])
                report.sliced.append(name)
            else:
                report.random.append(name)
    return report


def build_student(teacher_model, shape, init: str):
    """The student model for `shape`, initialised from the fine-tuned teacher (or randomly)."""
    from kdbench.zoo.modeling import build_model

    student = build_model(teacher_model.config, shape)  # labels and problem type follow the teacher
    lmap = layer_map(shape.layers, teacher_model.config.num_hidden_layers)
    report = (
        InitReport(random=[n for n, _ in student.named_parameters()])
        if init == "random"
        else init_from_teacher(student, teacher_model, lmap, shape.pruned, slice_all=init == "slice")
    )
    return student.train(), lmap, report
