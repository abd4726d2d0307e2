"""`kdbench finetune` and `kdbench distill`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from kdbench.cli.app import app, console, user_errors
from kdbench.cli.options import (
    TASK_HELP,
    TRAIN_OPTIONS,
    BatchOpt,
    D,
    DataDirOpt,
    DeviceOpt,
    EpochsOpt,
    LrOpt,
    MaxEvalOpt,
    MaxTrainOpt,
    SeedOpt,
    SeqOpt,
    StudentsDirOpt,
    TaskOpt,
    TasksDirOpt,
    given_options,
    parse_duration,
    task_arg,
    train_settings,
)
from kdbench.core.errors import KdbenchError
from kdbench.zoo.teacher import DEFAULT_TEACHER


@app.command()
@user_errors
def finetune(
    task: TaskOpt,
    teacher: Annotated[str, typer.Option(help="Pretrained teacher: hub id or local model folder.")] = DEFAULT_TEACHER,
    tasks_dir: TasksDirOpt = None,
    data_dir: DataDirOpt = None,
    learning_rate: LrOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    max_seq_len: SeqOpt = None,
    max_train_samples: MaxTrainOpt = None,
    max_eval_samples: MaxEvalOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Fine-tune the teacher on a task and cache it (keyed by teacher, task, data and hyper-parameters)."""
    given = given_options(locals())  # first: only the options are local yet
    from kdbench.train.finetune import finetune as run_finetune

    folder = run_finetune(
        teacher, task_arg(task), train_settings(given), data_dir, log=console.print, tasks_dir=tasks_dir
    )
    console.print(f"fine-tuned teacher: {folder}")


@app.command()
@user_errors
def distill(
    task: Annotated[str | None, typer.Option(help=TASK_HELP)] = None,
    student: Annotated[str | None, typer.Option(help="Student name from the zoo (see `kdbench students`).")] = None,
    teacher: Annotated[
        str | None, typer.Option(help=f"Pretrained teacher: hub id or local model folder. Default: {DEFAULT_TEACHER}.")
    ] = None,
    teacher_checkpoint: Annotated[
        str | None, typer.Option(help="An already fine-tuned teacher folder (skips fine-tuning).")
    ] = None,
    students_dir: StudentsDirOpt = None,
    tasks_dir: TasksDirOpt = None,
    data_dir: DataDirOpt = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Run folder. Default: runs/<task>/<student>-<teacher>-s<seed>.")
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            help="teacher: copy mapped layers and embeddings where shapes allow; slice: also give narrower tensors "
            "the teacher's leading slice (hidden-reduced students start from the teacher's first dimensions); "
            f"random. Default: {D['init']}."
        ),
    ] = None,
    alpha_hard: Annotated[
        float | None, typer.Option(help=f"Weight of the label cross-entropy. Default: {D['alpha_hard']}.")
    ] = None,
    alpha_soft: Annotated[
        float | None, typer.Option(help=f"Weight of the soft (teacher logits) loss. Default: {D['alpha_soft']}.")
    ] = None,
    alpha_feature: Annotated[
        float | None, typer.Option(help=f"Weight of the hidden-state loss. Default: {D['alpha_feature']}.")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help=f"Soft-loss temperature. Default: {D['temperature']}.")
    ] = None,
    feature_loss: Annotated[str | None, typer.Option(help=f"mse or cosine. Default: {D['feature_loss']}.")] = None,
    learning_rate: LrOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    max_seq_len: SeqOpt = None,
    max_train_samples: MaxTrainOpt = None,
    max_eval_samples: MaxEvalOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the interrupted run in --output-dir from its last checkpoint. Options not given are taken "
            "from the run; one that differs from its recorded recipe is refused.",
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a kdbench run folder (never a folder kdbench did not write).")
    ] = False,
    time_limit: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Stop cleanly after this much wall time (90s, 45m, 2h): training saves a checkpoint and stops, and "
            "--resume continues it (a batch job's wall time, a lent machine's call).",
        ),
    ] = None,
) -> None:
    """Distil a student from a fine-tuned teacher (fine-tuning the teacher first unless cached).

    The recipe of "What is Lost in Knowledge Distillation?": 0.33 x label cross-entropy + 0.33 x KL to the teacher at
    temperature 2 (x T^2) + 0.33 x MSE between mapped hidden states; first and last layers tied, the rest spread
    uniformly; Adam at 5e-5, 10 epochs, batch 12, length 128. Writes the student (save_pretrained), metrics.json,
    config.json and the layer map into the run folder. Every input is checked before anything is written.
    """
    given = given_options({k: v for k, v in locals().items() if k not in ("resume", "overwrite", "time_limit")})
    if "task" in given:
        given["task"] = task_arg(given["task"])
    from kdbench.judge.render import distill_table
    from kdbench.train.config import DistillConfig
    from kdbench.train.distill import distill as run_distill
    from kdbench.train.distill import resumed_config

    if resume:
        if output_dir is None:
            raise KdbenchError("--resume needs --output-dir: the run folder to continue")
        if overwrite:
            raise KdbenchError("--resume and --overwrite exclude each other")
        cfg = resumed_config(output_dir, {k: v for k, v in given.items() if k != "output_dir"})
    else:
        for name in ("task", "student"):
            if name not in given:
                raise KdbenchError(f"--{name} is required (or --resume with the --output-dir of an interrupted run)")
        cfg = DistillConfig(
            **{k: v for k, v in given.items() if k not in TRAIN_OPTIONS},
            train=train_settings(given),
            overwrite=overwrite,
        )
    from kdbench.train.trainer import is_main

    deadline = time.time() + parse_duration("--time-limit", time_limit) if time_limit else None
    doc = run_distill(cfg, log=console.print if is_main() else (lambda *_: None), deadline=deadline)
    if not is_main():
        return  # one summary per launch: the writing process prints it
    console.print(distill_table(doc))
    share = doc["share_of_teacher"]
    console.print(
        f"{doc['metric']}: student {doc['score']:.4f}, teacher {doc['teacher_score']:.4f}"
        + (f" ({share:.1%} of the teacher)" if share is not None else "")
        + f"; training {doc['wall_s']:.0f} s; run folder {cfg.run_dir()}"
    )
