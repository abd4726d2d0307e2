"""`kdbench recommend`: which student to deploy for a task, a machine and a latency budget."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdbench.cli.app import app, console, progress_bar, user_errors
from kdbench.cli.options import (
    TASK_HELP,
    TRAIN_OPTIONS,
    BatchOpt,
    DataDirOpt,
    EpochsOpt,
    LrOpt,
    MaxEvalOpt,
    MaxTrainOpt,
    SeqOpt,
    StudentsDirOpt,
    TasksDirOpt,
    given_options,
    parse_duration,
    parse_names,
    task_arg,
)
from kdbench.core.errors import KdbenchError
from kdbench.zoo.teacher import DEFAULT_TEACHER


@app.command()
@user_errors
def recommend(
    task: Annotated[str, typer.Option(help=TASK_HELP)],
    latency_budget: Annotated[
        str, typer.Option(metavar="DURATION", help="The deployment's budget for one call: 15ms, 0.015s, 800us.")
    ],
    teacher: Annotated[
        str, typer.Option(help="Your teacher: hub id or local model folder (fine-tuned for the task or not).")
    ] = DEFAULT_TEACHER,
    stat: Annotated[str, typer.Option(help="What the budget bounds: p50 (the median call) or p90.")] = "p50",
    device: Annotated[str, typer.Option(help="Where the deployment runs: cpu or cuda.")] = "cpu",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per call in the deployment.")] = 1,
    seq_len: Annotated[
        str,
        typer.Option(
            help="Tokens per sequence in the deployment; auto: the 95th percentile of the task's tokenised validation "
            "texts (stated in the answer)."
        ),
    ] = "auto",
    min_share: Annotated[
        float | None, typer.Option(help="The least share of the teacher's score to accept, e.g. 0.97. Default: none.")
    ] = None,
    engines: Annotated[
        str,
        typer.Option(
            help="Engines and precisions a student may be deployed on (comma-separated): torch, torch-compile, "
            "onnxruntime, onnxruntime:O2, onnxruntime:int8."
        ),
    ] = "torch,onnxruntime,onnxruntime:int8",
    candidates: Annotated[int, typer.Option(help="Shapes to distil from those that fit.")] = 4,
    time_budget: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Wall time for everything (90m, 3h): trainings checkpoint and stop at it; the same command continues.",
        ),
    ] = None,
    jobs: Annotated[int, typer.Option(help="Distillations at once in worker processes.")] = 1,
    executor: Annotated[str, typer.Option(help="local, or ray: every distillation a Ray task.")] = "local",
    address: Annotated[str | None, typer.Option(help="With --executor ray: the cluster to join.")] = None,
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Everything: candidates, timings, the study, the answer.")
    ] = Path("recommend"),
    tasks_dir: TasksDirOpt = None,
    students_dir: StudentsDirOpt = None,
    data_dir: DataDirOpt = None,
    learning_rate: LrOpt = None,
    epochs: EpochsOpt = None,
    max_train_samples: MaxTrainOpt = None,
    max_eval_samples: MaxEvalOpt = None,
    train_batch_size: BatchOpt = None,
    max_seq_len: SeqOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the distillations.")] = 42,
) -> None:
    """Which student should I deploy? Time the zoo and a generated space of shapes on this machine and every engine,
    distil the best few that fit the latency budget, score each on the engine it would run on, and answer: the
    best-scoring one, with its score and latency intervals, the runner-up and whether they differ beyond noise, what
    the fastest would lose and the largest gain, and the commands that reproduce and deploy it (RECOMMENDATION.md,
    recommendation.json, recommendation.png in --output-dir). A killed recommend continues where it stopped."""
    from kdbench.recommend.answer import summary
    from kdbench.recommend.search import RecommendConfig, parse_latency
    from kdbench.recommend.search import recommend as run_recommend

    train = given_options(
        dict(
            learning_rate=learning_rate,
            epochs=epochs,
            max_train_samples=max_train_samples,
            max_eval_samples=max_eval_samples,
            batch_size=train_batch_size,
            max_seq_len=max_seq_len,
        )
    )
    if seq_len != "auto" and not seq_len.isdigit():
        raise KdbenchError(f"--seq-len is {seq_len!r}; a positive number of tokens, or auto")
    cfg = RecommendConfig(
        task=task_arg(task),
        latency_budget_s=parse_latency("--latency-budget", latency_budget),
        teacher=teacher,
        stat=stat,
        device=device,
        batch_size=batch_size,
        seq_len=None if seq_len == "auto" else int(seq_len),
        min_share=min_share,
        engines=parse_names(engines, "--engines") or (),
        candidates=candidates,
        time_budget_s=parse_duration("--time-budget", time_budget) if time_budget else None,
        output_dir=output_dir,
        tasks_dir=tasks_dir,
        students_dir=students_dir,
        data_dir=data_dir,
        train={k: v for k, v in train.items() if k in TRAIN_OPTIONS},
        seed=seed,
        jobs=jobs,
        executor=executor,
        address=address,
    )
    with progress_bar("recommend", eta=True) as bar:
        doc = run_recommend(cfg, bar)
    for line in summary(doc):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    console.print(f"written: {output_dir}/RECOMMENDATION.md, recommendation.json, recommendation.png")
