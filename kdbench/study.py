"""`kdbench study`: a declarative study file run as independent cells (fine-tune, distil, export, evaluate, profile,
report) that are skipped when complete, survive a kill, and can run one at a time on different machines.

A cell is complete when the file its command writes last exists (a distillation's metrics.json, an export's
parity.json entry, an evaluation's JSON, the profile result), so a killed study simply reruns: finished cells are
skipped and an interrupted distillation resumes from its last checkpoint.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from kdbench.errors import ConfigError, DeadlineReached, KdbenchError, check_choice
from kdbench.registry import suggest
from kdbench.run import Run
from kdbench.teacher import DEFAULT_TEACHER

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
    "teacher_train",
    "teacher_task_train",
    "train_fractions",
    "budgets",
    "sweeps",
    "export",
    "profile",
    "output_dir",
    "notes",
)
SWEEP_FIELDS = ("name", "tasks", "students", "seeds", "train_fractions", "budgets", "distill")
BUDGET_FIELDS = ("max_train_samples", "epochs")  # a training budget: rows (null: all) x passes over them


@dataclass(frozen=True)
class Sweep:
    """A block of distillations: every task x seed x training fraction x student."""

    name: str  # shown in the report ("main" for the study's top-level grid)
    tasks: tuple[str, ...]  # GLUE tasks
    students: str  # names or groups, comma-separated
    seeds: dict = field(default_factory=dict)  # task -> list of seeds; "default" for the rest
    train_fractions: dict = field(default_factory=dict)  # task -> fractions of the training rows (1.0 = all)
    budgets: dict = field(default_factory=dict)  # task -> list of {max_train_samples, epochs}: one run per budget
    distill: dict = field(default_factory=dict)  # DistillConfig recipe fields (init, alpha_*, ...) for this sweep


@dataclass(frozen=True)
class Study:
    """A study file, parsed and checked."""

    name: str  # shown in progress and the report
    teacher: str  # pretrained teacher: hub id or local folder
    sweeps: tuple[Sweep, ...]  # the top-level grid ("main") first, then the file's `sweeps`
    output_dir: Path  # where runs, profile and report go
    data_dir: Path | None = None  # local GLUE copy (None: the hub)
    students_dir: Path | None = None  # student files (None: the shipped zoo)
    train: dict = field(default_factory=dict)  # TrainConfig fields for every distillation
    task_train: dict = field(default_factory=dict)  # task -> TrainConfig fields overriding `train`
    teacher_train: dict = field(default_factory=dict)  # TrainConfig fields of the teacher fine-tunes (None: `train`)
    teacher_task_train: dict = field(default_factory=dict)  # task -> fields overriding `teacher_train`
    export: dict = field(default_factory=dict)  # {"optimize": "O2", "quantize": "int8", "tasks": [...]}; {}: none
    profile: dict = field(default_factory=dict)  # ProfileConfig fields (+ "task": whose runs); {}: no profile
    notes: str = ""  # markdown for the report: what differs from the paper's setup, and why

    @property
    def tasks(self) -> tuple[str, ...]:
        """Every task of every sweep, in first-seen order."""
        return tuple(dict.fromkeys(t for sw in self.sweeps for t in sw.tasks))


def _read_mapping(path: Path) -> dict:
    import tomllib

    from kdbench.io import read_text

    text = read_text(path, "study file")
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
    return data


def _check_fields(where: str, data: dict, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise KdbenchError(f"{where}: unknown field {key!r}{suggest(key, allowed)}; allowed: {', '.join(allowed)}")
    for key in required:
        if not data.get(key):
            raise KdbenchError(f"{where}: field {key!r} is required")


def _per_task(value, default: list) -> dict:
    """A list for every task, or already a mapping task -> list (with an optional "default")."""
    return value if isinstance(value, dict) else {"default": default if value is None else value}


def _sweep(data: dict, name: str) -> Sweep:
    students = data["students"]
    return Sweep(
        name=name,
        tasks=tuple(data["tasks"]),
        students=",".join(students) if isinstance(students, list) else students,
        seeds=_per_task(data.get("seeds"), [42]),
        train_fractions=_per_task(data.get("train_fractions"), [1.0]),
        budgets=_per_task(data.get("budgets"), [{}]),
        distill=data.get("distill") or {},
    )


def _check_settings(path: Path, data: dict) -> None:
    """Settings blocks name fields of the configs they feed: a typo fails here, with the allowed names."""
    from dataclasses import fields

    from kdbench.distill import TrainConfig
    from kdbench.export import ExportConfig
    from kdbench.profile import ProfileConfig

    train = tuple(f.name for f in fields(TrainConfig))
    blocks = {
        "train": (train, [data.get("train")]),
        "task_train": (train, list((data.get("task_train") or {}).values())),
        "teacher_train": (train, [data.get("teacher_train")]),
        "teacher_task_train": (train, list((data.get("teacher_task_train") or {}).values())),
        "export": (("tasks", *(f.name for f in fields(ExportConfig) if f.name != "run_dir")), [data.get("export")]),
        "profile": (
            ("task", *(f.name for f in fields(ProfileConfig) if f.name not in ("teacher", "runs", "output"))),
            [data.get("profile")],
        ),
    }
    for name, (allowed, values) in blocks.items():
        for value in values:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise KdbenchError(f"{path}: field {name!r} is a mapping of settings ({', '.join(allowed)})")
            _check_fields(f"{path}: {name}", value, allowed, ())


def load_study(path: Path, teacher: str | None = None, data_dir: Path | None = None) -> Study:
    """Read a study file (YAML or TOML); `teacher` and `data_dir` override the file's (they are machine paths).

    `seeds` and `train_fractions` are a list (every task) or a mapping task -> list with an optional "default".
    """
    from kdbench.distill import RECIPE_FIELDS

    path = Path(path)
    data = _read_mapping(path)
    _check_fields(str(path), data, FIELDS, ("tasks", "students"))
    extra = data.get("sweeps") or []
    if not isinstance(extra, list):
        raise KdbenchError(f"{path}: field 'sweeps' is a list of mappings ({', '.join(SWEEP_FIELDS)})")
    for i, sw in enumerate(extra):
        if not isinstance(sw, dict):
            raise KdbenchError(f"{path}: sweeps[{i}] is a mapping ({', '.join(SWEEP_FIELDS)})")
        _check_fields(f"{path}: sweeps[{i}]", sw, SWEEP_FIELDS, ("tasks", "students"))
        if not isinstance(sw.get("distill") or {}, dict):
            raise KdbenchError(f"{path}: sweeps[{i}].distill is a mapping ({', '.join(RECIPE_FIELDS)})")
        _check_fields(f"{path}: sweeps[{i}].distill", sw.get("distill") or {}, RECIPE_FIELDS, ())
    _check_settings(path, data)
    base = path.parent
    resolve = lambda p: (Path(p) if Path(p).is_absolute() else base / p) if p else None  # noqa: E731
    for key in ("name", "teacher", "notes", "output_dir", "data_dir", "students_dir"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise KdbenchError(f"{path}: {key}: must be text, got {data[key]!r}")
    sweeps = [("main", data)] + [(f"sweeps[{i}]", sw) for i, sw in enumerate(extra)]
    for where, sw in sweeps:
        _check_sweep_types(path, where, sw)
    study = Study(
        name=data.get("name", path.stem),
        teacher=teacher or data.get("teacher", DEFAULT_TEACHER),
        sweeps=(_sweep(data, "main"), *(_sweep(sw, sw.get("name", f"sweep{i + 1}")) for i, sw in enumerate(extra))),
        output_dir=resolve(data.get("output_dir", ".")),
        data_dir=data_dir or resolve(data.get("data_dir")),
        students_dir=resolve(data.get("students_dir")),
        train=data.get("train", {}),
        task_train=data.get("task_train", {}),
        teacher_train=data.get("teacher_train", {}),
        teacher_task_train=data.get("teacher_task_train", {}),
        export=data.get("export", {}),
        profile=data.get("profile", {}),
        notes=data.get("notes", ""),
    )
    _build_configs(path, study)
    return study


def _check_sweep_types(path: Path, where: str, sw: dict) -> None:
    """tasks and students are names; seeds are integers and training fractions in (0, 1], as a list or per task."""
    for key in ("tasks", "students"):
        value = sw.get(key)
        names = value.split(",") if key == "students" and isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(v, str) and v.strip() for v in names):
            raise KdbenchError(f"{path}: {where}.{key}: must be a non-empty list of names, got {value!r}")
    for key, ok, what in (
        ("seeds", lambda v: isinstance(v, int) and not isinstance(v, bool), "integers"),
        (
            "train_fractions",
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1,
            "numbers in (0, 1]",
        ),
    ):
        value = sw.get(key)
        if value is None:
            continue
        lists = value.values() if isinstance(value, dict) else [value]
        if not all(isinstance(v, list) and v and all(ok(x) for x in v) for v in lists):
            raise KdbenchError(
                f"{path}: {where}.{key}: must be a list of {what} (or a mapping task -> list), got {value!r}"
            )
    budgets = sw.get("budgets")
    if budgets is not None:
        lists = budgets.values() if isinstance(budgets, dict) else [budgets]
        for v in lists:
            if not isinstance(v, list) or not v or not all(isinstance(b, dict) and b for b in v):
                raise KdbenchError(
                    f"{path}: {where}.budgets: a list of budgets such as {{max_train_samples: 2000, epochs: 2}} "
                    f"(or a mapping task -> list), got {budgets!r}"
                )
            for b in v:
                _check_fields(f"{path}: {where}.budgets", b, BUDGET_FIELDS, ())


def _build_configs(path: Path, study: Study) -> None:
    """Build every configuration the study will use, so a bad value fails now, naming the file and the field, and
    not hours later when its cell runs."""
    from kdbench.data import get_task
    from kdbench.distill import DistillConfig
    from kdbench.export import ExportConfig
    from kdbench.profile import ProfileConfig
    from kdbench.students import load_zoo, select

    def at(where: str, build):
        try:
            return build()
        except ConfigError as exc:
            raise KdbenchError(f"{path}: {where}.{exc.setting}: {exc.problem}") from None
        except KdbenchError as exc:
            raise KdbenchError(f"{path}: {where}: {exc}") from None
        except TypeError as exc:  # an unknown keyword the field checks let through
            raise KdbenchError(f"{path}: {where}: {exc}") from None

    from kdbench.io import check_folder_writable

    at("output_dir", lambda: check_folder_writable(study.output_dir, "output_dir"))
    if study.data_dir is not None and not Path(study.data_dir).is_dir():
        raise KdbenchError(f"{path}: data_dir: {study.data_dir} is not a folder (pass --data-dir with a GLUE copy)")
    zoo = at("students_dir", lambda: load_zoo(study.students_dir))
    for sw in study.sweeps:
        where = "main" if sw.name == "main" else f"sweep {sw.name!r}"
        for task in sw.tasks:
            at(f"{where}.tasks", lambda task=task: get_task(task))
        for task in list(sw.seeds) + list(sw.train_fractions) + list(sw.budgets):
            if task != "default":
                at(f"{where}: per-task key", lambda task=task: get_task(task))
        students = at(f"{where}.students", lambda sw=sw: select(zoo, sw.students))
        if not students:
            raise KdbenchError(f"{path}: {where}.students: selects no student")
        first = students[0].name
        at(f"{where}.distill", lambda sw=sw, first=first: DistillConfig(task=sw.tasks[0], student=first, **sw.distill))
    for sw in study.sweeps:
        for task in sw.tasks:
            for budget in _pick(sw.budgets, task) or [{}]:
                at("budgets" if budget else "train", lambda t=task, b=budget: _train_config(study, t, 42, 1.0, b, True))
    for task in study.tasks:
        at("teacher_train", lambda task=task: _teacher_config(study, task))
    for block in ("task_train", "teacher_task_train"):
        for task in getattr(study, block):
            at(block, lambda task=task: get_task(task))
    if study.export:
        export = {k: v for k, v in study.export.items() if k != "tasks"}
        at("export", lambda: ExportConfig(Path("."), **export))
        unknown = set(study.export.get("tasks") or ()) - set(study.tasks)
        if unknown:
            raise KdbenchError(f"{path}: export.tasks: {', '.join(sorted(unknown))} not among the study's tasks")
    if study.profile:
        settings = _profile_settings(study)
        at("profile", lambda: ProfileConfig(teacher=study.teacher, **settings))
        task = study.profile.get("task")
        if task is not None and task not in study.tasks:
            raise KdbenchError(
                f"{path}: profile.task: {task!r} is not among the study's tasks ({', '.join(study.tasks)})"
            )


@dataclass(frozen=True)
class Cell:
    """One independent step of a study."""

    id: str  # e.g. "distill/rte/6L/s42/f1.0"; `kdbench study FILE --cell ID` runs just this one
    kind: str  # finetune, distill, export, evaluate, profile
    done: Callable[[], bool]
    run: Callable[[], object]
    group: str = ""  # cells of one group run in order on one shard (a run's distillation, export, evaluations)
    needs: tuple[str, ...] = ()  # ids of cells that must be done first (a distillation needs its teacher fine-tune)


def _config(where: str, fields_: dict):
    from kdbench.distill import TrainConfig

    return TrainConfig(**fields_)  # unknown fields were refused by _check_settings


def _teacher_config(study: Study, task: str):
    """The teacher fine-tune's settings: `teacher_train` (or `train`) with the task's overrides."""
    base = study.teacher_train or study.train
    overrides = study.teacher_task_train.get(task, {}) if study.teacher_train else study.task_train.get(task, {})
    return _config("teacher_train" if study.teacher_train else "train", {**base, **overrides})


def _train_config(
    study: Study, task: str, seed: int, fraction: float, budget: dict | None = None, check_only: bool = False
):
    from kdbench.data import get_task, load_task

    fields_ = {**study.train, **study.task_train.get(task, {}), **(budget or {}), "seed": seed}
    if fraction < 1.0 and not check_only:
        n = len(load_task(get_task(task), study.data_dir, splits=("train",))["train"])
        cap = fields_.get("max_train_samples") or n
        fields_["max_train_samples"] = max(1, round(min(cap, n) * fraction))
    return _config("train", fields_)


def _pick(mapping: dict, task: str) -> list:
    return list(mapping.get(task, mapping.get("default", [])))


@dataclass(frozen=True)
class RunSpec:
    """One distillation of the study: where it goes and which sweeps asked for it."""

    task: str
    student: str
    seed: int
    fraction: float
    path: Path
    sweeps: tuple[str, ...]
    recipe: tuple[tuple[str, object], ...] = ()  # DistillConfig fields that differ from the default recipe
    budget: tuple[tuple[str, object], ...] = ()  # a sweep's training budget (max_train_samples, epochs), if any

    @property
    def id(self) -> str:
        budget, recipe = _budget_label(self.budget), _suffix(self.recipe)
        return f"{self.task}/{self.student}/s{self.seed}/f{self.fraction}{budget}{recipe}"


def _budget_label(budget: tuple[tuple[str, object], ...]) -> str:
    """A budget in run ids and folders: (("epochs", 2), ("max_train_samples", 2000)) -> "-n2000-e2"."""
    b = dict(budget)
    if not b:
        return ""
    rows = b.get("max_train_samples", "task")
    return f"-n{'all' if rows is None else rows}" + (f"-e{b['epochs']:g}" if "epochs" in b else "")


def _suffix(recipe: tuple[tuple[str, object], ...]) -> str:
    """A recipe change in run ids and folders: ("init", "slice") -> "-init-slice"."""
    return "".join(f"-{k}-{v}" for k, v in recipe)


def run_specs(study: Study) -> list[RunSpec]:
    """Every distillation of every sweep, each once (a run two sweeps share is trained once)."""
    from kdbench.data import get_task
    from kdbench.students import load_zoo, select

    zoo = load_zoo(study.students_dir)
    specs: dict[str, RunSpec] = {}
    for sw in study.sweeps:
        students = [s.name for s in select(zoo, sw.students)]
        for task in (get_task(t).name for t in sw.tasks):
            for seed in _pick(sw.seeds, task) or [42]:
                for fraction in _pick(sw.train_fractions, task) or [1.0]:
                    for budget_fields in _pick(sw.budgets, task) or [{}]:
                        for student in students:
                            recipe = tuple(sorted(sw.distill.items()))
                            budget = tuple(sorted(budget_fields.items()))
                            name = f"{student}-s{seed}-f{fraction}{_budget_label(budget)}{_suffix(recipe)}"
                            path = study.output_dir / "runs" / task / name
                            spec = RunSpec(task, student, seed, float(fraction), path, (sw.name,), recipe, budget)
                            if spec.id in specs:
                                spec = replace(spec, sweeps=specs[spec.id].sweeps + (sw.name,))
                            specs[spec.id] = spec
    return list(specs.values())


def cells(study: Study, deadline: float | None = None) -> list[Cell]:
    """Every cell of the study, in the order they run: teacher fine-tunes, then per run its distillation, export and
    evaluations, then the profile. `deadline` (a `time.time()` value): trainings checkpoint and stop once it passes."""
    from kdbench.distill import distill, finetune

    specs = run_specs(study)
    out: list[Cell] = []
    teachers: dict[str, Callable[[], str]] = {}
    for task in dict.fromkeys(s.task for s in specs):
        folder = teacher_folder(study, task)
        # a distillation run on its own (--cell) fine-tunes its teacher first; otherwise this finds it cached
        teachers[task] = lambda task=task: str(
            finetune(
                study.teacher, task, _teacher_config(study, task), study.data_dir, lambda *_: None, False, deadline
            )
        )
        out.append(
            Cell(
                f"finetune/{task}",
                "finetune",
                lambda folder=folder: (folder / "metrics.json").is_file(),
                teachers[task],
            )
        )
    export = {k: v for k, v in study.export.items() if k != "tasks"}
    export_tasks = set(study.export.get("tasks") or study.tasks)
    for spec in specs:
        cfg = lambda spec=spec: spec_config(  # noqa: E731
            study, spec, teachers[spec.task](), resume=_interrupted(spec.path)
        )
        out.append(
            Cell(
                f"distill/{spec.id}",
                "distill",
                lambda run=spec.path: _finished(run),
                lambda cfg=cfg: distill(cfg(), log=lambda *_: None, progress=False, deadline=deadline),
                spec.id,
                (f"finetune/{spec.task}",),
            )
        )
        if study.export and spec.task in export_tasks:
            out += _export_cells(spec, export)
    if study.profile:
        profiled = _profiled(study, specs)
        out.append(
            Cell(
                "profile",
                "profile",
                lambda: _profile_covers(study, profiled),
                lambda: _profile(study, profiled),
                needs=tuple(c.id for c in out),
            )
        )
    return out


def spec_config(study: Study, spec: RunSpec, teacher_checkpoint: str | None = None, resume: bool = False):
    """The DistillConfig of one distillation of the study (what its cell runs, and what a finished copy of it
    elsewhere must have been trained with)."""
    from kdbench.distill import DistillConfig

    return DistillConfig(
        task=spec.task,
        student=spec.student,
        teacher=study.teacher,
        teacher_checkpoint=teacher_checkpoint,
        students_dir=study.students_dir,
        data_dir=study.data_dir,
        output_dir=spec.path,
        train=_train_config(study, spec.task, spec.seed, spec.fraction, dict(spec.budget)),
        resume=resume,
        **dict(spec.recipe),
    )


def _profile_covers(study: Study, runs: list[Path]) -> bool:
    """The profile is complete when profile.json times every run it should (one made while runs were missing, say
    by `profile_finished` after a time limit, is redone once they exist)."""
    from kdbench.io import read_json

    path = study.output_dir / "profile.json"
    if not path.is_file():
        return False
    timed = {str(Path(r)) for r in read_json(path).get("settings", {}).get("runs", [])}
    return {str(r) for r in runs} <= timed


def profile_is_current(study: Study) -> bool:
    """Whether the study's profile.json already times every run finished so far (nothing new to time)."""
    return bool(study.profile) and _profile_covers(study, _finished_profiled(study))


def profiled_runs(study: Study) -> list[Path]:
    """The run folders the study's profile times (none without a profile: block)."""
    return _profiled(study, run_specs(study)) if study.profile else []


def _finished_profiled(study: Study) -> list[Path]:
    return [r for r in profiled_runs(study) if _finished(r)]


def profile_finished(study: Study):
    """Profile the runs that are finished so far (after a time limit stopped the study), so that a partial study
    still gets a report with speeds. Returns the result, or None when the study has no profile or no finished run."""
    if not study.profile:
        return None
    runs = _finished_profiled(study)
    return _profile(study, runs) if runs else None


def _export_cells(spec: RunSpec, export: dict) -> list[Cell]:
    from kdbench.export import ExportConfig, evaluate_run, export_run

    run = spec.path
    variants = ["fp32", *(v for v in (export.get("optimize"), export.get("quantize")) if v)]
    out = [
        Cell(
            f"export/{spec.id}",
            "export",
            lambda: _exported(run, variants),
            lambda: export_run(ExportConfig(run, **export), log=lambda *_: None),
            spec.id,
        )
    ]
    for variant in variants:
        out.append(
            Cell(
                f"evaluate/{spec.id}/{variant}",
                "evaluate",
                lambda v=variant: Run(run).eval_file("onnxruntime", v).is_file(),
                # forced: a variant that failed its parity check is still scored (the report shows the parity)
                lambda v=variant: evaluate_run(run, "onnxruntime", v, force=True),
                spec.id,
            )
        )
    return out


def _profiled(study: Study, specs: list[RunSpec]) -> list[Path]:
    """The runs the profile times: all, or with `profile.task` one task's runs at its first seed, all the data and
    the default recipe (speed depends on the shape only, so one trained copy per student is enough)."""
    task = study.profile.get("task")
    if task is None:
        return [s.path for s in specs]
    chosen: dict[str, Path] = {}
    for s in specs:
        if s.task == task and s.fraction == 1.0 and not s.recipe:
            chosen.setdefault(s.student, s.path)  # with budgets: the first (any copy has the shape's speed)
    return list(chosen.values())


def _interrupted(run: Path) -> bool:
    from kdbench.run import INTERRUPTED, Run

    return Run(run).state() == INTERRUPTED


def _exported(run: Path, variants: list[str]) -> bool:
    return all(v in Run(run).parity() for v in variants)


def _finished(run: Path) -> bool:
    from kdbench.run import FINISHED

    return Run(run).state() == FINISHED


def _profile(study: Study, runs: list[Path]):
    from kdbench.profile import ProfileConfig, run_profile

    cfg = ProfileConfig(
        teacher=study.teacher, runs=tuple(runs), output=study.output_dir / "profile.json", **_profile_settings(study)
    )
    result = run_profile(cfg)
    result.save(cfg.output)
    return result


def _profile_settings(study: Study) -> dict:
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in study.profile.items() if k != "task"}
    # forced: the report shows each variant's parity next to its speed and accuracy
    return {"students": "", "students_dir": study.students_dir, "force": True, **settings}


LOG = "study-log"  # one JSON per finished cell (kind, seconds, when): the ETA's history and the compute table


def _read_log(study: Study) -> dict[str, dict]:
    """Finished cells' records by cell id (one file each, so shards on several machines never overwrite another's)."""
    from kdbench.io import read_json

    root = study.output_dir / LOG
    return {str(f.relative_to(root).with_suffix("")): read_json(f) for f in sorted(root.rglob("*.json"))}


def _seconds_by_kind(log: dict[str, dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for entry in log.values():
        out.setdefault(entry["kind"], []).append(entry["seconds"])
    return out


def _run_cell(study: Study, cell: Cell) -> float:
    """Run one cell and record its duration in the study log."""
    import datetime

    from kdbench.io import atomic_write_json

    began = datetime.datetime.now(datetime.UTC)
    started = time.perf_counter()
    cell.run()
    seconds = time.perf_counter() - started
    record = {
        "kind": cell.kind,
        "seconds": round(seconds, 2),
        "node": os.environ.get("KDBENCH_NODE") or socket.gethostname(),  # where it ran (a Ray node's id on Ray)
        "started": began.isoformat(timespec="milliseconds"),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
    }
    atomic_write_json(study.output_dir / LOG / f"{cell.id}.json", record)
    return seconds


def run_study(
    study: Study,
    only: str | None = None,
    progress: Callable[[str, int, int, float | None], None] | None = None,
    jobs: int = 1,
    deadline: float | None = None,
    executor: str = "local",
    address: str | None = None,
    resources: dict[str, dict[str, float]] | None = None,
) -> list[str]:
    """Run the pending cells (or just `only`), then the report; return the ids that ran.

    `progress(description, done, total, seconds_left)` is called before each cell; the estimate of time left is the
    mean duration of the cells of each kind finished so far (this session or an earlier one, from the study log),
    times the pending cells of that kind (divided by `jobs`). `jobs` > 1 runs that many cells at once in worker
    processes, each cell once the cells it needs are done (one GPU serves several small trainings at once; on CPU
    the cores are shared out). `deadline` (a `time.time()` value): no cell starts after it, and a training in flight
    checkpoints and stops, so a rerun continues. `executor` "ray" runs the cells as Ray tasks instead (on the cluster
    at `address`, or a local Ray instance): see `_run_on_ray`; `resources` overrides a kind's request
    ({"distill": {"num_cpus": 2, "num_gpus": 0.5}}).
    """
    import datasets

    datasets.disable_progress_bars()  # the study shows one progress bar of its own, not one per tokenisation
    check_choice("executor", executor, EXECUTORS)
    all_cells = cells(study, deadline)
    if only is not None:
        chosen = [c for c in all_cells if c.id == only]
        if not chosen:
            raise KdbenchError(
                f"unknown cell {only!r}{suggest(only, [c.id for c in all_cells])}; list them with --list"
            )
        if chosen[0].done():
            return []
        _run_cell(study, chosen[0])
        return [only]
    if jobs < 1:
        raise KdbenchError(f"--jobs must be at least 1, got {jobs}")
    pending = [c for c in all_cells if not c.done()]
    durations = _seconds_by_kind(_read_log(study))
    ran: list[str] = []
    try:
        if executor == "ray":
            _run_on_ray(study, all_cells, pending, durations, progress, deadline, ran, address, resources or {})
        elif jobs == 1:
            _run_in_order(study, all_cells, pending, durations, progress, deadline, ran)
        else:
            _run_in_parallel(study, all_cells, pending, durations, progress, deadline, jobs, ran)
    except DeadlineReached:
        pass  # the training in flight saved a checkpoint; the report below shows what is finished
    write_study_report(study)
    return ran


def _run_in_order(study, all_cells, pending, durations, progress, deadline, ran) -> None:
    for i, cell in enumerate(pending):
        if _past(deadline):
            return
        if progress:
            progress(cell.id, len(all_cells) - len(pending) + i, len(all_cells), _eta(pending[i:], durations))
        durations.setdefault(cell.kind, []).append(_run_cell(study, cell))
        ran.append(cell.id)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def _groups(pending: list[Cell]) -> list[list[Cell]]:
    """Pending cells by group (a run's distillation, export and evaluations stay together, in order)."""
    out: dict[str, list[Cell]] = {}
    for c in pending:
        out.setdefault(c.group or c.id, []).append(c)
    return list(out.values())


def _run_in_parallel(study, all_cells, pending, durations, progress, deadline, jobs, ran) -> None:
    """A small scheduler: up to `jobs` groups at once in spawned worker processes, each group once every cell it
    needs is done, in study order. The profile times alone, after every other cell, in this process."""
    import multiprocessing
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    finished = {c.id for c in all_cells if c.id not in {p.id for p in pending}}
    alone = [c for c in pending if c.kind == "profile"]
    waiting = _groups([c for c in pending if c.kind != "profile"])
    threads = max(1, (os.cpu_count() or 1) // jobs)
    total = len(all_cells)
    running: dict = {}
    failure: BaseException | None = None

    def report(what: str) -> None:
        if progress:
            left = [c for g in waiting for c in g] + [c for g in running.values() for c in g]
            eta = _eta(left, durations)
            progress(what, len(finished), total, None if eta is None else eta / jobs)

    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked; spawn is also what every OS supports
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads,)) as pool:
        while True:
            while failure is None and not _past(deadline) and len(running) < jobs:
                ready = next((g for g in waiting if all(n in finished for c in g for n in c.needs)), None)
                if ready is None:
                    break
                waiting.remove(ready)
                running[pool.submit(_run_group, study, [c.id for c in ready], deadline)] = ready
                report(f"{len(running)} running: {', '.join(g[0].id for g in running.values())}")
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
                try:
                    records = future.result()
                except Exception as exc:  # let the cells in flight finish, start no more, then fail
                    failure = failure or exc
                    continue
                for cell_id, kind, seconds in records:
                    finished.add(cell_id)
                    durations.setdefault(kind, []).append(seconds)
                    ran.append(cell_id)
            report(f"{len(running)} running")
    if failure is not None:
        raise failure
    done_elsewhere = {c.id for c in all_cells if c.id not in finished and c.kind != "profile" and c.done()}
    finished |= done_elsewhere  # cells another process (a --cell job) finished meanwhile count as done
    for cell in alone:
        if _past(deadline) or not all(n in finished for n in cell.needs):
            return
        report(cell.id)
        durations.setdefault(cell.kind, []).append(_run_cell(study, cell))
        ran.append(cell.id)


EXECUTORS = ("local", "ray")


def cell_resources(study: Study, kind: str, overrides: dict[str, dict[str, float]]) -> dict[str, float]:
    """What a cell of `kind` asks Ray for: a GPU for trainings when the study trains on CUDA and for the profile
    when it times CUDA, one CPU otherwise; `overrides` (--cell-resources) replace either."""
    trains_on_gpu = "cuda" in (study.train.get("device"), study.teacher_train.get("device"))
    gpu = (kind in ("finetune", "distill") and trains_on_gpu) or (
        kind == "profile" and study.profile.get("device") == "cuda"
    )
    return {"num_cpus": 1.0, "num_gpus": 1.0 if gpu else 0.0, **overrides.get(kind, {})}


def _group_resources(study: Study, group: list[Cell], overrides: dict) -> dict[str, float]:
    asks = [cell_resources(study, c.kind, overrides) for c in group]
    return {k: max(a[k] for a in asks) for k in asks[0]}


def _run_on_ray(study, all_cells, pending, durations, progress, deadline, ran, address, overrides) -> None:
    """Every group of cells (a teacher fine-tune; a run's distillation with its export and evaluations) as one Ray
    task with its resource request, taking the tasks it needs as arguments (so Ray starts it when they finished).
    A task whose worker dies is retried (an interrupted distillation resumes from its checkpoint); completion is the
    same files as the local executor writes, so a study moves between executors. The profile is the last task (it
    needs every other cell), so it times alone. The study folder must be on a filesystem every node sees."""
    try:
        import ray
    except ImportError:
        raise KdbenchError("--executor ray needs Ray: pip install 'kdbench[ray]' (or pip install ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise KdbenchError(f"cannot reach a Ray cluster at {address or 'a new local instance'}: {first}") from None
    study.output_dir.mkdir(parents=True, exist_ok=True)  # the workers' first check is that they see it
    try:
        task = ray.remote(max_retries=3)(_ray_group)
        finished = {c.id for c in all_cells if c.id not in {p.id for p in pending}}
        groups = _groups(pending)  # the profile, last, needs every other cell: it runs when they are done, alone
        by_cell: dict[str, object] = {}
        refs: dict[object, list[Cell]] = {}
        for group in groups:  # study order: every group's needs are submitted before it
            needs = [by_cell[n] for c in group for n in c.needs if n in by_cell]
            ref = task.options(**_group_resources(study, group, overrides)).remote(
                study, [c.id for c in group], deadline, *needs
            )
            refs[ref] = group
            by_cell.update({c.id: ref for c in group})
        total, waiting = len(all_cells), list(refs)
        failure: BaseException | None = None
        while waiting:
            if progress:
                left = [c for r in waiting for c in refs[r]]
                eta = _eta(left, durations)
                progress(f"{len(waiting)} Ray tasks pending", len(finished), total, eta)
            done, waiting = ray.wait(waiting, num_returns=1)
            try:
                records = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:  # the cell's own error, re-raised once the others finished
                failure = failure or exc.as_instanceof_cause()
                continue
            except ray.exceptions.RayError as exc:
                failure = failure or KdbenchError(f"a Ray task failed: {str(exc).splitlines()[0]}")
                continue
            for cell_id, kind, seconds in records:
                finished.add(cell_id)
                durations.setdefault(kind, []).append(seconds)
                ran.append(cell_id)
        if failure is not None:
            raise failure
    finally:
        if started_here:
            ray.shutdown()


def _ray_group(study: Study, ids: list[str], deadline: float | None, *_needs) -> list[tuple[str, str, float]]:
    """A Ray task: check that this node sees the study folder, take the CPUs Ray gave it, run the group's cells."""
    import ray

    if not study.output_dir.is_dir():
        raise KdbenchError(
            f"the Ray worker on {socket.gethostname()} cannot see the study folder {study.output_dir}; a Ray cluster "
            "needs the study on a filesystem every node shares"
        )
    os.environ["KDBENCH_NODE"] = ray.get_runtime_context().get_node_id()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    _worker_init(max(1, int(cpus)))
    return _run_group(study, ids, deadline)


def _worker_init(threads: int) -> None:
    """A study worker: its share of the CPU threads, and no per-tokenisation progress bars."""
    import datasets
    import torch

    torch.set_num_threads(threads)
    datasets.disable_progress_bars()


def _run_group(study: Study, ids: list[str], deadline: float | None) -> list[tuple[str, str, float]]:
    """In a worker: run the cells `ids` in order, each with its output in the study log's `<cell id>.log`; return
    (id, kind, seconds) of each finished one (a training stopped at the deadline ends the group)."""
    import contextlib

    by_id = {c.id: c for c in cells(study, deadline)}
    out = []
    for cell_id in ids:
        cell = by_id[cell_id]
        if cell.done():
            continue
        if _past(deadline):  # no cell starts after the deadline (a queued Ray task may start late)
            break
        log = study.output_dir / LOG / f"{cell_id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                seconds = _run_cell(study, cell)
        except DeadlineReached:
            break
        out.append((cell_id, cell.kind, seconds))
    return out


def write_study_report(study: Study) -> dict:
    """The report of what the study has produced so far, opened by its setup and compute time (none before the first
    finished run)."""
    from kdbench.report import write_report

    inputs = [study.output_dir / "runs"] + ([study.output_dir / "profile.json"] if study.profile else [])
    if not any(study.output_dir.glob("runs/*/*/metrics.json")):
        return {}  # nothing finished yet (a time limit before the first run): no report to write
    return write_report(
        [p for p in inputs if p.exists()], study.output_dir, preamble=preamble(study), baselines=baselines(study)
    )


def baselines(study: Study) -> dict[str, float]:
    """Per task, the score of always answering the training split's majority class on the evaluation split."""
    from kdbench.data import get_task, load_task
    from kdbench.metrics import majority_baseline

    out = {}
    for name in study.tasks:
        task = get_task(name)
        data = load_task(task, study.data_dir, splits=("train", task.eval_splits[0]))
        out[task.name] = majority_baseline(task, data["train"]["label"], data[task.eval_splits[0]]["label"])
    return out


def _eta(pending: list[Cell], durations: dict[str, list[float]]) -> float | None:
    known = {k: sum(v) / len(v) for k, v in durations.items() if v}
    if not known:
        return None
    fallback = max(known.values())
    return sum(known.get(c.kind, fallback) for c in pending)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def _budget_text(budget: dict) -> str:
    rows = budget.get("max_train_samples", "task's")
    return f"{'all' if rows is None else rows} x {budget.get('epochs', 'train')}"


def _budget(fields_: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in fields_.items()) or "defaults"


def preamble(study: Study) -> str:
    """REPORT.md's opening: the study's setup as run (teacher, sweeps, budgets) and its compute time by cell kind."""
    from kdbench.data import get_task
    from kdbench.io import read_json

    teacher = Path(study.teacher).name if Path(study.teacher).exists() else study.teacher
    lines = [
        f"Study **{study.name}**: teacher `{teacher}`, tasks {', '.join(study.tasks)}. "
        "Regenerate with `kdbench study` on the study file next to this report.",
        "",
        "| sweep | tasks | students | seeds | training fractions | budgets (rows x epochs) | recipe |",
        "|---|---|---|---|---|---|---|",
    ]
    for sw in study.sweeps:
        seeds = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in sw.seeds.items())
        fractions = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in sw.train_fractions.items())
        budgets = (
            "; ".join(f"{k}: {', '.join(_budget_text(b) for b in v)}" for k, v in sw.budgets.items() if any(v))
            or "train"
        )
        recipe = _budget(sw.distill) if sw.distill else "paper"
        lines.append(
            f"| {sw.name} | {', '.join(sw.tasks)} | {sw.students} | {seeds} | {fractions} | {budgets} | {recipe} |"
        )
    lines += [
        "",
        f"- Teacher fine-tunes: {_budget(study.teacher_train or study.train)}"
        + "".join(f"; {t}: {_budget(v)}" for t, v in (study.teacher_task_train or study.task_train).items()),
        f"- Distillations: {_budget(study.train)}"
        + "".join(f"; {t}: {_budget(v)}" for t, v in study.task_train.items()),
    ]
    if study.export:
        lines.append(f"- Export: {_budget(study.export)}")
    if study.profile:
        lines.append(f"- Profile: {_budget(study.profile)}")
    log = _read_log(study)
    by_kind = _seconds_by_kind(log)
    # teacher fine-tunes found in the cache ran before this study's log: their own metrics hold their time
    reused = []
    for task in (get_task(t).name for t in study.tasks):
        done = teacher_folder(study, task) / "metrics.json"
        if f"finetune/{task}" not in log and done.is_file():
            reused.append(read_json(done).get("wall_s", 0.0))
    if by_kind or reused:
        lines += ["", "| compute (this machine) | cells | wall time |", "|---|---|---|"]
        for kind, secs in sorted(by_kind.items()):
            lines.append(f"| {kind} | {len(secs)} | {_duration(sum(secs))} |")
        if reused:
            lines.append(f"| finetune (reused from the cache) | {len(reused)} | {_duration(sum(reused))} |")
        total = sum(sum(v) for v in by_kind.values()) + sum(reused)
        lines.append(f"| **total** | {sum(map(len, by_kind.values())) + len(reused)} | **{_duration(total)}** |")
    if study.notes:
        lines += ["", study.notes.rstrip()]
    return "\n".join(lines)


def teacher_folder(study: Study, task: str) -> Path:
    """Where the study's fine-tuned teacher for `task` is cached (its metrics.json once fine-tuned)."""
    from kdbench.data import get_task
    from kdbench.distill import teacher_cache_dir

    return teacher_cache_dir(study.teacher, get_task(task), _teacher_config(study, task), study.data_dir)
