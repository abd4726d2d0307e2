"""The local executor: pending cells in order, or up to `jobs` groups at once in worker processes, each once the
cells it needs are done; the profile always times alone, last."""

from __future__ import annotations

import os

from kdbench.study.cells import group_cells, past, run_cell, run_group, time_left, worker_init


def run_in_order(study, all_cells, pending, durations, progress, deadline, ran) -> None:
    for i, cell in enumerate(pending):
        if past(deadline):
            return
        if progress:
            progress(cell.id, len(all_cells) - len(pending) + i, len(all_cells), time_left(pending[i:], durations))
        durations.setdefault(cell.kind, []).append(run_cell(study, cell))
        ran.append(cell.id)


def run_in_parallel(study, all_cells, pending, durations, progress, deadline, jobs, ran) -> None:
    """A small scheduler: up to `jobs` groups at once in spawned worker processes, each group once every cell it
    needs is done, in study order. The profile times alone, after every other cell, in this process."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    finished = {c.id for c in all_cells if c.id not in {p.id for p in pending}}
    alone = [c for c in pending if c.kind == "profile"]
    waiting = group_cells([c for c in pending if c.kind != "profile"])
    threads = max(1, (os.cpu_count() or 1) // jobs)
    total = len(all_cells)
    running: dict = {}
    failure: BaseException | None = None

    def report(what: str) -> None:
        if progress:
            left = [c for g in waiting for c in g] + [c for g in running.values() for c in g]
            eta = time_left(left, durations)
            progress(what, len(finished), total, None if eta is None else eta / jobs)

    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked; spawn is also what every OS supports
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=worker_init, initargs=(threads,)) as pool:
        while True:
            while failure is None and not past(deadline) and len(running) < jobs:
                ready = next((g for g in waiting if all(n in finished for c in g for n in c.needs)), None)
                if ready is None:
                    break
                waiting.remove(ready)
                running[pool.submit(run_group, study, [c.id for c in ready], deadline)] = ready
                report(f"{len(running)} running: {', '.join(g[0].id for g in running.values())}")
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
                try:
                    records = future.result()
                except Exception as exc:  # let the cells in flight finish, start no more, then fail
                    failure = failure or exc
                    continue
                for cell_id, kind, seconds in records:
                    finished.add(cell_id)
                    durations.setdefault(kind, []).append(seconds)
                    ran.append(cell_id)
            report(f"{len(running)} running")
    if failure is not None:
        raise failure
    done_elsewhere = {c.id for c in all_cells if c.id not in finished and c.kind != "profile" and c.done()}
    finished |= done_elsewhere  # cells another process (a --cell job) finished meanwhile count as done
    for cell in alone:
        if past(deadline) or not all(n in finished for n in cell.needs):
            return
        report(cell.id)
        durations.setdefault(cell.kind, []).append(run_cell(study, cell))
        ran.append(cell.id)
