"""`kdbench distill`: one distillation, written into its run folder - every input checked first, then the run's
lock taken, the student built, trained (or resumed), evaluated and saved, metrics.json last."""

from __future__ import annotations

import shutil
from dataclasses import asdict, replace
from pathlib import Path

from kdbench.core import env
from kdbench.core.env import check_device
from kdbench.core.errors import KdbenchError
from kdbench.core.io import read_json
from kdbench.engines.inference import predictions_document
from kdbench.results.run import (
    ABSENT,
    FINISHED,
    FOREIGN,
    INTERRUPTED,
    STARTED,
    Run,
    remove_partial_checkpoints,
    wall_time_so_far,
)
from kdbench.tasks.loading import load_task, tokenize
from kdbench.tasks.metrics import main_score, task_metrics
from kdbench.tasks.task import Task
from kdbench.train.config import RECIPE_FIELDS, TRAIN_FIELDS, DistillConfig, TrainConfig, recipe_differences
from kdbench.train.finetune import Finetune, checked_teacher_config, teacher_cache_dir
from kdbench.train.student import build_student
from kdbench.train.trainer import (
    barrier,
    check_deadline,
    check_world,
    deadline_callback,
    distillation_module,
    epoch_evaluations,
    eval_datasets,
    eval_keys,
    evaluate_all,
    fault_callback,
    is_main,
    kd_trainer_class,
    load_pretrained,
    main_only,
    save_model,
    training_args,
    unwrapped,
    wall_clock,
    world,
)


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
        if state not in (INTERRUPTED, STARTED):
            what = {FINISHED: "a finished run", ABSENT: "empty or missing"}[state]
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
    raise KdbenchError(
        f"{run.path} holds a run stopped before its first checkpoint; pass --resume (it starts again from scratch) "
        "or --overwrite"
    )


def resumed_config(run_dir: Path, given: dict) -> DistillConfig:
    """The configuration to continue the interrupted run in `run_dir` with: its recorded recipe, where `given` (the
    options a user passed, by field name; training fields flat) may only repeat it."""
    run = Run(run_dir)
    if run.state() not in (INTERRUPTED, STARTED):
        raise KdbenchError(f"--resume: {run.path} holds no interrupted run; nothing to continue")
    rec = run.config()
    train = {**{k: v for k, v in (rec.get("train") or {}).items() if k in TRAIN_FIELDS}}
    train.update({k: v for k, v in given.items() if k in TRAIN_FIELDS})
    direct = (
        "task", "student", "teacher", "teacher_checkpoint", "students_dir", "tasks_dir", "data_dir", *RECIPE_FIELDS
    )  # fmt: skip
    fields_ = {k: rec.get(k) for k in direct if k in rec}
    fields_.update({k: v for k, v in given.items() if k in direct})
    for k in ("students_dir", "tasks_dir", "data_dir"):
        fields_[k] = Path(fields_[k]) if fields_.get(k) else None
    return DistillConfig(**fields_, train=TrainConfig(**train), output_dir=run.path, resume=True)


def distill(cfg: DistillConfig, log=print, progress: bool = True, deadline: float | None = None) -> dict:
    """Run one distillation and write its run folder; return the metrics document (`progress` and `deadline`: as in
    finetune; a run stopped at the deadline is left resumable with `resume=True`).

    Every input is checked first (run folder, student, teacher, data); only then does it take the run's lock and
    write. `overwrite` replaces a kdbench run folder only, never another folder.
    """
    from kdbench.core.io import check_folder_writable
    from kdbench.zoo.students import load_zoo, lookup_student, resolve
    from kdbench.zoo.teacher import teacher_shape

    task = cfg.task_def()  # resolved once here, then passed on
    check_device(cfg.train.device)
    check_world(cfg.train)
    run = Run(cfg.run_dir(task))
    check_folder_writable(run.path, "--output-dir")
    recorded = _check_run_state(cfg, run)
    spec = lookup_student(load_zoo(cfg.students_dir), cfg.student)
    shape = resolve(
        spec, teacher_shape(checked_teacher_config(cfg.teacher, cfg.train.max_seq_len, "teacher"), cfg.teacher)
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
        job = Finetune.prepare(cfg.teacher, task, cfg.train, cfg.data_dir)
    if job is None:  # the fine-tuned teacher exists: load (and so check) it now
        teacher, tokenizer = load_pretrained(teacher_dir or str(cached), task.num_labels, "fine-tuned teacher")
    restart = cfg.resume and run.state() == STARTED
    if restart:
        log(f"{run.path} was stopped before its first checkpoint: nothing to resume, so it starts again from scratch")
    # every input checked: from here on kdbench writes (in a data-parallel launch, its first process alone)
    with main_only(run.writing()):
        if is_main():
            _check_run_state(cfg, run)  # again, under the lock: another process may have written meanwhile
            if cfg.overwrite or restart:
                run.clear()  # a kdbench run folder (the state says so): never a folder of the user's
            remove_partial_checkpoints(run.checkpoints_dir)
        barrier()
        if restart:
            cfg = replace(cfg, resume=False)
        if job is not None:
            teacher_dir = str(job.run(cached, log, progress, deadline))
            teacher, tokenizer = load_pretrained(teacher_dir, task.num_labels, "fine-tuned teacher")
        teacher_dir = teacher_dir or str(cached)
        return _train_student(cfg, run, task, shape, teacher, tokenizer, teacher_dir, data, log, progress, deadline)


def _dims(shape: dict) -> tuple:
    return tuple(shape.get(k) for k in ("layers", "heads", "head_dim", "hidden", "ffn"))


def _train_student(cfg, run: Run, task: Task, shape, teacher, tokenizer, teacher_dir, data, log, progress, deadline):
    """The distillation itself, inside the run's lock: build, train (or continue), evaluate, write."""
    from transformers import set_seed

    set_seed(cfg.train.seed)
    student, lmap, report = build_student(teacher, shape, cfg.init)
    log(
        f"student {shape.name}: {shape.layers} layers x {shape.heads} heads of {shape.head_dim}, hidden "
        f"{shape.hidden}, FFN {shape.ffn}; layer map {lmap}; init from teacher: {report.summary()}"
    )
    truncated: dict[str, int] = {}
    tokenized = tokenize(data, task, tokenizer, cfg.train.max_seq_len, truncated)
    if any(truncated.values()):
        cut = ", ".join(f"{n} of {len(tokenized[s])} {s} rows" for s, n in truncated.items() if n)
        log(f"truncated to {cfg.train.max_seq_len} tokens: {cut} (--max-seq-len sets the cut)")
    checkpoint = run.last_checkpoint() if cfg.resume else None
    stop = deadline_callback(deadline) if deadline is not None else None
    wall = wall_clock(wall_time_so_far(checkpoint))
    module = distillation_module()(student, shape.hidden, teacher.config.hidden_size)
    callbacks = [c for c in (stop, wall, fault_callback("distill")) if c]
    trainer = _trainer(cfg, run, task, module, teacher, tokenizer, tokenized, lmap, callbacks, progress)
    if not cfg.resume and is_main():
        run.write_config(
            {**cfg.to_dict(task), "student_shape": shape.to_dict(), "layer_map": lmap, "teacher_dir": str(teacher_dir)}
        )
    trained = trainer.train(resume_from_checkpoint=checkpoint)
    check_deadline(stop, f"distilling {shape.name} on {task.name}", run.checkpoints_dir)
    doc = _metrics_document(cfg, task, shape, teacher_dir, trainer, trained, tokenized, lmap, report, wall.total())
    doc["truncated"] = {"max_seq_len": cfg.train.max_seq_len, "rows": truncated}  # what a long-text task lost
    if is_main():
        # per-example answers (the best epoch's student, and its teacher): what score and claim intervals resample
        student = unwrapped(trainer.model).student
        run.write_predictions(predictions_document(task, tokenized, student, trainer.teacher, tokenizer))
        save_model(student, tokenizer, run.student_dir)
        run.write_metrics(doc)  # written last: its presence marks a finished run
        shutil.rmtree(run.checkpoints_dir, ignore_errors=True)  # only needed to resume; the student is saved
    barrier()
    return doc


def _trainer(cfg, run: Run, task: Task, module, teacher, tokenizer, tokenized, lmap, callbacks, progress: bool):
    """The distillation Trainer over the tokenised splits, checkpointing into the run folder (`progress`: its bars)."""
    from transformers import DataCollatorWithPadding

    return kd_trainer_class()(
        model=module,
        args=training_args(cfg.train, run.checkpoints_dir, task, eval_keys(task), progress),
        train_dataset=tokenized["train"],
        eval_dataset=eval_datasets(tokenized, task),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=lambda p: task_metrics(task, p.predictions, p.label_ids),
        teacher=teacher,
        lmap=lmap,
        cfg=cfg,
        regression=task.is_regression,
        callbacks=callbacks,
    )


def _metrics_document(cfg, task: Task, shape, teacher_dir, trainer, trained, tokenized, lmap, report, wall_s) -> dict:
    """metrics.json of a finished distillation: scores of student and teacher, the recipe, shapes, layer map, what
    the training cost, and the environment."""
    from kdbench.zoo.students import teacher_as_student
    from kdbench.zoo.teacher import teacher_shape

    metrics = evaluate_all(trainer, tokenized, task)
    teacher_doc = _teacher_metrics(teacher_dir, task, trainer, tokenized)
    score = main_score(task, metrics[task.eval_splits[0]])
    return {
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
        "epochs": epoch_evaluations(trainer.state.log_history),
        "layer_map": lmap,
        "init": asdict(report),
        "student_shape": shape.to_dict(),
        "teacher_shape": teacher_as_student(teacher_shape(trainer.teacher.config, cfg.teacher)).to_dict(),
        "train_samples": len(tokenized["train"]),
        "wall_s": wall_s,  # every session's training time, resumed ones included
        "resumed": bool(cfg.resume),
        "config": cfg.to_dict(task),
        "task_spec": task.to_dict(),
        "train_samples_per_second": trained.metrics.get("train_samples_per_second"),
        "processes": world()[1],  # data-parallel processes that shared each global batch
        "optimizer_steps": trainer.state.global_step,
        "mean_train_tokens": float(sum(tokenized["train"]["length"]) / len(tokenized["train"])),
        "environment": env.collect(),
    }


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
    metrics = evaluate_all(evaluator, tokenized, task)
    return {"metrics": metrics, "score": main_score(task, metrics[task.eval_splits[0]])}
