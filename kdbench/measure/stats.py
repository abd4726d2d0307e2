"""Latency statistics derived from raw per-run samples, and intervals for speed-ups: paired rounds with sequential
looks (profiles since schema version 3), batch means (version 2) or a bootstrap of the samples (version 1).

A record keeps its samples; every statistic is computed from them (as optimum-benchmark's latency tracker does), so a
result file re-read later gives the same numbers and new statistics can be added without re-measuring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 2000  # resamples for the speed-up interval; enough for stable 2.5/97.5 percentiles
CONFIDENCE = 0.95
MIN_SAMPLES = 20  # timed calls a cell needs before its speed-up carries a verdict
MIN_BLOCKS = 5  # separate measuring blocks a cell needs: on a shared machine the noise comes in stretches of time


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-run latencies in seconds."""

    count: int
    mean: float
    std: float  # sample standard deviation (ddof=1)
    min: float
    max: float
    p50: float
    p90: float
    p99: float

    @property
    def cv(self) -> float:
        """Coefficient of variation: std / mean."""
        return self.std / self.mean if self.mean > 0 else 0.0

    @classmethod
    def from_samples(cls, samples) -> LatencyStats:
        """Compute the summary; needs at least one sample."""
        x = np.asarray(samples, dtype=float)
        assert x.size > 0, "statistics of no samples"
        p50, p90, p99 = np.percentile(x, [50, 90, 99])
        std = float(x.std(ddof=1)) if x.size > 1 else 0.0
        return cls(
            int(x.size), float(x.mean()), std, float(x.min()), float(x.max()), float(p50), float(p90), float(p99)
        )

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "mean": self.mean,
            "std": self.std,
            "cv": self.cv,
            "min": self.min,
            "max": self.max,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
        }


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval, and what the interval rests on."""

    value: float
    low: float
    high: float
    method: str = "bootstrap"  # "paired rounds", "batch means" (blocks of time) or "bootstrap" (samples independent)
    samples: int = 0  # the smaller side's number of timed calls
    blocks: int = 0  # the smaller side's number of measuring blocks, or the paired rounds (0: not recorded)

    @property
    def sufficient(self) -> bool:
        """Whether the interval may carry a verdict: enough calls, spread over enough separate blocks (or paired
        rounds) of time."""
        methods = ("batch means", "paired rounds")
        return self.method in methods and self.samples >= MIN_SAMPLES and self.blocks >= MIN_BLOCKS

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "method": self.method,
            "samples": self.samples,
            "blocks": self.blocks,
            "sufficient": self.sufficient,
        }

    def __str__(self) -> str:
        return f"{self.value:.2f}x [{self.low:.2f}, {self.high:.2f}]"


def block_medians(samples, blocks) -> np.ndarray:
    """The median of each measuring block's samples."""
    x, b = np.asarray(samples, dtype=float), np.asarray(blocks)
    return np.array([np.median(x[b == k]) for k in np.unique(b)])


def speedup_interval(
    baseline,
    candidate,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    baseline_blocks=None,
    candidate_blocks=None,
) -> Interval:
    """Speed-up of `candidate` over `baseline` (ratio of median latencies) with a 95 % interval.

    With the measuring block of every sample (profiles since schema version 2) the interval is by batch means: the
    medians of the blocks are the independent observations (samples inside one block share the machine's state of
    that moment, so treating them as independent makes intervals far too narrow on a shared machine), and a Welch t
    interval on their logarithms gives the width around the ratio of medians. Its coverage is checked by simulation
    in tests/measure/test_stats.py. Without blocks (older files) it is a percentile bootstrap of the samples,
    reported as not sufficient for a verdict.
    """
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    value = float(np.median(b) / np.median(c))
    n = int(min(b.size, c.size))
    if baseline_blocks is not None and candidate_blocks is not None:
        lb, lc = np.log(block_medians(b, baseline_blocks)), np.log(block_medians(c, candidate_blocks))
        if lb.size >= 2 and lc.size >= 2:
            return _batch_means(value, lb, lc, n)
    rng = np.random.default_rng(seed)
    b_med = np.median(rng.choice(b, size=(resamples, b.size), replace=True), axis=1)
    c_med = np.median(rng.choice(c, size=(resamples, c.size), replace=True), axis=1)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(b_med / c_med, [alpha, 1 - alpha])
    return Interval(value, float(low), float(high), "bootstrap", n, 0)


def _batch_means(value: float, lb: np.ndarray, lc: np.ndarray, n: int) -> Interval:
    from scipy import stats

    vb, vc = lb.var(ddof=1) / lb.size, lc.var(ddof=1) / lc.size
    se = float(np.sqrt(vb + vc))
    if se == 0:
        return Interval(value, value, value, "batch means", n, int(min(lb.size, lc.size)))
    df = (vb + vc) ** 2 / (vb**2 / (lb.size - 1) + vc**2 / (lc.size - 1))  # Welch-Satterthwaite
    half = float(stats.t.ppf(1 - (1 - CONFIDENCE) / 2, df)) * se
    return Interval(
        value, value * float(np.exp(-half)), value * float(np.exp(half)), "batch means", n, int(min(lb.size, lc.size))
    )


LOOK_GROWTH = 1.4  # a sequential comparison looks again once its paired rounds have grown by this factor


def look_alpha(look: int) -> float:
    """The error a sequential comparison may spend at its `look`-th look (1, 2, ...): 6/pi^2 / look^2 of the total, so
    that every look together spends at most 1 - CONFIDENCE (a union bound: the interval at whatever look the
    measuring stops is valid, however the stop was chosen). `look` 0: a comparison never looked at sequentially, the
    plain 1 - CONFIDENCE."""
    alpha = 1 - CONFIDENCE
    return alpha if look <= 0 else alpha * 6 / (np.pi**2 * look**2)


def next_look(rounds: int) -> int:
    """The number of paired rounds at which a sequential comparison that has `rounds` now looks again."""
    return max(rounds + 1, int(np.ceil(rounds * LOOK_GROWTH)))


def round_medians(samples, rounds) -> dict[int, float]:
    """The median of each round's samples (a target has one block per round)."""
    x, r = np.asarray(samples, dtype=float), np.asarray(rounds)
    return {int(k): float(np.median(x[r == k])) for k in np.unique(r)}


def paired_speedup_interval(baseline, baseline_rounds, candidate, candidate_rounds, looks: int = 0) -> Interval:
    """Speed-up of `candidate` over `baseline` from the rounds both were timed in: each round's ratio of block medians
    (the two blocks adjacent in time, so drift slower than a round cancels) is one observation; the speed-up is their
    geometric mean, with a t interval on their logarithms at the error `look_alpha(looks)` allows. Fewer than two
    common rounds: the point alone, not sufficient."""
    from scipy import stats

    b, c = round_medians(baseline, baseline_rounds), round_medians(candidate, candidate_rounds)
    common = sorted(set(b) & set(c))
    d = np.log([b[r] / c[r] for r in common])
    n = int(min(np.isin(baseline_rounds, common).sum(), np.isin(candidate_rounds, common).sum()))  # paired calls only
    if d.size < 2:
        value = float(np.exp(d.mean())) if d.size else float(np.median(baseline) / np.median(candidate))
        return Interval(value, value, value, "paired rounds", n, int(d.size))
    value = float(np.exp(d.mean()))
    half = float(stats.t.ppf(1 - look_alpha(looks) / 2, d.size - 1)) * float(d.std(ddof=1) / np.sqrt(d.size))
    return Interval(value, value * float(np.exp(-half)), value * float(np.exp(half)), "paired rounds", n, int(d.size))


def paired_speedup(baseline, candidate, looks: int = 0) -> Interval:
    """paired_speedup_interval of two measured things that carry `samples` and `rounds` (clock.Target, result.Cell)."""
    return paired_speedup_interval(baseline.samples, baseline.rounds, candidate.samples, candidate.rounds, looks)


def common_rounds(a, b) -> int:
    """How many rounds two measured things (with `rounds`) were both timed in."""
    return len(set(a.rounds) & set(b.rounds))


def latency_interval(samples, blocks, stat: str = "p50") -> Interval:
    """A cell's typical latency (the median call, "p50", or the 90th percentile, "p90") with a 95 % interval by batch
    means: the statistic of each measuring block is one observation, and a t interval on their logarithms gives the
    width (as speedup_interval does for a ratio). With one block only the point is known: the interval is that point
    and not `sufficient`."""
    from scipy import stats

    x, b = np.asarray(samples, dtype=float), np.asarray(blocks)
    q = {"p50": 50, "p90": 90}[stat]
    value = float(np.percentile(x, q))
    per_block = np.log([np.percentile(x[b == k], q) for k in np.unique(b)])
    if per_block.size < 2:
        return Interval(value, value, value, "batch means", int(x.size), int(per_block.size))
    half = float(stats.t.ppf(1 - (1 - CONFIDENCE) / 2, per_block.size - 1)) * float(
        per_block.std(ddof=1) / np.sqrt(per_block.size)
    )
    centre = float(np.exp(per_block.mean()))
    low, high = min(centre * float(np.exp(-half)), value), max(centre * float(np.exp(half)), value)
    return Interval(value, low, high, "batch means", int(x.size), int(per_block.size))
