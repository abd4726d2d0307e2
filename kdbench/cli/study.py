"""`kdbench study`: a whole study from its file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from kdbench.cli.app import app, console, err_console, user_errors
from kdbench.cli.options import DataDirOpt, TasksDirOpt, parse_duration, parse_resources
from kdbench.core.errors import KdbenchError


@app.command()
@user_errors
def study(
    study_file: Annotated[
        Path,
        typer.Argument(
            help="Study file (YAML or TOML): teacher, tasks, students, seeds, sweeps, teacher and student "
            "budgets, export and profile settings, notes (README: `kdbench study`; reports/minilm-glue/study.yaml)."
        ),
    ],
    teacher: Annotated[str | None, typer.Option(help="Override the study's teacher (e.g. a local folder).")] = None,
    data_dir: DataDirOpt = None,
    tasks_dir: TasksDirOpt = None,
    cell: Annotated[str | None, typer.Option(help="Run only this cell (see --list): one job of a job array.")] = None,
    list_cells: Annotated[
        bool,
        typer.Option(
            "--list",
            help="List the cells: done, pending, or what a stopped study left and what the next run will do with it "
            "(resume a training from its last checkpoint, or restart one stopped before its first); the report last.",
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            help="Cells run at once in worker processes, each when the cells it needs are done (a distillation waits "
            "for its teacher's fine-tune). One GPU trains several small students at once; on CPU the cores are "
            "shared out. Each cell's output goes to study-log/<cell>.log. The profile always times alone.",
        ),
    ] = 1,
    executor: Annotated[
        str,
        typer.Option(
            help="local: cells run here (--jobs at once); ray: every cell becomes a Ray task with its resource "
            "request, started once the cells it needs are done, retried if its worker dies (a distillation resumes "
            "from its checkpoint). Both write the same completion files, so either can resume the other's study.",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="With --executor ray: the cluster to join (e.g. auto, or ray://head:10001); default: a new local Ray "
            "instance. Every node must see the study folder (a shared filesystem)."
        ),
    ] = None,
    cell_resources: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KIND=cpu:N,gpu:M",
            help="With --executor ray: what a kind of cell (finetune, distill, export, evaluate) asks for, e.g. "
            "distill=cpu:2,gpu:0.25 to pack four small trainings on a GPU. Default: 1 CPU, and 1 GPU for trainings "
            "when the study trains on cuda. Repeatable.",
        ),
    ] = None,
    report_only: Annotated[
        bool,
        typer.Option("--report", help="Run nothing: write the report from the runs finished so far."),
    ] = False,
    profile_finished: Annotated[
        bool,
        typer.Option(
            "--profile-finished",
            help="Train nothing: time the runs finished so far (the study's profile settings; on a quiet machine), "
            "then write the report, so a stopped study's claims get their speeds. The full profile is redone once "
            "every run exists.",
        ),
    ] = False,
    time_limit: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Stop cleanly after this much wall time (90s, 45m, 2h; a bare number is seconds): no cell starts "
            "later, and trainings in flight save a checkpoint and stop. The report shows what finished; rerun the "
            "same command to continue.",
        ),
    ] = None,
) -> None:
    """Run a whole study: every cell not yet complete, with progress and time left, then the report.

    Cells are independent commands, so a killed study reruns from where it stopped, and `--cell ID` lets several
    machines (or a cluster's job array) share one study.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from kdbench.core.names import suggest
    from kdbench.study.cells import cells
    from kdbench.study.runner import EXECUTORS, run_study
    from kdbench.study.spec import load_study

    s = load_study(study_file, teacher, data_dir, tasks_dir)
    deadline = time.time() + parse_duration("--time-limit", time_limit) if time_limit else None
    if jobs < 1:
        raise KdbenchError(f"--jobs must be at least 1, got {jobs}")
    resources = parse_resources(cell_resources or [])
    if executor not in EXECUTORS:
        raise KdbenchError(f"--executor is {executor!r}{suggest(executor, EXECUTORS)}; allowed: {', '.join(EXECUTORS)}")
    if cell:  # check the cell's name before the progress display starts
        every = cells(s)
        if cell not in {c.id for c in every}:
            raise KdbenchError(f"unknown cell {cell!r}{suggest(cell, [c.id for c in every])}; list them with --list")
    if report_only or profile_finished:
        from kdbench.study.cells import profile_finished as profile_runs
        from kdbench.study.report import write_study_report

        if profile_finished and profile_runs(s) is None:
            raise KdbenchError(f"{s.output_dir}: nothing to time (the study has no profile: block, or no finished run)")
        if not write_study_report(s):
            raise KdbenchError(f"{s.output_dir} holds no finished run yet; nothing to report")
        console.print(f"report: {s.output_dir / 'REPORT.md'}")
        return
    if list_cells:
        from kdbench.study.report import report_status

        every = cells(s)
        lines = [(c.id, *c.status()) for c in every]
        lines.append(("report", *report_status(s, all(c.done() for c in every))))
        for name, word, note in lines:
            console.print(f"{word:<7} {name}" + (f": {note}" if note else ""), highlight=False, markup=False)
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[eta]}"),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(s.name, total=None, eta="")

        def progress(cell_id: str, done: int, total: int, left: float | None) -> None:
            eta = f"~{left / 60:.0f} min left" if left is not None else ""
            bar.update(task, description=cell_id, completed=done, total=total, eta=eta)

        ran = run_study(s, cell, progress, jobs, deadline, executor, address, resources)
    if cell:  # one job of an array writes no report (many run at once); the report is its own step
        console.print(f"{s.name}: ran {len(ran)} cell(s); write the report with: kdbench study {study_file} --report")
    else:
        console.print(f"{s.name}: ran {len(ran)} cell(s); report: {s.output_dir / 'REPORT.md'}")
    left = sum(not c.done() for c in cells(s))
    if left and deadline is not None and time.time() >= deadline:
        console.print(f"stopped at the time limit with {left} cell(s) left; rerun the same command to continue")
    console.print((s.output_dir / "REPORT.md").read_text() if (s.output_dir / "REPORT.md").is_file() else "")
