"""The attention-head verdict: do fewer heads buy speed, and what would pruned heads have bought instead?

Computed from a ProfileResult only, so it can be re-derived from any saved result file.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.measure.result import ProfileResult, teacher_of
from kdbench.measure.stats import MIN_BLOCKS, MIN_SAMPLES, Interval

MEANINGFUL_SPEEDUP = 1.05  # a speed-up counts only when its whole 95 % interval lies above this


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
        }


FASTER, SLOWER, NO_DIFFERENCE, TOO_FEW = "faster", "slower", "no difference shown", "too few samples"


def classify(speedup: Interval) -> str:
    """Three outcomes, and a refusal: 'faster' when the whole interval clears MEANINGFUL_SPEEDUP, 'slower' when it
    lies below 1, 'no difference shown' otherwise (the data does not say "no"); 'too few samples' when the interval
    rests on fewer calls or blocks of time than a verdict needs (stats.MIN_SAMPLES, stats.MIN_BLOCKS)."""
    if not speedup.sufficient:
        return TOO_FEW
    if speedup.low > MEANINGFUL_SPEEDUP:
        return FASTER
    if speedup.high < 1.0:
        return SLOWER
    return NO_DIFFERENCE


def excludes_speedup(speedup: Interval) -> bool:
    """Whether a meaningful speed-up is ruled out: the whole interval lies below MEANINGFUL_SPEEDUP."""
    return speedup.sufficient and speedup.high < MEANINGFUL_SPEEDUP


def _head_reduced(result: ProfileResult) -> list[str]:
    """Students with fewer (wider) heads than their own teacher and every other size equal."""
    out = []
    for n, s in result.students.items():
        t = result.students.get(teacher_of(n))
        if (
            n != teacher_of(n)
            and t
            and s["heads"] < t["heads"]
            and not s["pruned"]
            and all(s[k] == t[k] for k in ("layers", "hidden", "ffn"))
        ):
            out.append(n)
    return out


def _pruned_twin(result: ProfileResult, name: str) -> str | None:
    """The pruned-head student of the same shape (and, for trained students, the same task)."""
    s = result.students[name]
    for n, o in result.students.items():
        if (
            o["pruned"]
            and teacher_of(n) == teacher_of(name)
            and all(o[k] == s[k] for k in ("heads", "layers", "hidden", "ffn"))
        ):
            return n
    return None


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
        for name in _head_reduced(result):
            cell = result.cell(name, key)
            base = result.cell(teacher_of(name), key)
            if cell is None or base is None:
                continue
            t_flops = result.students[teacher_of(name)]["flops_per_sequence"][seq]
            s = result.students[name]
            speed = result.speedup(cell, seed)
            flops = s["flops_per_sequence"][seq] / t_flops
            twin = _pruned_twin(result, name)
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
