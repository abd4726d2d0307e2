"""The steps of `kdbench recommend`, in order (in the spirit of HAT - measure latency on the target, then train the
chosen shapes - and of Intel Neural Compressor's tuning loop: an accuracy criterion, a latency objective, a time
budget):

  1. the sequence length the deployment will see (`auto`: the 95th percentile of the task's tokenised validation
     texts);
  2. every candidate (zoo and generated shapes, recommend.space) timed on every requested engine with random weights,
     in chunks beside the teacher, through the profile; a candidate fits when the upper end of its latency interval
     is within the budget on some engine (nothing fits: one line, before any training);
  3. the shortlist (recommend.space.RULE) distilled, exported and scored as a study (resumable, --jobs, Ray);
  4. the answer (recommend.answer).

Everything lands in one folder: the candidates' student files, the timing of each chunk, the study and its runs, and
the answer. A killed recommend continues where it stopped (timed chunks are kept, the study resumes), and the same
command again trains nothing new.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kdbench.core.errors import ConfigError, KdbenchError
from kdbench.core.io import atomic_write_json, atomic_write_text, read_json
from kdbench.core.names import check_choice
from kdbench.measure.stats import latency_interval
from kdbench.recommend.space import Candidate, candidates, shortlist, write_space
from kdbench.zoo.teacher import DEFAULT_TEACHER

STATS = ("p50", "p90")
DEFAULT_ENGINES = ("torch", "onnxruntime", "onnxruntime:int8")
CHUNK = 16  # candidates timed beside the teacher at once: what one profile holds open
SETTINGS = "recommend.json"  # the folder's settings: a later run with others is refused
TIMING = dict(warmup_runs=2, warmup_time_s=0.2, min_runs=10, min_blocks=3, min_time_s=0.1, max_time_s=5.0)


@dataclass(frozen=True)
class RecommendConfig:
    """One recommendation: for which task, teacher and machine, within which budget, and how much to try."""

    task: str  # a task name or a task file's path
    latency_budget_s: float  # the deployment's budget for one call, in seconds
    teacher: str = DEFAULT_TEACHER  # pretrained teacher: hub id or local folder
    stat: str = "p50"  # the latency statistic the budget bounds: p50 (the median call) or p90
    device: str = "cpu"  # where the deployment runs: cpu or cuda
    batch_size: int = 1  # sequences per call in the deployment
    seq_len: int | None = None  # tokens per sequence; None: auto (95th percentile of the validation texts)
    min_share: float | None = None  # the least share of the teacher's score a recommendation may keep
    engines: tuple[str, ...] = DEFAULT_ENGINES  # engines and precisions a candidate may be deployed on
    candidates: int = 4  # shapes to distil
    time_budget_s: float | None = None  # wall time for the whole recommendation (trainings stop cleanly at it)
    output_dir: Path = Path("recommend")  # everything: candidates, timings, the study, the answer
    tasks_dir: Path | None = None  # folder of task files (None: the shipped tasks)
    students_dir: Path | None = None  # the zoo (None: the shipped one)
    data_dir: Path | None = None  # a hub task's local copy (GLUE: ../shared/glue)
    train: dict = field(default_factory=dict)  # TrainConfig fields of the distillations (the recipe otherwise)
    seed: int = 42  # the distillations' seed
    jobs: int = 1  # distillations at once in worker processes (the study's --jobs)
    executor: str = "local"  # local or ray (the study's --executor)
    address: str | None = None  # with ray: the cluster to join

    def __post_init__(self) -> None:
        from kdbench.core.env import DEVICES
        from kdbench.engines.registry import check_backend

        check_choice("stat", self.stat, STATS)
        check_choice("device", self.device, DEVICES)
        if not isinstance(self.latency_budget_s, int | float) or not 0 < self.latency_budget_s < math.inf:
            raise ConfigError("latency_budget", f"must be a positive duration, got {self.latency_budget_s!r}")
        for name in ("batch_size", "candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, f"must be a positive integer, got {value!r}")
        if self.seq_len is not None and (
            isinstance(self.seq_len, bool) or not isinstance(self.seq_len, int) or self.seq_len < 1
        ):
            raise ConfigError("seq_len", f"must be a positive integer or auto, got {self.seq_len!r}")
        if self.min_share is not None and not 0 < self.min_share <= 1.5:
            raise ConfigError("min_share", f"is a share of the teacher's score such as 0.97, got {self.min_share!r}")
        if not self.engines:
            raise ConfigError("engines", "must name at least one engine")
        for e in self.engines:
            check_backend(e)
        if self.time_budget_s is not None and not 0 < self.time_budget_s < math.inf:
            raise ConfigError("time_budget", f"must be positive, got {self.time_budget_s!r}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ConfigError("jobs", f"must be at least 1, got {self.jobs!r}")
        from kdbench.study.runner import EXECUTORS

        check_choice("executor", self.executor, EXECUTORS)

    def identity(self) -> dict:
        """What the folder's timings and runs depend on: a rerun with the same may reuse them, with others not."""
        keep = (
            "task",
            "teacher",
            "device",
            "batch_size",
            "engines",
            "students_dir",
            "tasks_dir",
            "data_dir",
            "train",
            "seed",
        )
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
            if k in keep
        }


Progress = Callable[..., None]


def parse_latency(option: str, text: str) -> float:
    """Seconds in '15ms', '0.015s', '800us' (a bare number is milliseconds: a latency budget's usual unit)."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
    text = str(text).strip().lower()
    unit = next((u for u in ("us", "ms", "s") if text.endswith(u)), "ms")
    number = text[: len(text) - len(unit)] if text.endswith(unit) else text
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise KdbenchError(f"{option} is {text!r}; expected a duration such as 15ms, 0.015s or 800us") from None
    if not 0 < value < math.inf:
        raise KdbenchError(f"{option} must be positive, got {text!r}")
    return value


# ---------------------------------------------------------------------------------------------------- 1. length
def auto_seq_len(task, teacher: str, data_dir: Path | None) -> tuple[int, int]:
    """(the 95th percentile of the tokenised validation texts' lengths, how many texts): the length a deployment of
    this task sees, bounded by the teacher's positions."""
    import numpy as np
    from transformers import AutoTokenizer

    from kdbench.tasks.loading import load_task, tokenize
    from kdbench.zoo.teacher import load_teacher_config, max_sequence_length

    limit = max_sequence_length(load_teacher_config(teacher)) or 512
    split = task.eval_splits[0]
    data = load_task(task, data_dir, splits=(split,))
    tokenized = tokenize(data, task, AutoTokenizer.from_pretrained(teacher), limit)
    lengths = np.asarray(tokenized[split]["length"])
    return int(math.ceil(np.percentile(lengths, 95))), int(lengths.size)


# ---------------------------------------------------------------------------------------------------- 2. timing
def _chunks(names: list[str]) -> list[list[str]]:
    return [names[i : i + CHUNK] for i in range(0, len(names), CHUNK)]


def time_candidates(cfg: RecommendConfig, pool: dict[str, Candidate], seq_len: int, progress: Progress):
    """Every candidate timed on every engine with random weights, a chunk at a time beside the teacher; each chunk's
    result is kept (timing/chunk-N.json) and reused by a rerun with the same settings. Returns the cells by
    (candidate, engine), and the teacher's cells (one per chunk) by engine."""
    from kdbench.measure.profile import ProfileConfig, run_profile
    from kdbench.measure.result import ProfileResult

    folder = cfg.output_dir / "timing"
    cells: dict[tuple[str, str], object] = {}
    teacher: dict[str, list] = {}
    chunks = _chunks(list(pool))
    for i, names in enumerate(chunks):
        path = folder / f"chunk-{i + 1}.json"
        profile = ProfileConfig(
            teacher=cfg.teacher,
            students=",".join(names),
            students_dir=cfg.output_dir / "students",
            backends=cfg.engines,
            device=cfg.device,
            batch_sizes=(cfg.batch_size,),
            seq_lens=(seq_len,),
            output=path,
            **TIMING,
        )
        result = ProfileResult.from_json(path) if _reusable(path, profile) else None
        if result is None:
            progress(f"timing candidates {i + 1}/{len(chunks)}", i, len(chunks))
            result = run_profile(profile)
            result.save(path)
        for c in result.cells:
            if c.student == "teacher":
                teacher.setdefault(c.backend, []).append(c)
            else:
                cells[(c.student, c.backend)] = c
    return cells, teacher


def _reusable(path: Path, profile) -> bool:
    """Whether a kept chunk was timed with these very settings (a chunk of another length, engine or machine is not)."""
    if not path.is_file():
        return False
    import json

    settings = read_json(path).get("settings", {})
    wanted = json.loads(json.dumps(profile.to_dict()))  # as the file holds it (tuples become lists)
    return all(
        settings.get(k) == wanted[k] for k in ("teacher", "students", "backends", "device", "batch_sizes", "seq_lens")
    )


def fits(cfg: RecommendConfig, cells: dict) -> dict[str, dict[str, object]]:
    """candidate -> engine -> latency interval, for the engines whose interval's upper end is within the budget."""
    out: dict[str, dict[str, object]] = {}
    for (name, engine), cell in cells.items():
        interval = latency_interval(cell.samples, cell.blocks, cfg.stat)
        if interval.high <= cfg.latency_budget_s:
            out.setdefault(name, {})[engine] = interval
    return out


# ---------------------------------------------------------------------------------------------------- 3. training
def study_file(cfg: RecommendConfig, task_ref: str, names: list[str]) -> Path:
    """The shortlist as a study file in the folder (its runs, export and evaluations are the study's cells)."""
    import yaml

    variants = {"quantize": "int8"} if "onnxruntime:int8" in cfg.engines else {}
    if "onnxruntime:O2" in cfg.engines:
        variants["optimize"] = "O2"
    doc = {
        "name": f"recommend-{Path(task_ref).stem}",
        "teacher": cfg.teacher,
        "tasks": [task_ref],
        "students": names,
        "students_dir": "students",
        "seeds": [cfg.seed],
        "train": dict(cfg.train),
        "export": {**variants, "parity_samples": 256},
        "output_dir": ".",
        "notes": "The shortlist of `kdbench recommend` (RECOMMENDATION.md): distilled, exported and scored here.",
    }
    for key, value in (("tasks_dir", cfg.tasks_dir), ("data_dir", cfg.data_dir)):
        if value is not None:
            doc[key] = str(Path(value).resolve())
    path = cfg.output_dir / "study.yaml"
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------------------ the steps
def check_folder(cfg: RecommendConfig) -> None:
    """The folder is new, empty, or a recommendation's with the same settings: anything else is refused untouched."""
    from kdbench.core.io import check_folder_writable

    folder = cfg.output_dir
    check_folder_writable(folder, "--output-dir")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    marker = folder / SETTINGS
    if not marker.is_file():
        raise KdbenchError(f"--output-dir {folder} holds files kdbench recommend did not write; choose another folder")
    before = read_json(marker).get("identity", {})
    differs = [f"{k} {before.get(k)!r} -> {v!r}" for k, v in cfg.identity().items() if before.get(k) != v]
    if differs:
        raise KdbenchError(
            f"--output-dir {folder} holds a recommendation with other settings ({'; '.join(differs)}); choose another "
            "folder (a new budget, statistic or shortlist size may share one)"
        )


def command_line(cfg: RecommendConfig) -> str:
    """The command that reproduces this recommendation (every setting spelled out)."""
    import shlex

    from kdbench.train.config import TrainConfig

    defaults = RecommendConfig(task=cfg.task, latency_budget_s=cfg.latency_budget_s)
    words = ["kdbench", "recommend", "--task", cfg.task, "--latency-budget", f"{cfg.latency_budget_s * 1e3:g}ms"]
    for name in ("teacher", "stat", "device", "batch_size", "seq_len", "min_share", "candidates", "seed", "jobs"):
        value = getattr(cfg, name)
        if value != getattr(defaults, name):
            words += [f"--{name.replace('_', '-')}", str(value)]
    if cfg.engines != defaults.engines:
        words += ["--engines", ",".join(cfg.engines)]
    for name in ("tasks_dir", "students_dir", "data_dir"):
        if getattr(cfg, name) is not None:
            words += [f"--{name.replace('_', '-')}", str(getattr(cfg, name))]
    for name, value in cfg.train.items():
        if value != getattr(TrainConfig(), name):
            flag = "--train-batch-size" if name == "batch_size" else f"--{name.replace('_', '-')}"
            words += [flag, str(value)]
    words += ["--output-dir", str(cfg.output_dir)]
    return " ".join(shlex.quote(w) for w in words)


def recommend(cfg: RecommendConfig, progress: Progress | None = None) -> dict:
    """Run every step (see the module) and return the answer's document (also written into the folder)."""
    from kdbench.recommend.answer import answer
    from kdbench.study.runner import run_study
    from kdbench.study.spec import load_study
    from kdbench.tasks.task import resolve_task
    from kdbench.zoo.teacher import load_teacher_config, teacher_shape

    progress = progress or (lambda *a, **k: None)
    started = time.perf_counter()
    deadline = time.time() + cfg.time_budget_s if cfg.time_budget_s else None
    # every input checked before anything is written
    task = resolve_task(cfg.task, cfg.tasks_dir)
    teacher = teacher_shape(load_teacher_config(cfg.teacher), cfg.teacher)
    check_folder(cfg)
    from kdbench.zoo.students import load_zoo

    load_zoo(cfg.students_dir)
    seq_len, texts = (cfg.seq_len, 0) if cfg.seq_len else auto_seq_len(task, cfg.teacher, cfg.data_dir)
    from kdbench.measure.profile import ProfileConfig, plan

    plan(ProfileConfig(teacher=cfg.teacher, students="", backends=cfg.engines, device=cfg.device, seq_lens=(seq_len,)))
    # from here on the folder is written
    atomic_write_json(cfg.output_dir / SETTINGS, {"schema": "kdbench.recommend-settings", "identity": cfg.identity()})
    write_space(cfg.output_dir / "students", cfg.students_dir, teacher)
    pool = candidates(cfg.output_dir / "students", teacher, seq_len)
    cells, teacher_cells = time_candidates(cfg, pool, seq_len, progress)
    fitting = fits(cfg, cells)
    if not fitting:
        fastest = min(cells.items(), key=lambda kv: latency_interval(kv[1].samples, kv[1].blocks, cfg.stat).high)
        best = latency_interval(fastest[1].samples, fastest[1].blocks, cfg.stat)
        raise KdbenchError(
            f"nothing fits a {cfg.stat} budget of {cfg.latency_budget_s * 1e3:.3g} ms at batch {cfg.batch_size}, "
            f"length {seq_len}: the fastest of {len(pool)} candidates is {fastest[0][0]} on {fastest[0][1]} at "
            f"{best.value * 1e3:.3g} ms [{best.low * 1e3:.3g}, {best.high * 1e3:.3g}]"
        )
    chosen = shortlist({n: min(i.high for i in e.values()) for n, e in fitting.items()}, pool, teacher, cfg.candidates)
    ref = str(Path(task.source).resolve()) if task.source and not task.tsv_dir else task.name
    study = load_study(study_file(cfg, ref, [n for n, _ in chosen]))
    run_study(study, progress=progress, jobs=cfg.jobs, deadline=deadline, executor=cfg.executor, address=cfg.address)
    facts = dict(
        task=task,
        teacher=teacher,
        seq_len=seq_len,
        texts=texts,
        pool=pool,
        cells=cells,
        teacher_cells=teacher_cells,
        fitting=fitting,
        chosen=chosen,
        study=study,
        wall_s=time.perf_counter() - started,
        command=command_line(cfg),
    )
    return answer(cfg, facts)
