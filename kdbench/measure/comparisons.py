"""Which comparisons a verdict rests on, and when one is decided: a profile measures those until they are (and the
head verdict, kdbench.judge.verdict, judges them).

A head-reduced student (fewer, wider heads, every other size its teacher's) is compared with its teacher; its pruned
twin (the same heads at the teacher's head width) is shown beside it. A comparison is decided when its interval shows
the student faster (above MEANINGFUL_SPEEDUP) or slower (below 1), or rules a meaningful speed-up out.
"""

from __future__ import annotations

import math

from kdbench.measure.result import teacher_of
from kdbench.measure.stats import Interval

MEANINGFUL_SPEEDUP = 1.05  # a speed-up counts only when its whole 95 % interval lies above this


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


def head_reduced(students: dict[str, dict]) -> list[str]:
    """Students with fewer (wider) heads than their own teacher and every other size equal."""
    out = []
    for n, s in students.items():
        t = students.get(teacher_of(n))
        if (
            n != teacher_of(n)
            and t
            and s["heads"] < t["heads"]
            and not s["pruned"]
            and all(s[k] == t[k] for k in ("layers", "hidden", "ffn"))
        ):
            out.append(n)
    return out


def pruned_twin(students: dict[str, dict], name: str) -> str | None:
    """The pruned-head student of the same shape (and, for trained students, the same task)."""
    s = students[name]
    for n, o in students.items():
        if (
            o["pruned"]
            and teacher_of(n) == teacher_of(name)
            and all(o[k] == s[k] for k in ("heads", "layers", "hidden", "ffn"))
        ):
            return n
    return None


def decided(speedup: Interval) -> bool:
    """Whether more measuring could change the verdict on this comparison no more: it is shown faster or slower, or a
    meaningful speed-up is ruled out."""
    return classify(speedup) in (FASTER, SLOWER) or excludes_speedup(speedup)


def rounds_to_decide(speedup: Interval) -> int | None:
    """Roughly how many more paired rounds would decide an undecided comparison. The half-width shrinks as one over
    the square root of the rounds; it must shrink to the distance from the estimate to the nearest bound that decides
    (MEANINGFUL_SPEEDUP, from either side: below it, ruling a speed-up out always comes before showing the student
    slower). It ignores that later looks spend less error, so it is a low estimate. None: decided already, not from
    paired rounds, or the estimate sits on the bound (no number of rounds is enough)."""
    if decided(speedup) or speedup.method != "paired rounds" or speedup.blocks < 2 or speedup.low <= 0:
        return None
    half = math.log(speedup.high / speedup.low) / 2
    value, bound = math.log(speedup.value), math.log(MEANINGFUL_SPEEDUP)
    reach = abs(value - bound)
    if reach <= 0:
        return None
    needed = math.ceil(speedup.blocks * (half / reach) ** 2)
    return max(1, needed - speedup.blocks)
