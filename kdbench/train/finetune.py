"""`kdbench finetune`: the teacher fine-tuned on a task, cached per teacher, task, data and hyper-parameters (a
second job waits for the first and finds it done)."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from kdbench.core import env
from kdbench.core.env import check_device
from kdbench.core.errors import ConfigError
from kdbench.core.io import atomic_write_json, cache_root
from kdbench.results.run import exclusive, last_checkpoint, remove_partial_checkpoints, wall_time_so_far
from kdbench.tasks.loading import load_task, tokenize
from kdbench.tasks.metrics import main_score, task_metrics
from kdbench.tasks.task import Task, resolve_task
from kdbench.train.config import TrainConfig, slug
from kdbench.train.trainer import (
    barrier,
    base_trainer_class,
    check_deadline,
    check_world,
    deadline_callback,
    eval_datasets,
    eval_keys,
    evaluate_all,
    fault_callback,
    is_main,
    load_pretrained,
    main_only,
    save_model,
    training_args,
    wall_clock,
    world,
)


def _canonical(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def teacher_cache_dir(teacher: str, task: Task, train: TrainConfig, data_dir: Path | None) -> Path:
    """Where a fine-tuned teacher is cached: keyed by teacher, task, data source and hyper-parameters."""
    key = json.dumps(
        {
            "teacher": str(Path(teacher).resolve()) if Path(teacher).exists() else teacher,
            "task": task.fingerprint(),  # a GLUE task's name: caches made before task files stay valid
            "data": str(Path(data_dir).resolve()) if data_dir else "hub",
            # 2 and 2.0 epochs are one setting: whole floats are written as integers so they key one cache entry
            "train": {k: _canonical(v) for k, v in asdict(train).items() if k != "device"},
        },
        sort_keys=True,
    )
    return cache_root() / "teachers" / f"{slug(teacher)}-{task.name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def checked_teacher_config(name: str, max_seq_len: int, what: str):
    """The teacher's config, checked before anything is written: it exists, is an encoder, and has positions for
    `max_seq_len` tokens."""
    from kdbench.zoo.teacher import load_teacher_config, max_sequence_length

    config = load_teacher_config(name)
    limit = max_sequence_length(config)
    if limit is not None and max_seq_len > limit:
        raise ConfigError("max_seq_len", f"is {max_seq_len}, more than the {what} {name} allows ({limit} positions)")
    return config


@dataclass
class Finetune:
    """A teacher fine-tune whose inputs are all loaded and checked; `run` is the only step that writes."""

    teacher: str
    task: Task
    train: TrainConfig
    data_dir: Path | None
    model: object
    tokenizer: object
    tokenized: object

    @classmethod
    def prepare(cls, teacher: str, task: Task, train: TrainConfig, data_dir: Path | None) -> Finetune:
        checked_teacher_config(teacher, train.max_seq_len, "teacher")
        from transformers import set_seed

        data = load_task(task, data_dir, train.max_train_samples, train.max_eval_samples)
        set_seed(train.seed)  # the new classification head is drawn here: unseeded, two fine-tunes would differ
        model, tokenizer = load_pretrained(teacher, task.num_labels, "teacher")
        return cls(teacher, task, train, data_dir, model, tokenizer, tokenize(data, task, tokenizer, train.max_seq_len))

    def run(self, folder: Path, log=print, progress: bool = True, deadline: float | None = None) -> Path:
        from transformers import DataCollatorWithPadding, set_seed

        Trainer = base_trainer_class()

        task, train = self.task, self.train
        # one fine-tune per cache entry: a second job waits, then finds it done (the processes of one data-parallel
        # launch train it together; the first of them writes)
        with main_only(exclusive(folder.with_name(folder.name + ".lock"), str(folder), wait=True, log=log)):
            if (folder / "metrics.json").is_file():
                return folder
            set_seed(train.seed)
            work = folder.with_name(folder.name + ".work")
            if is_main():
                remove_partial_checkpoints(work / "checkpoints")  # a kill while one was being written
            checkpoint = last_checkpoint(work / "checkpoints")
            stop = deadline_callback(deadline) if deadline is not None else None
            wall = wall_clock(wall_time_so_far(checkpoint))
            trainer = Trainer(
                model=self.model,
                args=training_args(train, work / "checkpoints", task, list(eval_keys(task)), progress),
                train_dataset=self.tokenized["train"],
                eval_dataset=eval_datasets(self.tokenized, task),
                processing_class=self.tokenizer,
                data_collator=DataCollatorWithPadding(self.tokenizer),
                compute_metrics=lambda p: task_metrics(task, p.predictions, p.label_ids),
                callbacks=[c for c in (stop, wall, fault_callback("finetune")) if c],
            )
            trainer.train(resume_from_checkpoint=checkpoint)
            check_deadline(stop, f"fine-tuning the teacher on {task.name}", work / "checkpoints")
            metrics = evaluate_all(trainer, self.tokenized, task)
            if is_main():
                save_model(trainer.model, self.tokenizer, work / "model")
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
        barrier()  # the other processes load the teacher only once it is written
        log(f"teacher {task.main_metric}: {metrics[task.eval_splits[0]][task.main_metric]:.4f} -> {folder}")
        return folder


def finetune(
    teacher: str,
    task: str | Task,
    train: TrainConfig = TrainConfig(),
    data_dir: Path | None = None,
    log=print,
    progress: bool = True,
    deadline: float | None = None,
    tasks_dir: Path | None = None,
) -> Path:
    """Fine-tune the teacher on the task (a Task, a name - among `tasks_dir`'s task files, default the shipped ones -
    or a task file's path), or reuse the cached result; return its folder. `progress`: the Trainer's
    progress bars (off when a caller such as `kdbench study` shows its own). `deadline` (a `time.time()` value):
    checkpoint and raise DeadlineReached once passed; the next call resumes from the checkpoint. Every input is
    checked before the cache is touched."""
    task = task if isinstance(task, Task) else resolve_task(task, tasks_dir)
    check_device(train.device)
    check_world(train)
    folder = teacher_cache_dir(teacher, task, train, data_dir)
    if (folder / "metrics.json").is_file():
        log(f"fine-tuned teacher found in cache: {folder}")
        return folder
    return Finetune.prepare(teacher, task, train, data_dir).run(folder, log, progress, deadline)
