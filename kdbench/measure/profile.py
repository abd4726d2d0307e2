"""`kdbench profile`: time the teacher and its students on each backend x device x batch size x sequence length.

Read top to bottom: ProfileConfig says what to measure, `measure` is the timing loop, `plan` resolves the zoo against
the teacher, and `run_profile` builds each model once and walks the grid.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from kdbench.core import env, faults
from kdbench.core.env import DEVICES, check_device
from kdbench.core.errors import ConfigError, KdbenchError
from kdbench.core.names import check_choice
from kdbench.engines.base import DTYPES, ModelEntry
from kdbench.engines.registry import BACKENDS, check_backend
from kdbench.measure.clock import Clock, Target, clock_for, measure_interleaved, warm_up
from kdbench.measure.result import Cell, ProfileResult
from kdbench.measure.stats import MIN_BLOCKS, MIN_SAMPLES
from kdbench.zoo.flops import sequence_flops
from kdbench.zoo.students import TEACHER_NAME, StudentShape, load_zoo, resolve, select, teacher_as_student
from kdbench.zoo.teacher import DEFAULT_TEACHER, load_teacher_config, max_sequence_length, teacher_shape

DEFAULT_STUDENTS = "paper,pruned"  # the paper's eight and the pruned-head variants the head verdict compares against


@dataclass(frozen=True)
class ProfileConfig:
    """What `kdbench profile` measures and how long it measures each cell."""

    teacher: str = DEFAULT_TEACHER  # hub id or local model folder; only its config is read
    students: str = DEFAULT_STUDENTS  # comma-separated names or groups (paper, heads, pruned, custom, all)
    students_dir: Path | None = None  # folder of student .toml files; None: the shipped zoo
    backends: tuple[str, ...] = ("torch", "onnxruntime")  # inference engines to time
    device: str = "cpu"  # cpu or cuda
    dtypes: tuple[str, ...] = ("fp32",)  # precisions for PyTorch engines (bf16/fp16 on CPU need AMX or AVX512 for it)
    dtype: str | None = None  # one precision (the option's earlier, single form): sets dtypes
    batch_sizes: tuple[int, ...] = (1,)  # sequences per call (the default grid fits in about 5 minutes on 2 cores)
    seq_lens: tuple[int, ...] = (128,)  # tokens per sequence
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)  # intra-op threads on CPU
    warmup_runs: int = 2  # calls before timing starts (excluded from the samples)
    warmup_time_s: float = 0.5  # seconds of warm-up at least: caches, allocator and thread pools settle
    min_runs: int = MIN_SAMPLES  # timed calls at least (fewer: the cell carries no verdict)
    min_blocks: int = MIN_BLOCKS  # separate measuring blocks (~0.25 s each, interleaved) the calls must span at least
    smoke: bool = False  # a smoke run (--quick): tables only, never a verdict
    min_time_s: float = 1.0  # seconds of timed calls at least, per cell
    max_time_s: float = 20.0  # seconds per cell at most, even before min_runs (two samples are always taken)
    seed: int = 0  # seeds the random weights, the token ids and the bootstrap
    output: Path = Path("reports/profile.json")  # where the result file is written
    runs: tuple[
        Path, ...
    ] = ()  # run folders from `kdbench distill`: trained students, their teachers and ONNX variants
    force: bool = False  # also time a run's ONNX variants whose parity check failed (their speed is still real)
    breakdown: bool = False  # also attribute each model's eager PyTorch time to operator groups (first batch, length)

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        if self.dtype is not None:
            check_choice("dtype", self.dtype, DTYPES)
            object.__setattr__(self, "dtypes", (self.dtype,))
        if not isinstance(self.dtypes, tuple | list) or not self.dtypes:
            raise ConfigError("dtypes", f"must name at least one of: {', '.join(DTYPES)}")
        for d in self.dtypes:
            check_choice("dtypes", d, DTYPES)
        object.__setattr__(self, "dtypes", tuple(dict.fromkeys(self.dtypes)))
        if not isinstance(self.backends, tuple | list) or not self.backends:
            raise ConfigError("backends", f"must name at least one of: {', '.join(BACKENDS)}")
        for b in self.backends:
            check_choice("backends", b, BACKENDS)
        for name in ("batch_sizes", "seq_lens"):
            values = getattr(self, name)
            if not isinstance(values, tuple | list) or not values or not all(_positive_int(v) for v in values):
                raise ConfigError(name, f"must be positive integers, got {_shown(values)}")
        for name in ("threads", "min_runs", "min_blocks", "warmup_runs", "seed"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be an integer, got {getattr(self, name)!r}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError("seed", f"must be from 0 to 2**32 - 1, got {self.seed}")
        if self.threads < 1:
            raise ConfigError("threads", f"must be at least 1, got {self.threads}")
        if self.min_runs < 2:
            raise ConfigError("min_runs", f"must be at least 2 (a spread needs two samples), got {self.min_runs}")
        if self.min_blocks < 1:
            raise ConfigError("min_blocks", f"must be at least 1, got {self.min_blocks}")
        for name in ("warmup_runs", "warmup_time_s", "min_time_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise ConfigError(name, f"must be a finite number of at least 0, got {value!r}")
        max_time = self.max_time_s
        if isinstance(max_time, bool) or not isinstance(max_time, int | float) or not 0 < max_time < float("inf"):
            raise ConfigError("max_time_s", f"must be positive and finite, got {max_time!r}")
        if not isinstance(self.students, str):
            raise ConfigError("students", f"must be comma-separated names, got {self.students!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["students_dir"] = str(self.students_dir) if self.students_dir else None
        d["output"] = str(self.output)
        d["runs"] = [str(r) for r in self.runs]
        return d


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _shown(values) -> object:
    return list(values) if isinstance(values, tuple | list) else values


def _format(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


DEFAULTS = {f.name: _format(f.default) for f in fields(ProfileConfig) if f.default is not MISSING}  # for --help


QUICK = dict(
    students="3L,4AH,4AH_pruned",
    batch_sizes=(1,),
    seq_lens=(32,),
    warmup_runs=1,
    warmup_time_s=0.3,
    min_runs=5,
    min_blocks=1,
    min_time_s=0.3,
    max_time_s=5.0,
    smoke=True,
)  # --quick: a smoke run in seconds; it prints tables and no verdict


def configure(quick: bool = False, **given) -> ProfileConfig:
    """The configuration of one `kdbench profile`: the options given (None: not given), over the --quick settings
    when `quick`, over the defaults; its output file and device are checked before anything is measured."""
    from kdbench.core.env import check_device
    from kdbench.core.io import check_writable

    settings = {**(QUICK if quick else {}), **{k: v for k, v in given.items() if v is not None}}
    cfg = ProfileConfig(**settings)
    check_writable(cfg.output)
    check_device(cfg.device)
    return cfg


@dataclass(frozen=True)
class RunModel:
    """A trained model from a run folder: a distilled student (with its exported ONNX variants) or its teacher."""

    name: str  # "<task>/<student>" or "<task>/teacher"
    shape: StudentShape
    model_dir: Path  # a save_pretrained folder
    model_type: str
    variants: dict  # ONNX variant -> file, only those whose parity passed
    info: dict  # task, student, run_dir


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


def _run_models(run_dir: Path, seen: set[str], seq_lens: tuple[int, ...], force: bool = False) -> list[RunModel]:
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
    runs = tuple(m for r in cfg.runs for m in _run_models(r, seen, cfg.seq_lens, cfg.force))
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


def _entries(p: Plan) -> list[ModelEntry]:
    entries = [ModelEntry(s.name, s, p.teacher["model_type"]) for s in p.shapes]
    return entries + [ModelEntry(m.name, m.shape, m.model_type, m.variants) for m in p.runs]


def _open_sessions(p: Plan, cfg: ProfileConfig, backend, dtype: str, models: dict, progress: Progress) -> dict:
    """Sessions by label, then by model name: one label per engine variant (a trained run's ONNX variants each get
    their own, "onnxruntime:int8"), so each is a table and a grid column of its own."""
    by_label: dict[str, dict] = {}
    for entry in _entries(p):
        for label, session in backend.open(entry, models[entry.name], cfg.device, dtype, cfg.threads, progress).items():
            by_label.setdefault(label, {})[entry.name] = session
    return by_label


def _measure_point(cfg: ProfileConfig, sessions: dict, arrays: dict, clock: Clock, progress: Progress) -> dict:
    """Warm every session up at one (batch, seq) point, then time them interleaved; return name -> (samples, blocks,
    (memory MiB, how measured), (first call s, warm-up s))."""
    targets, memory, warm = [], {}, {}
    for name, session in sessions.items():
        inputs = session.prepare(arrays)
        progress(f"warming up {name}", 0)
        warm[name] = warm_up(
            lambda s=session, x=inputs: s.run(x), session.synchronize, clock, cfg.warmup_runs, cfg.warmup_time_s
        )
        memory[name] = session.memory(inputs)  # after warm-up: caches and workspaces exist, as in serving
        targets.append(
            Target(name, lambda s=session, x=inputs: s.run(x), session.synchronize, min_blocks=cfg.min_blocks)
        )
    measure_interleaved(
        targets,
        clock,
        cfg.min_runs,
        cfg.min_time_s,
        cfg.max_time_s,
        on_block=lambda t: progress(f"timing {t.name} ({len(t.samples)} runs)", 0),
    )
    return {t.name: (t.samples, t.blocks, memory[t.name], warm[t.name]) for t in targets}


def run_profile(
    cfg: ProfileConfig, progress: Progress | None = None, clock: Clock | None = None, resolved: Plan | None = None
) -> ProfileResult:
    """Measure every cell of the grid and return the result (not yet written).

    `resolved` is the plan when the caller made it already. Every model is built (or loaded) once; for each backend
    all sessions are opened, and at each (batch, seq) point the teacher and the students are timed interleaved (see
    `measure_interleaved`).
    """
    import torch

    progress = progress or (lambda _desc, _n: None)
    check_device(cfg.device)
    p = resolved or plan(cfg)
    students = describe_students(p, cfg.seq_lens)
    clock = clock or clock_for(cfg.device)
    models = _models(p, cfg, students, progress)
    vocab = min(getattr(x.config, "vocab_size", p.teacher_config.vocab_size) for x in models.values())
    cells: list[Cell] = []
    skipped: list[dict] = []
    for name in cfg.backends:
        backend = check_backend(name)
        for dtype in cfg.dtypes:
            reason = backend.skips(dtype)
            if reason:
                skipped += [{"student": n, "backend": name, "dtype": dtype, "reason": reason} for n in models]
                progress(f"{name} {dtype} skipped", p.count * len(cfg.batch_sizes) * len(cfg.seq_lens))
                continue
            for label, sessions in _open_sessions(p, cfg, backend, dtype, models, progress).items():
                cells += _grid_cells(cfg, label, dtype, sessions, vocab, clock, progress, counted=label == name)
            if cfg.device == "cuda":
                torch.cuda.empty_cache()
    parts = _breakdowns(cfg, p, models, vocab, progress) if cfg.breakdown else {}
    return ProfileResult(
        env.collect(cfg.threads), cfg.to_dict(), p.teacher, students, tuple(cells), tuple(skipped), breakdown=parts
    )


def _models(p: Plan, cfg: ProfileConfig, students: dict, progress: Progress) -> dict:
    """Every planned model, built with seeded random weights (zoo shapes) or loaded (trained runs, whose shape,
    parameters and FLOPs join `students`)."""
    import torch

    from kdbench.zoo.modeling import build_model, load_trained

    models = {}
    for shape in p.shapes:
        progress(f"building {shape.name}", 0)
        torch.manual_seed(cfg.seed)
        models[shape.name] = build_model(p.teacher_config, shape)
    for m in p.runs:
        progress(f"loading {m.name}", 0)
        models[m.name] = load_trained(m.model_dir)
        students[m.name] = {
            **m.shape.to_dict(),
            **m.info,
            "parameters": sum(x.numel() for x in models[m.name].parameters()),
            "flops_per_sequence": {str(n): sequence_flops(m.shape, n) for n in cfg.seq_lens},
        }
    return models


def _grid_cells(
    cfg: ProfileConfig, label: str, dtype: str, sessions: dict, vocab: int, clock: Clock, progress: Progress, counted
) -> list[Cell]:
    """One engine label's sessions timed at every (batch, length) point of the grid. `counted`: whether the progress
    total counted these cells (a trained run's extra ONNX variants are cells beyond it)."""
    cells = []
    for seq in cfg.seq_lens:
        for batch in cfg.batch_sizes:
            measured = _measure_point(cfg, sessions, make_inputs(vocab, batch, seq, cfg.seed), clock, progress)
            for model_name, (samples, blocks, (mem, kind), (first, warm)) in measured.items():
                engine = sessions[model_name].engine
                cells.append(
                    Cell(
                        model_name, label, cfg.device, dtype, batch, seq, cfg.threads, engine, tuple(samples),
                        cfg.warmup_runs, mem, kind, tuple(blocks), first, warm,
                    )
                )  # fmt: skip
            progress(f"{label} {dtype} b={batch} n={seq} done", len(measured) if counted else 0)
            faults.point("profile")
    return cells


def _breakdowns(cfg: ProfileConfig, p: Plan, models: dict, vocab: int, progress: Progress) -> dict:
    """Per model and precision, eager PyTorch's time per operator group at the first batch size and length, beside
    the analytic FLOPs of each group."""
    from kdbench.engines.pytorch import TorchBackend
    from kdbench.measure.breakdown import breakdown, group_flops

    batch, seq = cfg.batch_sizes[0], cfg.seq_lens[0]
    out: dict = {}
    for dtype in cfg.dtypes:
        for entry in _entries(p):
            progress(f"breakdown of {entry.name} ({dtype})", 0)
            session = TorchBackend().open(entry, models[entry.name], cfg.device, dtype, cfg.threads, progress)["torch"]
            inputs = session.prepare(make_inputs(vocab, batch, seq, cfg.seed))
            seconds = breakdown(session.model, lambda s=session, x=inputs: s.run(x), session.synchronize)
            flops = group_flops(entry.shape, seq)
            out.setdefault(dtype, {})[entry.name] = {
                "batch_size": batch,
                "seq_len": seq,
                "seconds": seconds,
                "flops": {g: v * batch for g, v in flops.items()},
            }
    return out
