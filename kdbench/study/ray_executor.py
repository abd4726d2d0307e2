"""The Ray executor: every group of cells one Ray task with its resource request, started when the tasks it needs
have finished, retried when its worker dies; the same completion files as the local executor."""

from __future__ import annotations

import os
import socket

from kdbench.core.errors import KdbenchError
from kdbench.study.cells import Cell, group_cells, run_group, time_left, worker_init
from kdbench.study.spec import Study


def cell_resources(study: Study, kind: str, overrides: dict[str, dict[str, float]]) -> dict[str, float]:
    """What a cell of `kind` asks Ray for: a GPU for trainings when the study trains on CUDA and for the profile
    when it times CUDA, one CPU otherwise; `overrides` (--cell-resources) replace either."""
    trains_on_gpu = "cuda" in (study.train.get("device"), study.teacher_train.get("device"))
    gpu = (kind in ("finetune", "distill") and trains_on_gpu) or (
        kind == "profile" and study.profile.get("device") == "cuda"
    )
    return {"num_cpus": 1.0, "num_gpus": 1.0 if gpu else 0.0, **overrides.get(kind, {})}


def _group_resources(study: Study, group: list[Cell], overrides: dict) -> dict[str, float]:
    asks = [cell_resources(study, c.kind, overrides) for c in group]
    return {k: max(a[k] for a in asks) for k in asks[0]}


def run_on_ray(study, all_cells, pending, durations, progress, deadline, ran, address, overrides) -> None:
    """Every group of cells (a teacher fine-tune; a run's distillation with its export and evaluations) as one Ray
    task with its resource request, taking the tasks it needs as arguments (so Ray starts it when they finished).
    A task whose worker dies is retried (an interrupted distillation resumes from its checkpoint); completion is the
    same files as the local executor writes, so a study moves between executors. The profile is the last task (it
    needs every other cell), so it times alone. The study folder must be on a filesystem every node sees."""
    try:
        import ray
    except ImportError:
        raise KdbenchError("--executor ray needs Ray: pip install 'kdbench[ray]' (or pip install ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise KdbenchError(f"cannot reach a Ray cluster at {address or 'a new local instance'}: {first}") from None
    study.output_dir.mkdir(parents=True, exist_ok=True)  # the workers' first check is that they see it
    try:
        task = ray.remote(max_retries=3)(ray_group)
        finished = {c.id for c in all_cells if c.id not in {p.id for p in pending}}
        groups = group_cells(pending)  # the profile, last, needs every other cell: it runs when they are done, alone
        by_cell: dict[str, object] = {}
        refs: dict[object, list[Cell]] = {}
        for group in groups:  # study order: every group's needs are submitted before it
            needs = [by_cell[n] for c in group for n in c.needs if n in by_cell]
            ref = task.options(**_group_resources(study, group, overrides)).remote(
                study, [c.id for c in group], deadline, *needs
            )
            refs[ref] = group
            by_cell.update({c.id: ref for c in group})
        total, waiting = len(all_cells), list(refs)
        failure: BaseException | None = None
        while waiting:
            if progress:
                left = [c for r in waiting for c in refs[r]]
                eta = time_left(left, durations)
                progress(f"{len(waiting)} Ray tasks pending", len(finished), total, eta)
            done, waiting = ray.wait(waiting, num_returns=1)
            try:
                records = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:  # the cell's own error, re-raised once the others finished
                failure = failure or exc.as_instanceof_cause()
                continue
            except ray.exceptions.RayError as exc:
                failure = failure or KdbenchError(f"a Ray task failed: {str(exc).splitlines()[0]}")
                continue
            for cell_id, kind, seconds in records:
                finished.add(cell_id)
                durations.setdefault(kind, []).append(seconds)
                ran.append(cell_id)
        if failure is not None:
            raise failure
    finally:
        if started_here:
            ray.shutdown()


def ray_group(study: Study, ids: list[str], deadline: float | None, *_needs) -> list[tuple[str, str, float]]:
    """A Ray task: check that this node sees the study folder, take the CPUs Ray gave it, run the group's cells."""
    import ray

    if not study.output_dir.is_dir():
        raise KdbenchError(
            f"the Ray worker on {socket.gethostname()} cannot see the study folder {study.output_dir}; a Ray cluster "
            "needs the study on a filesystem every node shares"
        )
    os.environ["KDBENCH_NODE"] = ray.get_runtime_context().get_node_id()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    worker_init(max(1, int(cpus)))
    return run_group(study, ids, deadline)
