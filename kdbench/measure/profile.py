"""`kdbench profile`: time the teacher and its students on each backend x device x batch size x sequence length.

Read in order: measure.config says what to measure (ProfileConfig), measure.models what is timed and in which groups
(plan, comparison_groups), measure.phases how (every cell's minimum group by group, then the undecided comparisons
within the budget), and `run_profile` below puts them together. The names other modules use are importable from
here.
"""

from __future__ import annotations

from kdbench.core import env
from kdbench.core.env import check_device
from kdbench.engines.registry import check_backend
from kdbench.measure.clock import Clock, clock_for
from kdbench.measure.config import DEFAULT_STUDENTS, DEFAULTS, QUICK, ProfileConfig, configure
from kdbench.measure.models import (
    Plan,
    Progress,
    RunModel,
    comparison_groups,
    describe_runs,
    describe_students,
    entries,
    load_model,
    make_inputs,
    plan,
    release,
    vocab_size,
)
from kdbench.measure.phases import Profiler, adapt
from kdbench.measure.result import ProfileResult

__all__ = [
    "DEFAULTS", "DEFAULT_STUDENTS", "QUICK", "Plan", "ProfileConfig", "RunModel", "adapt", "comparison_groups",
    "configure", "describe_students", "make_inputs", "plan", "run_profile",
]  # fmt: skip


CLOSE_S = 3.0  # seconds the budget keeps for what follows the measuring: the result's environment, writing, printing


def run_profile(
    cfg: ProfileConfig,
    progress: Progress | None = None,
    clock: Clock | None = None,
    resolved: Plan | None = None,
    started: float | None = None,
) -> ProfileResult:
    """Measure every cell of the grid and return the result (not yet written).

    `resolved` is the plan when the caller made it already; `started` (the clock's seconds) when the budget began -
    the command's start, for the CLI - else now. Phase one: per engine and precision, the models are timed
    group by group (comparison_groups), each beside its teacher, interleaved (measure_interleaved), each cell to its
    minimum (calls, blocks, seconds), with only one group's models open at a time. Phase two, with a budget: the
    comparisons a verdict rests on that are still undecided are measured on (see adapt), engine by engine, each
    reopening only the teacher and its undecided students, until decided or the budget is spent.
    """
    progress = progress or (lambda _desc, _n: None)
    check_device(cfg.device)
    p = resolved or plan(cfg)
    clock = clock or clock_for(cfg.device)
    started = clock.now() if started is None else started
    students = describe_students(p, cfg.seq_lens)
    describe_runs(p, cfg, students)
    groups = comparison_groups(p, students)
    profiler = Profiler(cfg, p, clock, progress, vocab_size(p))
    skipped, engines = [], []
    for name in cfg.backends:
        backend = check_backend(name)
        for dtype in cfg.dtypes:
            reason = backend.skips(dtype)
            if reason:
                skipped += [{"student": e.name, "backend": name, "dtype": dtype, "reason": reason} for e in entries(p)]
                progress(f"{name} {dtype} skipped", p.count * len(cfg.batch_sizes) * len(cfg.seq_lens))
                continue
            engines.append((backend, dtype))
            for names, _verdict in groups:
                profiler.group(backend, dtype, names)
                release(cfg)  # the group's sessions are gone with profiler.group's frame
            profiler.teachers.clear()  # a teacher's eager model serves its own engine's groups only
            release(cfg)
    if cfg.budget_s is not None and not cfg.smoke:
        profiler.decide(engines, groups, started + cfg.budget_s - CLOSE_S)
    parts = _breakdowns(cfg, p, profiler.vocab, progress) if cfg.breakdown else {}
    return ProfileResult(
        env.collect(cfg.threads), cfg.to_dict(), p.teacher, students, tuple(profiler.measured.cells(cfg)),
        tuple(skipped), breakdown=parts,
    )  # fmt: skip


def _breakdowns(cfg: ProfileConfig, p: Plan, vocab: int, progress: Progress) -> dict:
    """Per model and precision, eager PyTorch's time per operator group at the first batch size and length, beside
    the analytic FLOPs of each group."""
    from kdbench.engines.pytorch import TorchBackend
    from kdbench.measure.breakdown import breakdown, group_flops

    batch, seq = cfg.batch_sizes[0], cfg.seq_lens[0]
    out: dict = {}
    for dtype in cfg.dtypes:
        for entry in entries(p):
            progress(f"breakdown of {entry.name} ({dtype})", 0)
            load = lambda e=entry: load_model(p, cfg, e.name, progress)  # noqa: E731
            session = TorchBackend().open(entry, load, cfg.device, dtype, cfg.threads, progress)["torch"]
            inputs = session.prepare(make_inputs(vocab, batch, seq, cfg.seed))
            seconds = breakdown(session.model, lambda s=session, x=inputs: s.run(x), session.synchronize)
            flops = group_flops(entry.shape, seq)
            out.setdefault(dtype, {})[entry.name] = {
                "batch_size": batch,
                "seq_len": seq,
                "seconds": seconds,
                "flops": {g: v * batch for g, v in flops.items()},
            }
    return out
