"""What a fine-tune or a distillation is: its settings as frozen dataclasses, every field with its meaning and
unit, checked on creation; and how two recipes differ (what a resumed run must keep)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kdbench.core.env import DEVICES
from kdbench.core.errors import ConfigError, KdbenchError
from kdbench.core.names import check_choice
from kdbench.tasks.task import Task, recorded_task, resolve_task

FEATURE_LOSSES = ("mse", "cosine")
INITS = ("teacher", "slice", "random")
RECIPE_FIELDS = ("init", "alpha_hard", "alpha_soft", "alpha_feature", "temperature", "feature_loss")  # how it learns


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by teacher fine-tuning and distillation (the paper's defaults)."""

    learning_rate: float = 5e-5  # Adam step size
    epochs: float = 10.0  # passes over the training split
    batch_size: int = 12  # sequences per optimisation step
    max_seq_len: int = 128  # tokens per sequence; longer inputs are truncated
    max_train_samples: int | None = None  # use the first N training rows (None: all)
    max_eval_samples: int | None = None  # use the first N evaluation rows (None: all)
    seed: int = 42  # seeds weights, data order and dropout; CPU runs repeat exactly
    device: str = "cpu"  # cpu or cuda (bf16 autocast on cuda)

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        for name in ("learning_rate", "epochs", "batch_size", "max_seq_len"):
            check_positive(name, getattr(self, name), integer=name in ("batch_size", "max_seq_len"))
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name), integer=True)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            raise ConfigError("seed", f"must be an integer from 0 to 2**32 - 1, got {self.seed!r}")


TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig))
TRAIN_RECIPE = tuple(n for n in TRAIN_FIELDS if n != "device")  # what a resumed run must keep (any device will do)


def check_positive(name: str, value, integer: bool = False) -> None:
    import numbers

    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(name, f"must be a positive {'integer' if integer else 'number'}, got {value!r}")
    if not 0 < value < float("inf"):  # NaN fails this too
        raise ConfigError(name, f"must be positive and finite, got {value}")


@dataclass(frozen=True)
class DistillConfig:
    """One distillation run: which student of which teacher on which task, and how it learns."""

    task: str  # a task name (the shipped GLUE tasks, or one in tasks_dir) or the path of a task file
    student: str  # a student name from the zoo
    teacher: str = "roberta-base"  # hub id or local model folder of the pretrained teacher
    teacher_checkpoint: str | None = None  # an already fine-tuned teacher folder: skips fine-tuning
    students_dir: Path | None = None  # folder of student files (None: the shipped zoo)
    tasks_dir: Path | None = None  # folder of task files (None: the shipped tasks)
    data_dir: Path | None = None  # local copy of a hub task's data, e.g. GLUE (None: the hub; task files: unused)
    output_dir: Path | None = None  # run folder (None: runs/<task>/<student>-<teacher>-s<seed>)
    init: str = "teacher"  # teacher: copy mapped layers where shapes allow; slice: also narrower ones; random: none
    alpha_hard: float = 0.33  # weight of the cross-entropy on the labels
    alpha_soft: float = 0.33  # weight of the KL divergence to the teacher's softened logits
    alpha_feature: float = 0.33  # weight of the loss between mapped hidden states
    temperature: float = 2.0  # softmax temperature of the soft loss (the loss is scaled by T^2)
    feature_loss: str = "mse"  # mse or cosine
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation settings
    resume: bool = False  # continue an interrupted run from its last checkpoint
    overwrite: bool = False  # replace an existing run folder

    def __post_init__(self) -> None:
        self.task_def()  # a task that cannot be resolved fails here, with its file and field
        check_choice("init", self.init, INITS)
        check_choice("feature_loss", self.feature_loss, FEATURE_LOSSES)
        for name in ("alpha_hard", "alpha_soft", "alpha_feature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise ConfigError(name, f"must be a finite number of at least 0, got {value!r}")
        if self.alpha_hard + self.alpha_soft + self.alpha_feature == 0:
            raise KdbenchError("loss weights must not all be zero")
        check_positive("temperature", self.temperature)
        if not isinstance(self.train, TrainConfig):
            raise ConfigError("train", f"must be a TrainConfig, got {type(self.train).__name__}")
        if self.resume and self.overwrite:
            raise KdbenchError("--resume and --overwrite exclude each other")

    @staticmethod
    def recipe_defaults() -> dict:
        """The paper's recipe: the defaults of the RECIPE_FIELDS (a run that differs is labelled in reports)."""
        defaults = {f.name: f.default for f in fields(DistillConfig)}
        return {k: defaults[k] for k in RECIPE_FIELDS}

    def task_def(self) -> Task:
        """The task this run trains on (its file is read once and then cached)."""
        return resolve_task(self.task, self.tasks_dir)

    def run_dir(self, task: Task | None = None) -> Path:
        if self.output_dir is not None:
            return Path(self.output_dir)
        name = (task or self.task_def()).name
        return Path("runs") / name / f"{self.student}-{slug(self.teacher)}-s{self.train.seed}"

    def to_dict(self, task: Task | None = None) -> dict:
        """The recipe as recorded in a run's config.json, with the task's whole definition (`task_spec`): export,
        evaluate and report rebuild the task from it even when its file has moved."""
        d = asdict(self)
        for k in ("students_dir", "tasks_dir", "data_dir", "output_dir"):
            d[k] = str(d[k]) if d[k] is not None else None
        d["task_spec"] = (task or self.task_def()).to_dict()
        return d


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name or name)


def recipe_differences(recorded: dict, cfg: DistillConfig, same_teacher: bool = True) -> list[str]:
    """Fields where `cfg` differs from a run's recorded configuration, as 'field recorded -> given'. With
    `same_teacher` False the teacher's paths are not compared (a run carried from another machine)."""
    now = cfg.to_dict()
    teacher = ("teacher", "teacher_checkpoint") if same_teacher else ()
    pairs = [(k, recorded.get(k), now[k]) for k in ("student", *teacher, *RECIPE_FIELDS)]
    pairs.append(("task", recorded_task(recorded).name if recorded.get("task") else None, now["task_spec"]["name"]))
    pairs += [(k, (recorded.get("train") or {}).get(k), now["train"][k]) for k in TRAIN_RECIPE]
    return [f"{k} {a!r} -> {b!r}" for k, a, b in pairs if a != b]
