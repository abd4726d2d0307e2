"""The models a profile times and how they are grouped: the plan (the teacher's config, the zoo resolved against
it, trained runs), the groups timed together (comparison_groups), and opening a group's sessions one model at a time
(open_group) and letting them go (release)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kdbench.core.errors import KdbenchError
from kdbench.engines.base import ModelEntry
from kdbench.engines.registry import check_backend
from kdbench.measure.config import ProfileConfig
from kdbench.zoo.flops import sequence_flops
from kdbench.zoo.students import TEACHER_NAME, StudentShape, load_zoo, resolve, select, teacher_as_student
from kdbench.zoo.teacher import load_teacher_config, max_sequence_length, teacher_shape


@dataclass(frozen=True)
class RunModel:
    """A trained model from a run folder: a distilled student (with its exported ONNX variants) or its teacher."""

    name: str  # "<task>/<student>" or "<task>/teacher"
    shape: StudentShape
    model_dir: Path  # a save_pretrained folder
    model_type: str
    variants: dict  # ONNX variant -> file, only those whose parity passed
    info: dict  # task, student, run_dir
    config: object = None  # its transformers config (what an engine's cache is keyed on)


@dataclass(frozen=True)
class Plan:
    """The resolved work: the teacher config, every zoo shape to profile (teacher first) and trained run models."""

    teacher_config: object
    teacher: dict
    shapes: tuple[StudentShape, ...]
    runs: tuple[RunModel, ...] = ()

    @property
    def count(self) -> int:
        """Models profiled per grid point and backend."""
        return len(self.shapes) + len(self.runs)


def run_models(run_dir: Path, seen: set[str], seq_lens: tuple[int, ...], force: bool = False) -> list[RunModel]:
    """The student of a run folder and (once per task) its fine-tuned teacher; ONNX variants whose parity check
    failed are left out unless `force`."""
    from transformers import AutoConfig

    from kdbench.results.run import Run

    run = Run(run_dir)
    info = run.finished_config()
    task, student = info["task"], info["student"]
    s = info["student_shape"]
    shape = StudentShape(
        f"{task}/{student}", s["description"], s["group"], s["layers"], s["heads"], s["head_dim"], s["hidden"], s["ffn"]
    )
    variants = run.variants(force)  # each file checked against the hash its parity entry recorded
    student_cfg = AutoConfig.from_pretrained(run.student_dir)
    out = [
        RunModel(
            shape.name,
            shape,
            run.student_dir,
            student_cfg.model_type,
            variants,
            {"task": task, "student": student, "run_dir": str(run_dir)},
            student_cfg,
        )
    ]
    name = f"{task}/{TEACHER_NAME}"
    if name not in seen:
        seen.add(name)
        teacher_dir = Path(info["teacher_dir"])
        t_config = load_teacher_config(str(teacher_dir))
        limit = max_sequence_length(t_config)
        if limit is not None and max(seq_lens) > limit:
            raise KdbenchError(f"--seq-lens {max(seq_lens)} is longer than the teacher of {run_dir} allows ({limit})")
        t = teacher_shape(t_config, str(teacher_dir))
        tshape = replace(teacher_as_student(t), name=name)
        out.append(
            RunModel(
                name,
                tshape,
                teacher_dir,
                t.model_type,
                {},
                {"task": task, "student": TEACHER_NAME, "run_dir": str(run_dir)},
                t_config,
            )
        )
    return out


def plan(cfg: ProfileConfig) -> Plan:
    """Load the teacher's config and resolve the chosen students against it; check that this machine runs every
    (engine, precision) asked for (all errors before any timing)."""
    for name in cfg.backends:
        backend = check_backend(name)
        for dtype in cfg.dtypes:
            if backend.skips(dtype) is None:
                backend.check(cfg.device, dtype)
    teacher_config = load_teacher_config(cfg.teacher)
    t = teacher_shape(teacher_config, cfg.teacher)
    specs = select(load_zoo(cfg.students_dir), cfg.students)
    # with trained runs and no zoo students, the runs' own teachers are the references: no random zoo teacher
    shapes = () if cfg.runs and not specs else (teacher_as_student(t), *(resolve(s, t) for s in specs))
    limit = max_sequence_length(teacher_config)
    if shapes and limit is not None and max(cfg.seq_lens) > limit:
        raise KdbenchError(
            f"--seq-lens {max(cfg.seq_lens)} is longer than teacher {cfg.teacher!r} allows "
            f"({limit} positions); choose lengths up to {limit}"
        )
    teacher = {"name": cfg.teacher, "model_type": t.model_type, **teacher_as_student(t).to_dict()}
    seen: set[str] = set()
    runs = tuple(m for r in cfg.runs for m in run_models(r, seen, cfg.seq_lens, cfg.force))
    return Plan(teacher_config, teacher, shapes, runs)


def describe_students(p: Plan, seq_lens: tuple[int, ...]) -> dict[str, dict]:
    """Shape, exact parameter count and analytic FLOPs of every planned model."""
    from kdbench.zoo.modeling import count_parameters

    return {
        s.name: {
            **s.to_dict(),
            "parameters": count_parameters(p.teacher_config, s),
            "flops_per_sequence": {str(n): sequence_flops(s, n) for n in seq_lens},
        }
        for s in p.shapes
    }


def make_inputs(vocab_size: int, batch: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded random token ids (no padding) for a timing call; every backend gets the same arrays."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, size=(batch, seq), dtype=np.int64)  # skip special ids at the bottom
    return {"input_ids": ids, "attention_mask": np.ones((batch, seq), dtype=np.int64)}


Progress = Callable[[str, int], None]  # (description, cells advanced) -> None
GROUP_TEACHERS = 3.0  # a group holds at most the parameters of this many teachers (a verdict's pair may hold more):
# what one engine keeps open at once


def entries(p: Plan) -> list[ModelEntry]:
    from kdbench.zoo.modeling import student_config

    model_type = p.teacher["model_type"]
    entries = [ModelEntry(s.name, s, model_type, config=student_config(p.teacher_config, s)) for s in p.shapes]
    return entries + [ModelEntry(m.name, m.shape, m.model_type, m.variants, m.config) for m in p.runs]


def comparison_groups(p: Plan, students: dict[str, dict]) -> list[tuple[list[str], list[str]]]:
    """The models timed together, each group beside its teacher: (names, the students whose comparison a verdict rests
    on). Per teacher, each head-reduced student comes first with its pruned twin (a verdict's group); the others
    follow in groups of at most GROUP_TEACHERS teachers' parameters, the teacher's own included - so a profile keeps
    open about three teachers' worth of models, never the whole zoo."""
    from kdbench.measure.comparisons import head_reduced, pruned_twin
    from kdbench.measure.result import teacher_of

    names = [e.name for e in entries(p)]
    groups = []
    for reference in dict.fromkeys(teacher_of(n) for n in names):
        mine = [n for n in names if n != reference and teacher_of(n) == reference]
        with_teacher = [reference] if reference in names else []
        paired: list[str] = []
        for n in (n for n in head_reduced(students) if n in mine):
            twin = pruned_twin(students, n)
            pair = [n, twin] if twin in mine and twin not in paired else [n]
            groups.append((with_teacher + pair, [n]))
            paired += pair
        limit = GROUP_TEACHERS * students[reference]["parameters"] if reference in students else float("inf")
        rest: list[str] = []
        for n in (n for n in mine if n not in paired):
            if rest and sum(students[m]["parameters"] for m in with_teacher + rest + [n]) > limit:
                groups.append((with_teacher + rest, []))
                rest = []
            rest.append(n)
        if rest or (not mine and with_teacher):
            groups.append((with_teacher + rest, []))
    return groups


def vocab_size(p: Plan) -> int:
    """The token ids every model takes: the smallest vocabulary among the teacher and the trained runs."""
    from transformers import AutoConfig

    sizes = [p.teacher_config.vocab_size] if p.shapes else []
    sizes += [AutoConfig.from_pretrained(m.model_dir).vocab_size for m in p.runs]
    return min(sizes)


def describe_runs(p: Plan, cfg: ProfileConfig, students: dict) -> None:
    """Trained runs' shape, parameters and FLOPs, from their saved files (the models load later, group by group)."""
    from safetensors import safe_open

    for m in p.runs:
        count = 0
        for f in sorted(Path(m.model_dir).glob("*.safetensors")):
            with safe_open(str(f), framework="np") as fh:
                for key in fh.keys():
                    shape = fh.get_slice(key).get_shape()
                    count += int(np.prod(shape)) if shape else 1
        if not count:  # weights in another format (pytorch_model.bin): load them once to count
            from kdbench.zoo.modeling import load_trained

            count = sum(t.numel() for t in load_trained(m.model_dir).parameters())
        students[m.name] = {
            **m.shape.to_dict(),
            **m.info,
            "parameters": count,
            "flops_per_sequence": {str(n): sequence_flops(m.shape, n) for n in cfg.seq_lens},
        }


def load_model(p: Plan, cfg: ProfileConfig, name: str, progress: Progress):
    """A planned model: a zoo shape built with seeded random weights, or a trained run's student or teacher loaded."""
    import torch

    from kdbench.zoo.modeling import build_model, load_trained

    for shape in p.shapes:
        if shape.name == name:
            progress(f"building {name}", 0)
            torch.manual_seed(cfg.seed)
            return build_model(p.teacher_config, shape)
    run = next(m for m in p.runs if m.name == name)
    progress(f"loading {name}", 0)
    return load_trained(run.model_dir)


def open_group(p: Plan, cfg, backend, dtype: str, names: list[str], teachers: dict, progress: Progress) -> dict:
    """Sessions of one group on one engine, by label then model name (a trained run's ONNX variants each get a label
    of their own). Models are built one at a time and only when the engine asks (ONNX Runtime with its graph in the
    cache builds none); a teacher's is kept in `teachers` for the next groups, a student's let go once its session
    holds what it needs."""
    from kdbench.measure.result import teacher_of

    by_name = {e.name: e for e in entries(p)}
    by_label: dict[str, dict] = {}

    def load(name: str):
        if name not in teachers:
            model = load_model(p, cfg, name, progress)
            if teacher_of(name) != name:
                return model
            teachers[name] = model
        return teachers[name]

    for name in names:
        opened = backend.open(by_name[name], lambda n=name: load(n), cfg.device, dtype, cfg.threads, progress)
        for label, session in opened.items():
            by_label.setdefault(label, {})[name] = session
    return by_label


def release(cfg: ProfileConfig) -> None:
    """Hand a finished group's memory back before the next one opens."""
    import ctypes
    import gc
    import sys

    gc.collect()
    if sys.platform == "linux":  # glibc keeps freed blocks for reuse; hand them back, or the next group's pile on top
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
    if cfg.device == "cuda":
        import torch

        torch.cuda.empty_cache()
