"""Teacher fine-tuning and knowledge distillation with the paper's recipe, on the Hugging Face Trainer.

Read top to bottom:
  1. the configuration (every field with its meaning and unit),
  2. the layer map and the student built from the teacher,
  3. the three losses,
  4. the Trainer subclass that adds the teacher,
  5. `finetune` (cached per teacher, task and hyper-parameters) and `distill`, which write a run folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kdbench import env
from kdbench.backends import cache_root
from kdbench.clock import DEVICES, check_device
from kdbench.data import Task, get_task, load_task, tokenize
from kdbench.errors import ConfigError, DeadlineReached, KdbenchError, check_choice
from kdbench.io import atomic_write_json, read_json
from kdbench.metrics import main_score, task_metrics
from kdbench.run import FINISHED, FOREIGN, INTERRUPTED, WALL_FILE, Run, exclusive, last_checkpoint, wall_time_so_far

FEATURE_LOSSES = ("mse", "cosine")
INITS = ("teacher", "slice", "random")
RECIPE_FIELDS = ("init", "alpha_hard", "alpha_soft", "alpha_feature", "temperature", "feature_loss")  # how it learns


# ------------------------------------------------------------------------------------------------ 1. configuration
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
            _check_positive(name, getattr(self, name), integer=name in ("batch_size", "max_seq_len"))
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name), integer=True)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            raise ConfigError("seed", f"must be an integer from 0 to 2**32 - 1, got {self.seed!r}")


TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig))
TRAIN_RECIPE = tuple(n for n in TRAIN_FIELDS if n != "device")  # what a resumed run must keep (any device will do)


def _check_positive(name: str, value, integer: bool = False) -> None:
    import numbers

    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(name, f"must be a positive {'integer' if integer else 'number'}, got {value!r}")
    if not 0 < value < float("inf"):  # NaN fails this too
        raise ConfigError(name, f"must be positive and finite, got {value}")


@dataclass(frozen=True)
class DistillConfig:
    """One distillation run: which student of which teacher on which task, and how it learns."""

    task: str  # GLUE task name (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli)
    student: str  # a student name from the zoo
    teacher: str = "roberta-base"  # hub id or local model folder of the pretrained teacher
    teacher_checkpoint: str | None = None  # an already fine-tuned teacher folder: skips fine-tuning
    students_dir: Path | None = None  # folder of student files (None: the shipped zoo)
    data_dir: Path | None = None  # local GLUE copy (None: the Hugging Face hub)
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
        get_task(self.task)
        check_choice("init", self.init, INITS)
        check_choice("feature_loss", self.feature_loss, FEATURE_LOSSES)
        for name in ("alpha_hard", "alpha_soft", "alpha_feature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise ConfigError(name, f"must be a finite number of at least 0, got {value!r}")
        if self.alpha_hard + self.alpha_soft + self.alpha_feature == 0:
            raise KdbenchError("loss weights must not all be zero")
        _check_positive("temperature", self.temperature)
        if not isinstance(self.train, TrainConfig):
            raise ConfigError("train", f"must be a TrainConfig, got {type(self.train).__name__}")
        if self.resume and self.overwrite:
            raise KdbenchError("--resume and --overwrite exclude each other")

    @staticmethod
    def recipe_defaults() -> dict:
        """The paper's recipe: the defaults of the RECIPE_FIELDS (a run that differs is labelled in reports)."""
        defaults = {f.name: f.default for f in fields(DistillConfig)}
        return {k: defaults[k] for k in RECIPE_FIELDS}

    def run_dir(self) -> Path:
        if self.output_dir is not None:
            return Path(self.output_dir)
        return Path("runs") / get_task(self.task).name / f"{self.student}-{_slug(self.teacher)}-s{self.train.seed}"

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("students_dir", "data_dir", "output_dir"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name or name)


# ------------------------------------------------------------------------------ 2. layer map and student building
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
    tensors take the teacher's first heads, matching `kdbench.modeling.prune_heads`. With `slice_all` every smaller
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
    from kdbench.modeling import build_model

    student = build_model(teacher_model.config, shape)  # labels and problem type follow the teacher
    lmap = layer_map(shape.layers, teacher_model.config.num_hidden_layers)
    report = (
        InitReport(random=[n for n, _ in student.named_parameters()])
        if init == "random"
        else init_from_teacher(student, teacher_model, lmap, shape.pruned, slice_all=init == "slice")
    )
    return student.train(), lmap, report


# ---------------------------------------------------------------------------------------------------- 3. the losses
def hard_loss(student_logits, labels, regression: bool):
    """Cross-entropy on the labels (mean squared error for regression)."""
    import torch.nn.functional as F

    if regression:
        return F.mse_loss(student_logits.squeeze(-1), labels.float())
    return F.cross_entropy(student_logits, labels)


def soft_loss(student_logits, teacher_logits, temperature: float, regression: bool):
    """KL(teacher || student) on temperature-softened distributions, times T^2 (MSE to the teacher for regression)."""
    import torch.nn.functional as F

    if regression:
        return F.mse_loss(student_logits.squeeze(-1), teacher_logits.squeeze(-1))
    t = temperature
    return (
        F.kl_div(
            F.log_softmax(student_logits / t, -1),
            F.log_softmax(teacher_logits / t, -1),
            log_target=True,
            reduction="batchmean",
        )
        * t
        * t
    )


def feature_loss(student_states, teacher_states, lmap: list[int], attention_mask, projection, kind: str):
    """Mean over mapped layer pairs of the per-token MSE or (1 - cosine) between projected student states and
    teacher states, averaged over real (unpadded) tokens. States are each layer's output (index 0 = embeddings)."""
    import torch.nn.functional as F

    mask = attention_mask.unsqueeze(-1).to(student_states[1].dtype)
    tokens = mask.sum()
    total = 0.0
    for i, j in enumerate(lmap):
        s = projection(student_states[i + 1])
        t = teacher_states[j + 1]
        if kind == "mse":
            per_token = ((s - t) ** 2).mean(-1, keepdim=True)
        else:
            per_token = 1 - F.cosine_similarity(s, t, dim=-1).unsqueeze(-1)
        total = total + (per_token * mask).sum() / tokens
    return total / len(lmap)


# -------------------------------------------------------------------------------------- 4. the distillation trainer
def _distillation_module():
    import torch

    class DistillationModule(torch.nn.Module):
        """The student plus the projection to the teacher's width (trained with it, not saved with the student)."""

        def __init__(self, student, student_width: int, teacher_width: int):
            super().__init__()
            self.student = student
            self.projection = (
                torch.nn.Identity() if student_width == teacher_width else torch.nn.Linear(student_width, teacher_width)
            )

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            return self.student(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **extra, **kwargs)

    return DistillationModule


def _base_trainer_class():
    """The Trainer, able to resume a data-parallel run on CPUs: for world_size > 1 it loads the optimizer onto
    `args.device`, which on a CPU is torch.device("cpu", 0) - a location torch.load cannot restore ("tagged with
    cpu:0") - so that one load is mapped to "cpu"."""
    import torch
    from transformers import Trainer

    class ResumableTrainer(Trainer):
        def _load_optimizer_and_scheduler(self, checkpoint):
            if self.args.device.type != "cpu" or self.args.world_size == 1:
                return super()._load_optimizer_and_scheduler(checkpoint)
            original = torch.load

            def load(*args, map_location=None, **kwargs):
                if isinstance(map_location, torch.device) and map_location.type == "cpu":
                    map_location = "cpu"
                return original(*args, map_location=map_location, **kwargs)

            torch.load = load
            try:
                return super()._load_optimizer_and_scheduler(checkpoint)
            finally:
                torch.load = original

    return ResumableTrainer


def _kd_trainer_class():
    import torch

    Trainer = _base_trainer_class()

    class KDTrainer(Trainer):
        """Trainer whose loss adds the teacher: alpha_hard*CE + alpha_soft*KL(T) + alpha_feature*feature."""

        def __init__(self, *args, teacher, lmap, cfg: DistillConfig, regression: bool, **kwargs):
            super().__init__(*args, **kwargs)
            self.teacher = teacher.eval()
            self.lmap, self.cfg, self.regression = lmap, cfg, regression
            self.teacher.to(self.args.device)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            out = model(**inputs, output_hidden_states=True)
            with torch.no_grad():
                t_out = self.teacher(**inputs, output_hidden_states=True)
            c = self.cfg
            core = model.module if hasattr(model, "module") else model  # DDP wraps the module
            loss = c.alpha_hard * hard_loss(out.logits, labels, self.regression)
            if c.alpha_soft:
                loss = loss + c.alpha_soft * soft_loss(out.logits, t_out.logits, c.temperature, self.regression)
            if c.alpha_feature:
                loss = loss + c.alpha_feature * feature_loss(
                    out.hidden_states,
                    t_out.hidden_states,
                    self.lmap,
                    inputs["attention_mask"],
                    core.projection,
                    c.feature_loss,
                )
            # evaluation only needs the logits; hidden states would be gathered into the predictions
            return (loss, {"logits": out.logits}) if return_outputs else loss

    return KDTrainer


def _deadline_callback(deadline: float):
    """A TrainerCallback that, once `time.time()` passes `deadline`, saves a checkpoint and stops training: a study
    given a time limit ends cleanly and a rerun resumes from that step instead of losing the epoch."""
    from transformers import TrainerCallback

    class StopAtDeadline(TrainerCallback):
        reached = False

        def on_step_end(self, args, state, control, **kwargs):
            if _agreed(time.time() >= deadline):
                self.reached = True
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopAtDeadline()


def _agreed(flag: bool) -> bool:
    """True when any process of a data-parallel launch says so: they must all stop at the same step, or the ones
    still training wait forever for the others' gradients."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1 if flag else 0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _check_deadline(callback, what: str, where: Path) -> None:
    if callback is not None and callback.reached:
        raise DeadlineReached(f"{what} stopped at the deadline; its checkpoint in {where} continues on a rerun")


# ----------------------------------------------------------------------------------- 5. fine-tuning and distilling
def world() -> tuple[int, int]:
    """(rank, number of processes) of a data-parallel launch (torchrun / accelerate launch set RANK, WORLD_SIZE);
    (0, 1) for a plain process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this process writes: the only one, or rank 0 of a data-parallel launch."""
    return world()[0] == 0


def _barrier() -> None:
    """Wait for every process of a data-parallel launch (nothing to wait for in a plain process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _main_only(context):
    """`context` in the writing process; nothing in the others of a data-parallel launch."""
    return context if is_main() else contextlib.nullcontext()


def _check_world(train: TrainConfig) -> None:
    """batch_size is the global batch (the recipe's 12, however many processes share it): it must split evenly."""
    _rank, size = world()
    if train.batch_size % size:
        raise ConfigError(
            "batch_size", f"is {train.batch_size}, which {size} processes cannot share evenly (it is the global batch)"
        )


def _version_args(arguments_class) -> dict:
    """TrainingArguments fields whose name changed between transformers 4.x and 5.x."""
    names = {f.name for f in fields(arguments_class)}
    out = {}
    if "train_sampling_strategy" in names:  # transformers 5: one sampler option replaces group_by_length
        out["train_sampling_strategy"] = "group_by_length"
    else:
        out["group_by_length"] = True
    if "save_safetensors" in names:  # transformers 5 always saves safetensors and dropped the option
        out["save_safetensors"] = True
    return out


def _training_args(train: TrainConfig, output_dir: Path, task: Task, eval_keys: list[str], progress: bool = True):
    from transformers import TrainingArguments

    best = f"eval_{eval_keys[0]}_{task.main_metric}" if len(eval_keys) > 1 else f"eval_{task.main_metric}"
    return TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=train.learning_rate,
        num_train_epochs=train.epochs,
        per_device_train_batch_size=train.batch_size // world()[1],  # the global batch, shared by the processes
        per_device_eval_batch_size=max(32, train.batch_size),
        optim="adamw_torch",
        weight_decay=0.0,
        lr_scheduler_type="linear",
        seed=train.seed,
        data_seed=train.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model=best,
        greater_is_better=True,
        save_total_limit=2,
        length_column_name="length",  # batches of similar length: less padding
        logging_strategy="epoch",
        report_to=[],
        use_cpu=train.device == "cpu",
        bf16=train.device == "cuda",
        dataloader_num_workers=0,
        label_names=["labels"],
        disable_tqdm=not progress,
        **_version_args(TrainingArguments),
    )


def _load_pretrained(name: str, num_labels: int, what: str):
    """Model and tokenizer from a hub id or folder, with one-line errors for missing or corrupt weights."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(name)
    if path.exists() and not (path / "config.json").is_file():
        raise KdbenchError(f"{what} {name} has no config.json; pass a Hugging Face model folder")
    from kdbench.modeling import fp32_weights

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        # fp32 master weights even from an fp16 checkpoint (transformers 5 would otherwise keep the saved dtype)
        model = AutoModelForSequenceClassification.from_pretrained(
            name, num_labels=num_labels, ignore_mismatched_sizes=True, **fp32_weights()
        )
    except Exception as exc:  # OSError for missing files, SafetensorError and others for corrupt ones
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if path.exists() and not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise KdbenchError(f"{what} {name} has no weights (no *.safetensors or *.bin)") from None
        raise KdbenchError(f"cannot load {what} {name}: {first[:200]}") from None
    return model, tokenizer


def _evaluate_all(trainer, tokenized, task: Task) -> dict[str, dict[str, float]]:
    return {
        split: {
            k.removeprefix("eval_"): v
            for k, v in trainer.evaluate(tokenized[split]).items()
            if k.removeprefix("eval_") in task.metrics
        }
        for split in task.eval_splits
    }


def _eval_datasets(tokenized, task: Task):
    if len(task.eval_splits) == 1:
        return tokenized[task.eval_splits[0]]
    return {s.removeprefix("validation_"): tokenized[s] for s in task.eval_splits}


def _canonical(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def teacher_cache_dir(teacher: str, task: Task, train: TrainConfig, data_dir: Path | None) -> Path:
    """Where a fine-tuned teacher is cached: keyed by teacher, task, data source and hyper-parameters."""
    key = json.dumps(
        {
            "teacher": str(Path(teacher).resolve()) if Path(teacher).exists() else teacher,
            "task": task.name,
            "data": str(Path(data_dir).resolve()) if data_dir else "hub",
            # 2 and 2.0 epochs are one setting: whole floats are written as integers so they key one cache entry
            "train": {k: _canonical(v) for k, v in asdict(train).items() if k != "device"},
        },
        sort_keys=True,
    )
    return cache_root() / "teachers" / f"{_slug(teacher)}-{task.name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def _checked_teacher_config(name: str, max_seq_len: int, what: str):
    """The teacher's config, checked before anything is written: it exists, is an encoder, and has positions for
    `max_seq_len` tokens."""
    from kdbench.profile import max_sequence_length
    from kdbench.teacher import load_teacher_config

    config = load_teacher_config(name)
    limit = max_sequence_length(config)
    if limit is not None and max_seq_len > limit:
        raise ConfigError("max_seq_len", f"is {max_seq_len}, more than the {what} {name} allows ({limit} positions)")
    return config


@dataclass
class _Finetune:
    """A teacher fine-tune whose inputs are all loaded and checked; `run` is the only step that writes."""

    teacher: str
    task: Task
    train: TrainConfig
    data_dir: Path | None
    model: object
    tokenizer: object
    tokenized: object

    @classmethod
    def prepare(cls, teacher: str, task: Task, train: TrainConfig, data_dir: Path | None) -> _Finetune:
        _checked_teacher_config(teacher, train.max_seq_len, "teacher")
        from transformers import set_seed

        data = load_task(task, data_dir, train.max_train_samples, train.max_eval_samples)
        set_seed(train.seed)  # the new classification head is drawn here: unseeded, two fine-tunes would differ
        model, tokenizer = _load_pretrained(teacher, task.num_labels, "teacher")
        return cls(teacher, task, train, data_dir, model, tokenizer, tokenize(data, task, tokenizer, train.max_seq_len))

    def run(self, folder: Path, log=print, progress: bool = True, deadline: float | None = None) -> Path:
        from transformers import DataCollatorWithPadding, set_seed

        Trainer = _base_trainer_class()

        task, train = self.task, self.train
        # one fine-tune per cache entry: a second job waits, then finds it done (the processes of one data-parallel
        # launch train it together; the first of them writes)
        with _main_only(exclusive(folder.with_name(folder.name + ".lock"), str(folder), wait=True, log=log)):
            if (folder / "metrics.json").is_file():
                return folder
            set_seed(train.seed)
            work = folder.with_name(folder.name + ".work")
            checkpoint = last_checkpoint(work / "checkpoints")
            stop = _deadline_callback(deadline) if deadline is not None else None
            wall = _wall_clock(wall_time_so_far(checkpoint))
            trainer = Trainer(
                model=self.model,
                args=_training_args(train, work / "checkpoints", task, list(_keys(task)), progress),
                train_dataset=self.tokenized["train"],
                eval_dataset=_eval_datasets(self.tokenized, task),
                processing_class=self.tokenizer,
                data_collator=DataCollatorWithPadding(self.tokenizer),
                compute_metrics=lambda p: task_metrics(task, p.predictions, p.label_ids),
                callbacks=[c for c in (stop, wall) if c],
            )
            trainer.train(resume_from_checkpoint=checkpoint)
            _check_deadline(stop, f"fine-tuning the teacher on {task.name}", work / "checkpoints")
            metrics = _evaluate_all(trainer, self.tokenized, task)
            if is_main():
                _save_model(trainer.model, self.tokenizer, work / "model")
                atomic_write_json(
                    work / "model" / "metrics.json",
                    {
                        "task": task.name,
                        "teacher": self.teacher,
                        "metrics": metrics,
                        "score": main_score(task, metrics[task.eval_splits[0]]),
                        "train": asdict(train),
                        "wall_s": wall.total(),
                        "processes": world()[1],
                        "environment": env.collect(),
                    },
                )
                if folder.exists():
                    shutil.rmtree(folder)
                (work / "model").rename(folder)  # the cache entry appears complete, in one step
                shutil.rmtree(work, ignore_errors=True)
        _barrier()  # the other processes load the teacher only once it is written
        log(f"teacher {task.main_metric}: {metrics[task.eval_splits[0]][task.main_metric]:.4f} -> {folder}")
        return folder


def finetune(
    teacher: str,
    task_name: str,
    train: TrainConfig = TrainConfig(),
    data_dir: Path | None = None,
    log=print,
    progress: bool = True,
    deadline: float | None = None,
) -> Path:
    """Fine-tune the teacher on the task (or reuse the cached result); return its folder. `progress`: the Trainer's
    progress bars (off when a caller such as `kdbench study` shows its own). `deadline` (a `time.time()` value):
    checkpoint and raise DeadlineReached once passed; the next call resumes from the checkpoint. Every input is
    checked before the cache is touched."""
    task = get_task(task_name)
    check_device(train.device)
    _check_world(train)
    folder = teacher_cache_dir(teacher, task, train, data_dir)
    if (folder / "metrics.json").is_file():
        log(f"fine-tuned teacher found in cache: {folder}")
        return folder
    return _Finetune.prepare(teacher, task, train, data_dir).run(folder, log, progress, deadline)


def _keys(task: Task):
    return [s.removeprefix("validation_") for s in task.eval_splits]


class _WallClock:
    """Training seconds of a run across interrupted sessions: each checkpoint records the total so far."""

    def __init__(self, before: float) -> None:
        self.before, self.started = before, time.perf_counter()

    def total(self) -> float:
        return self.before + time.perf_counter() - self.started


def _wall_clock(before: float):
    from transformers import TrainerCallback

    clock = _WallClock(before)

    class RecordWall(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                atomic_write_json(folder / WALL_FILE, {"wall_s": clock.total()})

    callback = RecordWall()
    callback.total = clock.total
    return callback


def _save_model(model, tokenizer, dest: Path) -> None:
    """save_pretrained into a temporary folder, then rename: a kill leaves the old folder or none."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


def _check_run_state(cfg: DistillConfig, run: Run) -> dict | None:
    """Whether `cfg` may write into `run` (returns the recorded config when resuming). Checked before anything is
    written and again once the run's lock is held."""
    state = run.state()
    if state == FOREIGN:
        raise KdbenchError(
            f"{run.path} is a non-empty folder that kdbench did not write; kdbench never replaces it "
            "(choose another --output-dir)"
        )
    if cfg.resume:
        if state != INTERRUPTED:
            what = {FINISHED: "a finished run", "absent": "empty or missing"}.get(state, "a run with no checkpoint")
            raise KdbenchError(f"--resume: {run.path} is {what}; nothing to continue")
        recorded = run.config()
        diffs = recipe_differences(recorded, cfg)
        if diffs:
            raise KdbenchError(
                f"--resume: {run.path} was started with another recipe ({'; '.join(diffs)}); resume with the same "
                "options (those not given are taken from the run)"
            )
        return recorded
    if cfg.overwrite or state == "absent":
        return None
    if state == FINISHED:
        raise KdbenchError(f"{run.path} already holds a finished run; pass --overwrite to replace it or --output-dir")
    if state == INTERRUPTED:
        raise KdbenchError(f"{run.path} holds an interrupted run; pass --resume to continue it or --overwrite")
    raise KdbenchError(f"{run.path} holds a run stopped before its first checkpoint; pass --overwrite to restart it")


def recipe_differences(recorded: dict, cfg: DistillConfig, same_teacher: bool = True) -> list[str]:
    """Fields where `cfg` differs from a run's recorded configuration, as 'field recorded -> given'. With
    `same_teacher` False the teacher's paths are not compared (a run carried from another machine)."""
    now = cfg.to_dict()
    teacher = ("teacher", "teacher_checkpoint") if same_teacher else ()
    pairs = [(k, recorded.get(k), now[k]) for k in ("student", *teacher, *RECIPE_FIELDS)]
    pairs.append(
        ("task", get_task(recorded.get("task", "")).name if recorded.get("task") else None, get_task(cfg.task).name)
    )
    pairs += [(k, (recorded.get("train") or {}).get(k), now["train"][k]) for k in TRAIN_RECIPE]
    return [f"{k} {a!r} -> {b!r}" for k, a, b in pairs if a != b]


def resumed_config(run_dir: Path, given: dict) -> DistillConfig:
    """The configuration to continue the interrupted run in `run_dir` with: its recorded recipe, where `given` (the
    options a user passed, by field name; training fields flat) may only repeat it."""
    run = Run(run_dir)
    if run.state() != INTERRUPTED:
        raise KdbenchError(f"--resume: {run.path} holds no interrupted run; nothing to continue")
    rec = run.config()
    train = {**{k: v for k, v in (rec.get("train") or {}).items() if k in TRAIN_FIELDS}}
    train.update({k: v for k, v in given.items() if k in TRAIN_FIELDS})
    direct = ("task", "student", "teacher", "teacher_checkpoint", "students_dir", "data_dir", *RECIPE_FIELDS)
    fields_ = {k: rec.get(k) for k in direct if k in rec}
    fields_.update({k: v for k, v in given.items() if k in direct})
    for k in ("students_dir", "data_dir"):
        fields_[k] = Path(fields_[k]) if fields_.get(k) else None
    return DistillConfig(**fields_, train=TrainConfig(**train), output_dir=run.path, resume=True)


def distill(cfg: DistillConfig, log=print, progress: bool = True, deadline: float | None = None) -> dict:
    """Run one distillation and write its run folder; return the metrics document (`progress` and `deadline`: as in
    finetune; a run stopped at the deadline is left resumable with `resume=True`).

    Every input is checked first (run folder, student, teacher, data); only then does it take the run's lock and
    write. `overwrite` replaces a kdbench run folder only, never another folder.
    """
    from kdbench.io import check_folder_writable
    from kdbench.students import load_zoo, lookup_student, resolve
    from kdbench.teacher import teacher_shape

    task = get_task(cfg.task)
    check_device(cfg.train.device)
    _check_world(cfg.train)
    run = Run(cfg.run_dir())
    check_folder_writable(run.path, "--output-dir")
    recorded = _check_run_state(cfg, run)
    spec = lookup_student(load_zoo(cfg.students_dir), cfg.student)
    shape = resolve(
        spec, teacher_shape(_checked_teacher_config(cfg.teacher, cfg.train.max_seq_len, "teacher"), cfg.teacher)
    )
    if recorded and recorded.get("student_shape") and _dims(recorded["student_shape"]) != _dims(shape.to_dict()):
        raise KdbenchError(
            f"--resume: the student file {cfg.student} now resolves to another shape than {run.path} has"
        )
    data = load_task(task, cfg.data_dir, cfg.train.max_train_samples, cfg.train.max_eval_samples)
    teacher_dir = cfg.teacher_checkpoint
    cached = teacher_cache_dir(cfg.teacher, task, cfg.train, cfg.data_dir)
    job = None
    if teacher_dir is None and not (cached / "metrics.json").is_file():
        job = _Finetune.prepare(cfg.teacher, task, cfg.train, cfg.data_dir)
    if job is None:  # the fine-tuned teacher exists: load (and so check) it now
        teacher, tokenizer = _load_pretrained(teacher_dir or str(cached), task.num_labels, "fine-tuned teacher")
    # every input checked: from here on kdbench writes (in a data-parallel launch, its first process alone)
    with _main_only(run.writing()):
        if is_main():
            _check_run_state(cfg, run)  # again, under the lock: another process may have written meanwhile
            if cfg.overwrite:
                run.clear()
        _barrier()
        if job is not None:
            teacher_dir = str(job.run(cached, log, progress, deadline))
            teacher, tokenizer = _load_pretrained(teacher_dir, task.num_labels, "fine-tuned teacher")
        teacher_dir = teacher_dir or str(cached)
        return _train_student(cfg, run, task, shape, teacher, tokenizer, teacher_dir, data, log, progress, deadline)


def _dims(shape: dict) -> tuple:
    return tuple(shape.get(k) for k in ("layers", "heads", "head_dim", "hidden", "ffn"))


def _train_student(cfg, run: Run, task: Task, shape, teacher, tokenizer, teacher_dir, data, log, progress, deadline):
    """The distillation itself, inside the run's lock: build, train (or continue), evaluate, write."""
    from transformers import DataCollatorWithPadding, set_seed

    from kdbench.students import teacher_as_student
    from kdbench.teacher import teacher_shape

    set_seed(cfg.train.seed)
    student, lmap, report = build_student(teacher, shape, cfg.init)
    log(
        f"student {shape.name}: {shape.layers} layers x {shape.heads} heads of {shape.head_dim}, hidden "
        f"{shape.hidden}, FFN {shape.ffn}; layer map {lmap}; init from teacher: {report.summary()}"
    )
    module = _distillation_module()(student, shape.hidden, teacher.config.hidden_size)
    tokenized = tokenize(data, task, tokenizer, cfg.train.max_seq_len)
    checkpoint = run.last_checkpoint() if cfg.resume else None
    stop = _deadline_callback(deadline) if deadline is not None else None
    wall = _wall_clock(wall_time_so_far(checkpoint))
    trainer = _kd_trainer_class()(
        model=module,
        args=_training_args(cfg.train, run.checkpoints_dir, task, _keys(task), progress),
        train_dataset=tokenized["train"],
        eval_dataset=_eval_datasets(tokenized, task),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=lambda p: task_metrics(task, p.predictions, p.label_ids),
        teacher=teacher,
        lmap=lmap,
        cfg=cfg,
        regression=task.is_regression,
        callbacks=[c for c in (stop, wall) if c],
    )
    if not cfg.resume and is_main():
        run.write_config(
            {**cfg.to_dict(), "student_shape": shape.to_dict(), "layer_map": lmap, "teacher_dir": str(teacher_dir)}
        )
    trained = trainer.train(resume_from_checkpoint=checkpoint)
    _check_deadline(stop, f"distilling {shape.name} on {task.name}", run.checkpoints_dir)
    metrics = _evaluate_all(trainer, tokenized, task)
    teacher_doc = _teacher_metrics(teacher_dir, task, trainer, tokenized)
    score = main_score(task, metrics[task.eval_splits[0]])
    doc = {
        "schema": "kdbench.distill",
        "schema_version": 1,
        "task": task.name,
        "student": shape.name,
        "teacher": cfg.teacher,
        "teacher_dir": str(teacher_dir),
        "metrics": metrics,
        "score": score,
        "metric": task.main_metric,
        "teacher_metrics": teacher_doc,
        "teacher_score": teacher_doc["score"],
        "share_of_teacher": score / teacher_doc["score"] if teacher_doc["score"] else None,
        "epochs": _epoch_evaluations(trainer.state.log_history),
        "layer_map": lmap,
        "init": asdict(report),
        "student_shape": shape.to_dict(),
        "teacher_shape": teacher_as_student(teacher_shape(teacher.config, cfg.teacher)).to_dict(),
        "train_samples": len(tokenized["train"]),
        "wall_s": wall.total(),  # every session's training time, resumed ones included
        "resumed": bool(cfg.resume),
        "config": cfg.to_dict(),
        "train_samples_per_second": trained.metrics.get("train_samples_per_second"),
        "processes": world()[1],  # data-parallel processes that shared each global batch
        "optimizer_steps": trainer.state.global_step,
        "mean_train_tokens": float(sum(tokenized["train"]["length"]) / len(tokenized["train"])),
        "environment": env.collect(),
    }
    from kdbench.predictions import document

    # per-example answers (the best epoch's student, and its teacher): what score and claim intervals resample
    if is_main():
        run.write_predictions(document(task, tokenized, _unwrapped(trainer.model).student, trainer.teacher, tokenizer))
        _save_model(_unwrapped(trainer.model).student, tokenizer, run.student_dir)
        run.write_metrics(doc)  # written last: its presence marks a finished run
        shutil.rmtree(run.checkpoints_dir, ignore_errors=True)  # only needed to resume; the student is saved
    _barrier()
    return doc


def _unwrapped(model):
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") else model


def _epoch_evaluations(log_history: list[dict]) -> list[dict]:
    """One evaluation per epoch: the Trainer logs the best model's final evaluation with the last epoch's number
    again (and a resumed run may repeat an epoch); the first entry of each epoch is kept."""
    seen, out = set(), []
    for entry in log_history:
        if any(k.startswith("eval_") for k in entry) and entry.get("epoch") not in seen:
            seen.add(entry.get("epoch"))
            out.append(entry)
    return out


def _teacher_metrics(teacher_dir: str, task: Task, trainer, tokenized) -> dict:
    """The fine-tuned teacher's score on the same evaluation split (from its cache entry when it has one)."""
    cached = Path(teacher_dir) / "metrics.json"
    if cached.is_file():
        doc = read_json(cached)
        if doc.get("task") == task.name and "metrics" in doc:
            return {"metrics": doc["metrics"], "score": doc["score"]}
    from transformers import Trainer

    evaluator = Trainer(
        model=trainer.teacher,
        args=trainer.args,
        data_collator=trainer.data_collator,
        processing_class=trainer.processing_class,
        compute_metrics=trainer.compute_metrics,
    )
    metrics = _evaluate_all(evaluator, tokenized, task)
    return {"metrics": metrics, "score": main_score(task, metrics[task.eval_splits[0]])}
