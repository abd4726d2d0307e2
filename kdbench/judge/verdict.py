"""The attention-head verdict: do fewer heads buy speed, and what would pruned heads have bought instead?

Computed from a ProfileResult only, so it can be re-derived from any saved result file.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.measure.clock import BLOCK_S, round_seconds
from kdbench.measure.comparisons import (
    FASTER,
    MEANINGFUL_SPEEDUP,
    TOO_FEW,
    classify,
    decided,
    excludes_speedup,
    head_reduced,
    pruned_twin,
    rounds_to_decide,
)
from kdbench.measure.result import ProfileResult, teacher_of
from kdbench.measure.stats import MIN_BLOCKS, MIN_SAMPLES, Interval

SAME_FLOPS = 0.98  # FLOPs ratios at or above this mean "the same work"


@dataclass(frozen=True)
class HeadLine:
    """One head-reduced student at one grid point, compared with the teacher and its pruned twin."""

    student: str
    grid_key: tuple  # (device, backend, dtype, batch, seq)
    heads: int
    head_dim: int
    speedup: Interval
    flops_ratio: float  # student FLOPs / teacher FLOPs
    pruned: str | None  # the matching pruned-head student, if profiled
    pruned_speedup: Interval | None
    pruned_flops_ratio: float | None
    outcome: str  # "faster", "slower", "no difference shown" or "too few samples"
    reason: str
    round_s: float = 2 * BLOCK_S  # seconds one more round of the teacher and this student takes (clock.round_seconds)

    @property
    def to_decide(self) -> int | None:
        """Roughly how many more paired rounds would decide this comparison (None: decided, or out of reach)."""
        return rounds_to_decide(self.speedup)

    def to_dict(self) -> dict:
        device, backend, dtype, batch, seq = self.grid_key
        return {
            "student": self.student,
            "device": device,
            "backend": backend,
            "dtype": dtype,
            "batch_size": batch,
            "seq_len": seq,
            "heads": self.heads,
            "head_dim": self.head_dim,
            "speedup": self.speedup.to_dict(),
            "flops_ratio": self.flops_ratio,
            "pruned": self.pruned,
            "pruned_speedup": self.pruned_speedup.to_dict() if self.pruned_speedup else None,
            "pruned_flops_ratio": self.pruned_flops_ratio,
            "outcome": self.outcome,
            "reason": self.reason,
            "rounds_to_decide": self.to_decide,
        }


def _reason(
    outcome: str,
    flops_ratio: float,
    head_dim: int,
    pruned: str | None,
    pruned_speedup: Interval | None,
    pruned_flops: float | None,
    pruned_head_dim: int | None,
) -> str:
    if flops_ratio >= SAME_FLOPS:
        why = "fewer, wider heads keep every projection FLOP"
    else:
        why = f"the student does {flops_ratio:.0%} of the teacher's FLOPs"
    if outcome == "slower":
        why += f"; {head_dim}-wide heads run the attention products less efficiently"
    if pruned and pruned_speedup is not None and pruned_flops is not None:
        why += (
            f"; pruning to {pruned_head_dim}-wide heads ({pruned}) would give {pruned_speedup} "
            f"at {pruned_flops:.0%} of the FLOPs"
        )
    elif not pruned:
        why += "; no pruned-head twin was profiled (add --students pruned)"
    return why


def head_verdicts(result: ProfileResult, seed: int = 0) -> list[HeadLine]:
    """One line per head-reduced student per grid point where both it and the teacher were measured."""
    lines: list[HeadLine] = []
    for key in result.grid_keys():
        seq = str(key[4])
        for name in head_reduced(result.students):
            cell = result.cell(name, key)
            base = result.cell(teacher_of(name), key)
            if cell is None or base is None:
                continue
            t_flops = result.students[teacher_of(name)]["flops_per_sequence"][seq]
            s = result.students[name]
            speed = result.speedup(cell, seed)
            flops = s["flops_per_sequence"][seq] / t_flops
            twin = pruned_twin(result.students, name)
            twin_cell = result.cell(twin, key) if twin else None
            twin_speed = result.speedup(twin_cell, seed) if twin_cell else None
            twin_flops = result.students[twin]["flops_per_sequence"][seq] / t_flops if twin else None
            outcome = classify(speed)
            reason = _reason(
                outcome,
                flops,
                s["head_dim"],
                twin if twin_cell else None,
                twin_speed,
                twin_flops,
                result.students[twin]["head_dim"] if twin else None,
            )
            lines.append(
                HeadLine(
                    name,
                    key,
                    s["heads"],
                    s["head_dim"],
                    speed,
                    flops,
                    twin if twin_cell else None,
                    twin_speed,
                    twin_flops,
                    outcome,
                    reason,
                    round_seconds([base, cell]),
                )
            )
    return lines


def head_claim(lines: list[HeadLine], smoke: bool = False) -> str:
    """The answer to "fewer attention heads bring no speed-up": HOLDS when every head-reduced measurement rules out
    a meaningful speed-up, DOES NOT HOLD when one is faster, INCONCLUSIVE when the intervals allow either."""
    if smoke:
        return "no verdict from a smoke run (--quick): too few samples to say anything about speed"
    if not lines:
        return (
            "NOT ENOUGH DATA: profile the teacher and at least one head-reduced student (e.g. --students 4AH,8AH) "
            "on the same grid"
        )

    def where(ln: HeadLine) -> str:
        return (
            f"{ln.student} ({ln.grid_key[1]}, {ln.grid_key[0]}, {ln.grid_key[2]}, batch {ln.grid_key[3]}) {ln.speedup}"
        )

    faster = [where(ln) for ln in lines if ln.outcome == FASTER]
    if faster:
        return "DOES NOT HOLD: faster than the teacher: " + "; ".join(faster)
    few = [ln for ln in lines if ln.outcome == TOO_FEW]
    if few:
        return (
            f"INCONCLUSIVE: {len(few)} of {len(lines)} head-reduced measurements have too few samples for a verdict "
            f"(a verdict needs {MIN_SAMPLES} calls over {MIN_BLOCKS} blocks of time): " + "; ".join(map(where, few))
        )
    open_ = [where(ln) for ln in lines if not excludes_speedup(ln.speedup)]
    if open_:
        return (
            f"INCONCLUSIVE: no head-reduced student was shown faster, but {len(open_)} of {len(lines)} intervals "
            f"still allow a speed-up above {MEANINGFUL_SPEEDUP:.2f}x: " + "; ".join(open_)
        )
    return (
        f"HOLDS: all {len(lines)} head-reduced measurements rule out a speed-up above {MEANINGFUL_SPEEDUP:.2f}x "
        "(fewer, wider heads keep the projection FLOPs; only pruning heads shrinks them)"
    )


def undecided(lines: list[HeadLine]) -> list[str]:
    """One line per comparison the profile left undecided: the half-width its interval reached, and roughly how much
    more measuring (rounds of the teacher and that student alone) would decide it."""
    out = []
    for ln in lines:
        if decided(ln.speedup) and ln.outcome != TOO_FEW:
            continue
        s = ln.speedup
        where = f"{ln.student} ({ln.grid_key[1]}, {ln.grid_key[0]}, {ln.grid_key[2]}, batch {ln.grid_key[3]})"
        if ln.outcome == TOO_FEW:
            out.append(f"{where} {s}: too few samples for an interval (raise --min-runs, --min-blocks or --budget)")
            continue
        half = (s.high / s.low) ** 0.5 - 1
        if s.method != "paired rounds":
            more = "re-measure it with this version of kdbench to pair its rounds"
        elif ln.to_decide is None:
            more = "its estimate sits on the 1.05x bound: no affordable measuring decides it"
        else:
            seconds = _duration(ln.to_decide * ln.round_s)
            more = f"about {ln.to_decide} more rounds (~{seconds}; raise --budget) would decide it"
        out.append(f"{where} {s}: +/-{half:.1%} after {s.blocks} rounds; {more}")
    return out


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
