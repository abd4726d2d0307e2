"""A study file (YAML or TOML), read and checked whole at load: every field and every configuration it will
build, so a typo fails now, naming the file and the field, not hours later when its cell runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdbench.core.errors import ConfigError, KdbenchError
from kdbench.core.names import suggest
from kdbench.zoo.teacher import DEFAULT_TEACHER

FIELDS = (
    "name",
    "teacher",
    "data_dir",
    "tasks",
    "students",
    "students_dir",
    "tasks_dir",
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
    tasks: tuple[str, ...]  # task names (the file's entries, names or task files, resolved at load)
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
    data_dir: Path | None = None  # local copy of hub tasks' data, e.g. GLUE (None: the hub)
    students_dir: Path | None = None  # student files (None: the shipped zoo)
    tasks_dir: Path | None = None  # task files (None: the shipped tasks)
    task_refs: dict = field(default_factory=dict)  # task name -> what resolves it: a name, or a task file's path
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

    def task(self, name: str):
        """The Task a name of this study stands for (one of its tasks, or a shipped or tasks_dir task)."""
        from kdbench.tasks.task import resolve_task

        return resolve_task(self.task_refs.get(name, name), self.tasks_dir)


def _read_mapping(path: Path) -> dict:
    import tomllib

    from kdbench.core.io import read_text

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


def _sweep(data: dict, name: str, names: dict[str, str]) -> Sweep:
    """A sweep of the file, its task entries (names or task files) replaced by the tasks' names."""
    students = data["students"]
    return Sweep(
        name=name,
        tasks=tuple(names[t] for t in data["tasks"]),
        students=",".join(students) if isinstance(students, list) else students,
        seeds=_per_task(data.get("seeds"), [42]),
        train_fractions=_per_task(data.get("train_fractions"), [1.0]),
        budgets=_per_task(data.get("budgets"), [{}]),
        distill=data.get("distill") or {},
    )


def _check_settings(path: Path, data: dict) -> None:
    """Settings blocks name fields of the configs they feed: a typo fails here, with the allowed names."""
    from dataclasses import fields

    from kdbench.deploy.export import ExportConfig
    from kdbench.measure.profile import ProfileConfig
    from kdbench.train.config import TrainConfig

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


def load_study(
    path: Path, teacher: str | None = None, data_dir: Path | None = None, tasks_dir: Path | None = None
) -> Study:
    """Read a study file (YAML or TOML); `teacher`, `data_dir` and `tasks_dir` override the file's (they are machine
    paths). `tasks` (and a sweep's) list task names or task files (relative to the study file).

    `seeds` and `train_fractions` are a list (every task) or a mapping task -> list with an optional "default".
    """
    from kdbench.train.config import RECIPE_FIELDS

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
    for key in ("name", "teacher", "notes", "output_dir", "data_dir", "students_dir", "tasks_dir"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise KdbenchError(f"{path}: {key}: must be text, got {data[key]!r}")
    sweeps = [("main", data)] + [(f"sweeps[{i}]", sw) for i, sw in enumerate(extra)]
    for where, sw in sweeps:
        _check_sweep_types(path, where, sw)
    tasks_dir = tasks_dir or resolve(data.get("tasks_dir"))
    names, refs = _resolve_tasks(path, sweeps, base, tasks_dir)
    study = Study(
        name=data.get("name", path.stem),
        teacher=teacher or data.get("teacher", DEFAULT_TEACHER),
        sweeps=(
            _sweep(data, "main", names),
            *(_sweep(sw, sw.get("name", f"sweep{i + 1}"), names) for i, sw in enumerate(extra)),
        ),
        output_dir=resolve(data.get("output_dir", ".")),
        data_dir=data_dir or resolve(data.get("data_dir")),
        students_dir=resolve(data.get("students_dir")),
        tasks_dir=tasks_dir,
        task_refs=refs,
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


def _resolve_tasks(path: Path, sweeps: list, base: Path, tasks_dir: Path | None) -> tuple[dict, dict]:
    """Every task entry of the sweeps resolved now (a task file relative to the study file): (entry -> task name,
    task name -> what resolves it). A bad entry fails naming the study file, the sweep and the task's own file."""
    from kdbench.tasks.task import resolve_task

    names: dict[str, str] = {}
    refs: dict[str, str] = {}
    for where, sw in sweeps:
        for entry in sw["tasks"]:
            if entry in names:
                continue
            local = Path(entry).expanduser()
            ref = str(local if local.is_absolute() else base / local) if entry.endswith(".toml") else entry
            try:
                task = resolve_task(ref, tasks_dir)
            except KdbenchError as exc:
                raise KdbenchError(f"{path}: {where}.tasks: {exc}") from None
            if refs.get(task.name, ref) != ref:
                raise KdbenchError(f"{path}: {where}.tasks: {entry} and {refs[task.name]} are both named {task.name!r}")
            names[entry], refs[task.name] = task.name, ref
    return names, refs


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
    from kdbench.deploy.export import ExportConfig
    from kdbench.measure.profile import ProfileConfig
    from kdbench.train.config import DistillConfig
    from kdbench.zoo.students import load_zoo, select

    def at(where: str, build):
        try:
            return build()
        except ConfigError as exc:
            raise KdbenchError(f"{path}: {where}.{exc.setting}: {exc.problem}") from None
        except KdbenchError as exc:
            raise KdbenchError(f"{path}: {where}: {exc}") from None
        except TypeError as exc:  # an unknown keyword the field checks let through
            raise KdbenchError(f"{path}: {where}: {exc}") from None

    from kdbench.core.io import check_folder_writable

    try:
        check_folder_writable(study.output_dir, "output_dir")
    except KdbenchError as exc:
        raise KdbenchError(f"{path}: {exc}") from None
    if study.data_dir is not None and not Path(study.data_dir).is_dir():
        raise KdbenchError(f"{path}: data_dir: {study.data_dir} is not a folder (pass --data-dir with a GLUE copy)")
    zoo = at("students_dir", lambda: load_zoo(study.students_dir))
    for sw in study.sweeps:
        where = "main" if sw.name == "main" else f"sweep {sw.name!r}"
        for task in list(sw.seeds) + list(sw.train_fractions) + list(sw.budgets):
            if task != "default":
                at(f"{where}: per-task key", lambda task=task: study.task(task))
        students = at(f"{where}.students", lambda sw=sw: select(zoo, sw.students))
        if not students:
            raise KdbenchError(f"{path}: {where}.students: selects no student")
        first = students[0].name
        task = study.task_refs[sw.tasks[0]]
        at(
            f"{where}.distill",
            lambda sw=sw, first=first, task=task: DistillConfig(
                task=task, tasks_dir=study.tasks_dir, student=first, **sw.distill
            ),
        )
    for sw in study.sweeps:
        for task in sw.tasks:
            for budget in for_task(sw.budgets, task) or [{}]:
                at(
                    "budgets" if budget else "train",
                    lambda t=task, b=budget: student_train_config(study, t, 42, 1.0, b, True),
                )
    for task in study.tasks:
        at("teacher_train", lambda task=task: teacher_train_config(study, task))
    for block in ("task_train", "teacher_task_train"):
        for task in getattr(study, block):
            at(block, lambda task=task: study.task(task))
    if study.export:
        export = {k: v for k, v in study.export.items() if k != "tasks"}
        at("export", lambda: ExportConfig(Path("."), **export))
        unknown = set(study.export.get("tasks") or ()) - set(study.tasks)
        if unknown:
            raise KdbenchError(f"{path}: export.tasks: {', '.join(sorted(unknown))} not among the study's tasks")
    if study.profile:
        settings = profile_settings(study)
        at("profile", lambda: ProfileConfig(teacher=study.teacher, **settings))
        task = study.profile.get("task")
        if task is not None and task not in study.tasks:
            raise KdbenchError(
                f"{path}: profile.task: {task!r} is not among the study's tasks ({', '.join(study.tasks)})"
            )


def _config(where: str, fields_: dict):
    from kdbench.train.config import TrainConfig

    return TrainConfig(**fields_)  # unknown fields were refused by _check_settings


def teacher_train_config(study: Study, task: str):
    """The teacher fine-tune's settings: `teacher_train` (or `train`) with the task's overrides."""
    base = study.teacher_train or study.train
    overrides = study.teacher_task_train.get(task, {}) if study.teacher_train else study.task_train.get(task, {})
    return _config("teacher_train" if study.teacher_train else "train", {**base, **overrides})


def student_train_config(
    study: Study, task: str, seed: int, fraction: float, budget: dict | None = None, check_only: bool = False
):
    from kdbench.tasks.loading import load_task

    fields_ = {**study.train, **study.task_train.get(task, {}), **(budget or {}), "seed": seed}
    if fraction < 1.0 and not check_only:
        n = len(load_task(study.task(task), study.data_dir, splits=("train",))["train"])
        cap = fields_.get("max_train_samples") or n
        fields_["max_train_samples"] = max(1, round(min(cap, n) * fraction))
    return _config("train", fields_)


def for_task(mapping: dict, task: str) -> list:
    return list(mapping.get(task, mapping.get("default", [])))


def profile_settings(study: Study) -> dict:
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in study.profile.items() if k != "task"}
    # forced: the report shows each variant's parity next to its speed and accuracy
    return {"students": "", "students_dir": study.students_dir, "force": True, **settings}
