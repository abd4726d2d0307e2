"""`kdbench study`: run the pending cells of a study (or one) on an executor, then write its report."""

from __future__ import annotations

from collections.abc import Callable

from kdbench.core.errors import DeadlineReached, KdbenchError
from kdbench.core.names import check_choice, suggest
from kdbench.study.cells import cells, read_log, run_cell, seconds_by_kind
from kdbench.study.local_executor import run_in_order, run_in_parallel
from kdbench.study.ray_executor import run_on_ray
from kdbench.study.report import write_study_report
from kdbench.study.spec import Study


def run_study(
    study: Study,
    only: str | None = None,
    progress: Callable[[str, int, int, float | None], None] | None = None,
    jobs: int = 1,
    deadline: float | None = None,
    executor: str = "local",
    address: str | None = None,
    resources: dict[str, dict[str, float]] | None = None,
) -> list[str]:
    """Run the pending cells (or just `only`), then the report; return the ids that ran.

    `progress(description, done, total, seconds_left)` is called before each cell; the estimate of time left is the
    mean duration of the cells of each kind finished so far (this session or an earlier one, from the study log),
    times the pending cells of that kind (divided by `jobs`). `jobs` > 1 runs that many cells at once in worker
    processes, each cell once the cells it needs are done (one GPU serves several small trainings at once; on CPU
    the cores are shared out). `deadline` (a `time.time()` value): no cell starts after it, and a training in flight
    checkpoints and stops, so a rerun continues. `executor` "ray" runs the cells as Ray tasks instead (on the cluster
    at `address`, or a local Ray instance): see `run_on_ray`; `resources` overrides a kind's request
    ({"distill": {"num_cpus": 2, "num_gpus": 0.5}}).
    """
    import datasets

    datasets.disable_progress_bars()  # the study shows one progress bar of its own, not one per tokenisation
    check_choice("executor", executor, EXECUTORS)
    all_cells = cells(study, deadline)
    if only is not None:
        chosen = [c for c in all_cells if c.id == only]
        if not chosen:
            raise KdbenchError(
                f"unknown cell {only!r}{suggest(only, [c.id for c in all_cells])}; list them with --list"
            )
        if chosen[0].done():
            return []
        run_cell(study, chosen[0])
        return [only]
    if jobs < 1:
        raise KdbenchError(f"--jobs must be at least 1, got {jobs}")
    pending = [c for c in all_cells if not c.done()]
    durations = seconds_by_kind(read_log(study))
    ran: list[str] = []
    try:
        if executor == "ray":
            run_on_ray(study, all_cells, pending, durations, progress, deadline, ran, address, resources or {})
        elif jobs == 1:
            run_in_order(study, all_cells, pending, durations, progress, deadline, ran)
        else:
            run_in_parallel(study, all_cells, pending, durations, progress, deadline, jobs, ran)
    except DeadlineReached:
        pass  # the training in flight saved a checkpoint; the report below shows what is finished
    write_study_report(study)
    return ran


EXECUTORS = ("local", "ray")
