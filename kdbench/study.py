"""`kdbench study`: a declarative study file run as independent cells (fine-tune, distil, export, evaluate, profile,
report) that are skipped when complete, survive a kill, and can run one at a time on different machines.

A cell is complete when the file its command writes last exists (a distillation's metrics.json, an export's
parity.json entry, an evaluation's JSON, the profile result), so a killed study simply reruns: finished cells are
skipped and an interrupted distillation resumes from its last checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kdbench.errors import KdbenchError
from kdbench.registry import suggest

FIELDS = (
    "name",
    "teacher",
    "data_dir",
    "tasks",
    "students",
    "students_dir",
    "seeds",
    "train",
    "task_train",
    "train_fractions",
    "export",
    "profile",
    "output_dir",
)


@dataclass(frozen=True)
class Study:
    """A study file, parsed and checked."""

    name: str  # shown in progress and the report
    teacher: str  # pretrained teacher: hub id or local folder
    tasks: tuple[str, ...]  # GLUE tasks
    students: str  # names or groups, comma-separated
    output_dir: Path  # where runs, profile and report go
    data_dir: Path | None = None  # local GLUE copy (None: the hub)
    students_dir: Path | None = None  # student files (None: the shipped zoo)
    seeds: dict = field(default_factory=dict)  # task -> list of seeds; "default" for the rest
    train: dict = field(default_factory=dict)  # TrainConfig fields for every run
    task_train: dict = field(default_factory=dict)  # task -> TrainConfig fields overriding `train`
    train_fractions: dict = field(default_factory=dict)  # task -> fractions of the training split (1.0 = all)
    export: dict = field(default_factory=dict)  # {"optimize": "O2", "quantize": "int8"}; empty: no export
    profile: dict = field(default_factory=dict)  # ProfileConfig fields for the trained-model profile; empty: none


def load_study(path: Path, teacher: str | None = None, data_dir: Path | None = None) -> Study:
    """Read a study file (YAML or TOML); `teacher` and `data_dir` override the file's (they are machine paths)."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KdbenchError(f"cannot read study file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / tomllib.TOMLDecodeError
        raise KdbenchError(f"{path}: not a valid study file ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise KdbenchError(f"{path}: a study file is a mapping of fields ({', '.join(FIELDS)})")
    for key in data:
        if key not in FIELDS:
            raise KdbenchError(f"{path}: unknown field {key!r}{suggest(key, FIELDS)}; allowed: {', '.join(FIELDS)}")
    for key in ("tasks", "students"):
        if not data.get(key):
            raise KdbenchError(f"{path}: field {key!r} is required")
    base = path.parent
    resolve = lambda p: (Path(p) if Path(p).is_absolute() else base / p) if p else None  # noqa: E731
    students = data["students"]
    return Study(
        name=data.get("name", path.stem),
        teacher=teacher or data.get("teacher", "roberta-base"),
        tasks=tuple(data["tasks"]),
        students=",".join(students) if isinstance(students, list) else students,
        output_dir=resolve(data.get("output_dir", ".")),
        data_dir=data_dir or resolve(data.get("data_dir")),
        students_dir=resolve(data.get("students_dir")),
        seeds=data.get("seeds", {}),
        train=data.get("train", {}),
        task_train=data.get("task_train", {}),
        train_fractions=data.get("train_fractions", {}),
        export=data.get("export", {}),
        profile=data.get("profile", {}),
    )


@dataclass(frozen=True)
class Cell:
    """One independent step of a study."""

    id: str  # e.g. "distill/rte/6L/s42/f1.0"; `kdbench study FILE --cell ID` runs just this one
    kind: str  # distill, export, evaluate, profile, report
    done: Callable[[], bool]
    run: Callable[[], object]


def _train_config(study: Study, task: str, seed: int, fraction: float):
    from kdbench.data import get_task, load_task
    from kdbench.distill import TrainConfig

    fields_ = {**study.train, **study.task_train.get(task, {}), "seed": seed}
    if fraction < 1.0:
        n = len(load_task(get_task(task), study.data_dir, splits=("train",))["train"])
        cap = fields_.get("max_train_samples") or n
        fields_["max_train_samples"] = max(1, round(min(cap, n) * fraction))
    try:
        return TrainConfig(**fields_)
    except TypeError as exc:
        raise KdbenchError(f"study field 'train': {exc}") from None


def cells(study: Study) -> list[Cell]:
    """Every cell of the study, in the order they run."""
    from kdbench.data import get_task
    from kdbench.distill import DistillConfig, distill
    from kdbench.export import ExportConfig, evaluate_run, export_run
    from kdbench.students import load_zoo, select

    zoo = load_zoo(study.students_dir)
    students = [s.name for s in select(zoo, study.students)]
    out: list[Cell] = []
    runs: list[Path] = []
    for task in study.tasks:
        task = get_task(task).name
        for seed in study.seeds.get(task, study.seeds.get("default", [42])):
            for fraction in study.train_fractions.get(task, [1.0]):
                for student in students:
                    run = study.output_dir / "runs" / task / f"{student}-s{seed}-f{fraction}"
                    runs.append(run)
                    cfg = lambda task=task, student=student, seed=seed, fraction=fraction, run=run: DistillConfig(  # noqa: E731
                        task=task,
                        student=student,
                        teacher=study.teacher,
                        students_dir=study.students_dir,
                        data_dir=study.data_dir,
                        output_dir=run,
                        train=_train_config(study, task, seed, fraction),
                        resume=_interrupted(run),
                    )
                    out.append(
                        Cell(
                            f"distill/{task}/{student}/s{seed}/f{fraction}",
                            "distill",
                            lambda run=run: (run / "metrics.json").is_file(),
                            lambda cfg=cfg: distill(cfg(), log=lambda *_: None),
                        )
                    )
                    if study.export:
                        variants = [
                            "fp32",
                            *(v for v in (study.export.get("optimize"), study.export.get("quantize")) if v),
                        ]
                        out.append(
                            Cell(
                                f"export/{run.relative_to(study.output_dir / 'runs')}",
                                "export",
                                lambda run=run, variants=variants: _exported(run, variants),
                                lambda run=run: export_run(ExportConfig(run, **study.export), log=lambda *_: None),
                            )
                        )
                        for variant in variants:
                            out.append(
                                Cell(
                                    f"evaluate/{run.relative_to(study.output_dir / 'runs')}/{variant}",
                                    "evaluate",
                                    lambda run=run, v=variant: (run / "eval" / f"onnxruntime-{v}.json").is_file(),
                                    lambda run=run, v=variant: evaluate_run(run, "onnxruntime", v),
                                )
                            )
    if study.profile:
        out.append(
            Cell(
                "profile",
                "profile",
                lambda: (study.output_dir / "profile.json").is_file(),
                lambda: _profile(study, runs),
            )
        )
    return out


def _interrupted(run: Path) -> bool:
    from kdbench.distill import last_checkpoint

    return not (run / "metrics.json").is_file() and last_checkpoint(run / "checkpoints") is not None


def _exported(run: Path, variants: list[str]) -> bool:
    from kdbench.export import load_parity

    return all(v in load_parity(run / "onnx") for v in variants)


def _profile(study: Study, runs: list[Path]):
    from kdbench.profile import ProfileConfig, run_profile

    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in study.profile.items()}
    cfg = ProfileConfig(
        teacher=study.teacher, students="", runs=tuple(runs), output=study.output_dir / "profile.json", **settings
    )
    result = run_profile(cfg)
    result.save(cfg.output)
    return result


def run_study(
    study: Study, only: str | None = None, progress: Callable[[str, int, int, float | None], None] | None = None
) -> list[str]:
    """Run the pending cells (or just `only`), then the report; return the ids that ran.

    `progress(cell_id, done, total, seconds_left)` is called before each cell; the estimate of time left is the mean
    duration of the cells of each kind run so far, times the pending cells of that kind.
    """
    from kdbench.report import write_report

    all_cells = cells(study)
    if only is not None:
        chosen = [c for c in all_cells if c.id == only]
        if not chosen:
            raise KdbenchError(
                f"unknown cell {only!r}{suggest(only, [c.id for c in all_cells])}; list them with --list"
            )
        if chosen[0].done():
            return []
        chosen[0].run()
        return [only]
    pending = [c for c in all_cells if not c.done()]
    ran, durations = [], {}
    for i, cell in enumerate(pending):
        if progress:
            progress(cell.id, len(all_cells) - len(pending) + i, len(all_cells), _eta(pending[i:], durations))
        started = time.perf_counter()
        cell.run()
        durations.setdefault(cell.kind, []).append(time.perf_counter() - started)
        ran.append(cell.id)
    inputs = [study.output_dir / "runs"] + ([study.output_dir / "profile.json"] if study.profile else [])
    write_report([p for p in inputs if p.exists()], study.output_dir)
    return ran


def _eta(pending: list[Cell], durations: dict[str, list[float]]) -> float | None:
    known = {k: sum(v) / len(v) for k, v in durations.items()}
    if not known:
        return None
    fallback = max(known.values())
    return sum(known.get(c.kind, fallback) for c in pending)
