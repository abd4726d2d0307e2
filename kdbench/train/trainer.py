"""The Hugging Face Trainer as kdbench drives it: the distillation Trainer that adds the teacher to the loss,
training arguments (transformers 4.x and 5.x), deadlines that checkpoint and stop, data-parallel launches (only the
first process writes), evaluation per split, and loading and saving models."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import fields
from pathlib import Path

from kdbench.core import faults
from kdbench.core.errors import ConfigError, DeadlineReached, KdbenchError
from kdbench.core.io import atomic_write_json
from kdbench.results.run import WALL_FILE
from kdbench.tasks.task import Task
from kdbench.train.config import DistillConfig, TrainConfig
from kdbench.train.losses import feature_loss, hard_loss, soft_loss
from kdbench.zoo.teacher import looks_local


# ---------------------------------------------------------------------------------- the Trainer that adds the teacher
def distillation_module():
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


def base_trainer_class():
    """The Trainer, able to resume a data-parallel run on CPUs: for world_size > 1 it loads the optimizer onto
    `args.device`, which on a CPU is torch.device("cpu", 0) - a location torch.load cannot restore ("tagged with
    cpu:0") - so that one load is mapped to "cpu"."""
    import torch
    from transformers import Trainer

    class ResumableTrainer(Trainer):
        kdbench_kind = "finetune"  # names its fault points (kdbench.core.faults)

        def _save_optimizer_and_scheduler(self, output_dir):
            # the checkpoint's weights are written, its optimizer and trainer state not yet: a kill here leaves the
            # half-written checkpoint that resuming must pass over
            faults.point(f"{self.kdbench_kind}-checkpoint")
            return super()._save_optimizer_and_scheduler(output_dir)

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


def kd_trainer_class():
    import torch

    Trainer = base_trainer_class()

    class KDTrainer(Trainer):
        """Trainer whose loss adds the teacher: alpha_hard*CE + alpha_soft*KL(T) + alpha_feature*feature."""

        kdbench_kind = "distill"

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


def fault_callback(kind: str):
    """A TrainerCallback that passes the `<kind>-step` fault point after every optimisation step (the crash tests
    kill a training there; see kdbench.core.faults)."""
    from transformers import TrainerCallback

    class FaultPoint(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            faults.point(f"{kind}-step")
            return control

    return FaultPoint()


def deadline_callback(deadline: float):
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


def check_deadline(callback, what: str, where: Path) -> None:
    if callback is not None and callback.reached:
        raise DeadlineReached(f"{what} stopped at the deadline; its checkpoint in {where} continues on a rerun")


# ------------------------------------------------------------------------------------------- launches and arguments
def world() -> tuple[int, int]:
    """(rank, number of processes) of a data-parallel launch (torchrun / accelerate launch set RANK, WORLD_SIZE);
    (0, 1) for a plain process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this process writes: the only one, or rank 0 of a data-parallel launch."""
    return world()[0] == 0


def barrier() -> None:
    """Wait for every process of a data-parallel launch (nothing to wait for in a plain process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def main_only(context):
    """`context` in the writing process; nothing in the others of a data-parallel launch."""
    return context if is_main() else contextlib.nullcontext()


def check_world(train: TrainConfig) -> None:
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


def training_args(train: TrainConfig, output_dir: Path, task: Task, eval_keys: list[str], progress: bool = True):
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


def load_pretrained(name: str, num_labels: int, what: str):
    """Model and tokenizer from a hub id or folder, with one-line errors for missing or corrupt weights."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(name)
    if looks_local(name) and not path.exists():
        raise KdbenchError(f"{what} {name} does not exist; pass a Hugging Face model folder")
    if path.exists() and not (path / "config.json").is_file():
        raise KdbenchError(f"{what} {name} has no config.json; pass a Hugging Face model folder")
    from kdbench.zoo.modeling import fp32_weights

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


def evaluate_all(trainer, tokenized, task: Task) -> dict[str, dict[str, float]]:
    return {
        split: {
            k.removeprefix("eval_"): v
            for k, v in trainer.evaluate(tokenized[split]).items()
            if k.removeprefix("eval_") in task.metrics
        }
        for split in task.eval_splits
    }


def eval_datasets(tokenized, task: Task):
    if len(task.eval_splits) == 1:
        return tokenized[task.eval_splits[0]]
    return {s.removeprefix("validation_"): tokenized[s] for s in task.eval_splits}


def eval_keys(task: Task):
    return [s.removeprefix("validation_") for s in task.eval_splits]


class _WallClock:
    """Training seconds of a run across interrupted sessions: each checkpoint records the total so far."""

    def __init__(self, before: float) -> None:
        self.before, self.started = before, time.perf_counter()

    def total(self) -> float:
        return self.before + time.perf_counter() - self.started


def wall_clock(before: float):
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


def save_model(model, tokenizer, dest: Path) -> None:
    """save_pretrained into a temporary folder, then rename: a kill leaves the old folder or none."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


def unwrapped(model):
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") else model


def epoch_evaluations(log_history: list[dict]) -> list[dict]:
    """One evaluation per epoch: the Trainer logs the best model's final evaluation with the last epoch's number
    again (and a resumed run may repeat an epoch); the first entry of each epoch is kept."""
    seen, out = set(), []
    for entry in log_history:
        if any(k.startswith("eval_") for k in entry) and entry.get("epoch") not in seen:
            seen.add(entry.get("epoch"))
            out.append(entry)
    return out
