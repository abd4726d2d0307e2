"""Tasks are files, like students: a TOML file says where the data is (local CSV, TSV, JSON Lines or parquet files, or
a hub dataset), which one or two columns hold the text, which the label, the label names (or a regression score),
and the metrics. The nine GLUE tasks ship as files in `tasks/`; `--task` takes a name from there (or from
`--tasks-dir`) or the path of any task file.

    name = "reviews"                           # what --task takes, and the task's name in reports
    description = "product reviews, 5 stars"   # one line for tables
    text = ["title", "body"]                   # one or two text columns
    label = "stars"                            # the label column (default "label")
    labels = ["1", "2", "3", "4", "5"]         # class names in id order; string labels map to these ids
                                               # ("regression" for a score)
    metrics = ["accuracy", "f1_macro"]         # the first one picks the best epoch

    [data]
    train = "reviews/train.csv"                # local files, relative to this file: .csv .tsv .jsonl .json .parquet
    validation = "reviews/dev.csv"
    # or a hub dataset: hub = "nyu-mll/glue", config = "rte", train = "train", validation = "validation"
    #   (validation may list several splits); glue_tsv = "RTE" names the folder of a classic glue_data/ copy

A file is checked whole when loaded: an unknown field, a missing one, a metric the label space cannot have, a data
file that is not there - each fails with the file, the field and what is allowed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kdbench.core.errors import KdbenchError
from kdbench.core.names import suggest

CLASSIFICATION_METRICS = ("accuracy", "f1", "f1_macro", "matthews_correlation")
REGRESSION_METRICS = ("pearson", "spearman")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
REGRESSION = "regression"
FIELDS = ("name", "description", "text", "label", "labels", "metrics", "data")
DATA_FIELDS = ("hub", "config", "train", "validation", "glue_tsv")
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class Task:
    """One task: its text fields, label space, metrics, and where its splits come from."""

    name: str  # what --task takes, e.g. "rte"
    text_fields: tuple[str, ...]  # one or two text columns
    num_labels: int  # classes; 1 means regression (a score, as STS-B)
    metrics: tuple[str, ...]  # the first one picks the best checkpoint
    eval_splits: tuple[str, ...] = ("validation",)  # evaluation splits (MNLI: matched and mismatched)
    tsv_dir: str = ""  # GLUE: folder name in a classic glue_data/ copy
    label_names: tuple[str, ...] = ()  # class names in id order (string labels map to these ids)
    label_column: str = "label"  # the column holding the label
    description: str = ""  # one line for tables
    hub: str = ""  # a hub dataset id; empty for local files
    hub_config: str | None = None  # the hub dataset's config
    files: dict = field(default_factory=dict)  # local files: kdbench split ("train", "validation") -> absolute path
    source: str = ""  # the task file it was read from

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    def to_dict(self) -> dict:
        """The definition, JSON-ready: a run records it, so export and evaluate rebuild the task without its file."""
        d = asdict(self)
        d["text_fields"], d["metrics"], d["eval_splits"] = (
            list(self.text_fields),
            list(self.metrics),
            list(self.eval_splits),
        )
        d["label_names"] = list(self.label_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Task:
        return cls(
            **{
                **d,
                **{k: tuple(d[k]) for k in ("text_fields", "metrics", "eval_splits", "label_names") if k in d},
            }
        )

    def fingerprint(self) -> str:
        """What keys a cached fine-tuned teacher: the shipped GLUE tasks by name (caches made before task files stay
        valid), any other task by its whole definition (two files that both say name = "x" stay apart)."""
        if self.tsv_dir:
            return self.name
        definition = json.dumps({**self.to_dict(), "source": ""}, sort_keys=True)
        return f"{self.name}-{hashlib.sha1(definition.encode()).hexdigest()[:8]}"


# ------------------------------------------------------------------------------------------------------ parsing
def _fail(source: str, fld: str, problem: str) -> KdbenchError:
    return KdbenchError(f"{source}: {fld}: {problem}")


def _names(value, source: str, fld: str, counts: tuple[int, ...]) -> tuple[str, ...]:
    """A name or a list of names (non-empty strings), as many as `counts` allows."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise _fail(source, fld, f"must be a column name or a list of them, got {value!r}")
    if len(items) not in counts or len(set(items)) != len(items):
        allowed = " or ".join(map(str, counts))
        raise _fail(source, fld, f"names {allowed} distinct column(s), got {len(items)}: {items}")
    return tuple(items)


def _label_space(data: dict, source: str) -> tuple[int, tuple[str, ...]]:
    """(num_labels, label names) from `labels`: a list of class names, or "regression"."""
    labels = data.get("labels")
    if labels == REGRESSION:
        return 1, ()
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(v, str) and v for v in labels):
        raise _fail(
            source, "labels", f'must list two or more class names in id order, or be "regression"; got {labels!r}'
        )
    if len(set(labels)) != len(labels):
        raise _fail(source, "labels", f"names a class twice: {labels}")
    return len(labels), tuple(labels)


def _metrics(data: dict, source: str, num_labels: int) -> tuple[str, ...]:
    metrics = data.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise _fail(source, "metrics", f"must list one or more of {', '.join(METRICS)}; got {metrics!r}")
    allowed = REGRESSION_METRICS if num_labels == 1 else CLASSIFICATION_METRICS
    for m in metrics:
        if m not in METRICS:
            raise _fail(
                source, "metrics", f"{m!r} is not a metric{suggest(str(m), METRICS)}; allowed: {', '.join(METRICS)}"
            )
        if m not in allowed:
            kind = "a regression task" if num_labels == 1 else "a classification task"
            raise _fail(source, "metrics", f"{m} does not fit {kind}; allowed: {', '.join(allowed)}")
        if m == "f1" and num_labels != 2:
            raise _fail(source, "metrics", f"f1 is binary: this task has {num_labels} classes (use f1_macro)")
    return tuple(dict.fromkeys(metrics))


def _data(data: dict, source: str, base: Path) -> dict:
    """The [data] table: a hub dataset (id, config, split names) or local files (paths checked now)."""
    block = data.get("data")
    if not isinstance(block, dict):
        raise _fail(source, "data", "must be a table: local files (train, validation) or a hub dataset (hub, ...)")
    for key in block:
        if key not in DATA_FIELDS:
            raise _fail(
                source, f"data.{key}", f"unknown field{suggest(key, DATA_FIELDS)}; allowed: {', '.join(DATA_FIELDS)}"
            )
    for key in ("train", "validation"):
        if key not in block:
            raise _fail(source, f"data.{key}", "is required")
    train, validation = block["train"], block["validation"]
    splits = [validation] if isinstance(validation, str) else validation
    if not isinstance(train, str) or not train or not isinstance(splits, list) or not splits:
        raise _fail(
            source, "data", f"train is a split or file, validation one or a list; got {train!r}, {validation!r}"
        )
    if not all(isinstance(s, str) and s for s in splits):
        raise _fail(source, "data.validation", f"must be a split or file, or a list of them; got {validation!r}")
    if block.get("hub") is not None:
        if not isinstance(block["hub"], str) or not block["hub"].strip():
            raise _fail(source, "data.hub", f"must be a hub dataset id, got {block['hub']!r}")
        if train != "train":
            raise _fail(source, "data.train", f"a hub task's training split is named 'train', got {train!r}")
        return {
            "hub": block["hub"],
            "hub_config": block.get("config"),
            "eval_splits": tuple(splits),  # the hub's own split names
            "tsv_dir": block.get("glue_tsv", ""),
            "files": {},
        }
    if "config" in block or "glue_tsv" in block:
        raise _fail(source, "data", "config and glue_tsv belong to a hub dataset (hub = ...)")
    if len(splits) != 1:
        raise _fail(source, "data.validation", "local files: one validation file")
    files = {}
    for split, name in (("train", train), ("validation", splits[0])):
        path = Path(name).expanduser()
        path = path if path.is_absolute() else base / path
        if path.suffix.lower() not in FORMATS:
            raise _fail(source, f"data.{split}", f"{name} is not a .csv, .tsv, .jsonl, .json or .parquet file")
        if not path.is_file():
            raise _fail(source, f"data.{split}", f"no such file: {path}")
        files[split] = str(path.resolve())
    return {"hub": "", "hub_config": None, "eval_splits": ("validation",), "tsv_dir": "", "files": files}


def parse_task(data: dict, source: str, default_name: str, base: Path) -> Task:
    """Check a task file's table and turn it into a Task; every problem names the file and the field."""
    for key in data:
        if key not in FIELDS:
            raise _fail(source, key, f"unknown field{suggest(key, FIELDS)}; allowed: {', '.join(FIELDS)}")
    for key in ("text", "labels", "metrics", "data"):
        if key not in data:
            raise _fail(source, key, "is required")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip() or any(c in name for c in ",/\\ "):
        raise _fail(source, "name", f"must be a name without spaces, commas or slashes, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail(source, "description", f"must be text, got {description!r}")
    text = _names(data["text"], source, "text", (1, 2))
    label = data.get("label", "label")
    if not isinstance(label, str) or not label.strip() or label in text:
        raise _fail(source, "label", f"must name the label column (not a text column), got {label!r}")
    num_labels, label_names = _label_space(data, source)
    metrics = _metrics(data, source, num_labels)
    where = _data(data, source, base)
    return Task(
        name=name,
        text_fields=text,
        num_labels=num_labels,
        metrics=metrics,
        label_names=label_names,
        label_column=label,
        description=description,
        source=source,
        **where,
    )


def load_task_file(path: Path) -> Task:
    """Read and check one task file (once per file and modification time)."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None  # missing or unreadable: read_text says which, in one line
    return _read_task_file(str(path), stamp)


@functools.lru_cache(maxsize=64)
def _read_task_file(name: str, _stamp: int | None) -> Task:
    from kdbench.core.io import read_text

    path = Path(name)
    text = read_text(path, "task file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KdbenchError(f"{path}: not valid TOML ({exc})") from None
    return parse_task(data, str(path), path.stem, path.resolve().parent)


# ---------------------------------------------------------------------------------------------------- the shelf
def default_tasks_dir() -> Path:
    """The task files shipped with kdbench: `tasks/` of a source checkout, else the copy bundled in the wheel."""
    here = Path(__file__).resolve().parent  # kdbench/tasks
    for candidate in (here.parents[1] / "tasks", here / "files"):
        if candidate.is_dir():
            return candidate
    raise KdbenchError("kdbench's task files are missing from this install; pass --tasks-dir")


def load_tasks(directory: Path | None = None) -> dict[str, Task]:
    """Every task file in `directory` (default: the shipped tasks), by name. A bad file stops the load, named. Read
    once per folder and files' modification times (a run resolves its task in several steps)."""
    directory = Path(directory) if directory is not None else default_tasks_dir()
    if directory.is_file():
        raise KdbenchError(f"tasks folder {directory} is a file; pass the folder that holds the .toml files")
    if not directory.is_dir():
        raise KdbenchError(f"tasks folder {directory} does not exist")
    files = tuple((str(p), p.stat().st_mtime_ns) for p in sorted(directory.glob("*.toml")))
    if not files:
        raise KdbenchError(f"tasks folder {directory} holds no *.toml task files")
    return dict(_read_tasks(files))


@functools.lru_cache(maxsize=32)
def _read_tasks(files: tuple[tuple[str, int], ...]) -> tuple[tuple[str, Task], ...]:
    tasks: dict[str, Task] = {}
    for name, _mtime in files:
        task = load_task_file(Path(name))
        if task.name in tasks:
            raise KdbenchError(f"{name}: task name {task.name!r} is also used by {tasks[task.name].source}")
        tasks[task.name] = task
    return tuple(tasks.items())


ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}


def resolve_task(spec: str, tasks_dir: Path | None = None) -> Task:
    """The task `spec` names: the path of a task file (it ends in .toml or is a file), or a name (case-insensitive;
    'SST-2' works) among the task files of `tasks_dir` (default: the shipped ones), with a "did you mean"."""
    if not isinstance(spec, str) or not spec.strip():
        raise KdbenchError(f"a task is a name or the path of a task file, got {spec!r}")
    path = Path(spec).expanduser()
    if spec.endswith(".toml") or path.is_file():
        return load_task_file(path)
    tasks = load_tasks(tasks_dir)
    key = ALIASES.get(spec.lower(), spec.lower())
    found = {n.lower(): t for n, t in tasks.items()}.get(key)
    if found is None:
        choices = sorted(tasks)
        raise KdbenchError(
            f"unknown task {spec!r}{suggest(spec, choices)}; choose from: {', '.join(choices)} (or pass a task file)"
        )
    return found


def get_task(name: str) -> Task:
    """A shipped task by name (case-insensitive; 'SST-2' works), with a 'did you mean' on typos."""
    return resolve_task(name)


def recorded_task(doc: dict) -> Task:
    """The task a run was trained on, from its recorded config or metrics: the definition it carries (a task file
    need not be there any more), else its name among the shipped tasks (runs written before task files)."""
    spec = doc.get("task_spec")
    return Task.from_dict(spec) if spec else get_task(doc["task"])
