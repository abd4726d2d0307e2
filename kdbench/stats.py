"""Latency statistics derived from raw per-run samples, and bootstrap confidence intervals for speed-ups.

A record keeps its samples; every statistic is computed from them (as optimum-benchmark's latency tracker does), so a
result file re-read later gives the same numbers and new statistics can be added without re-measuring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 2000  # resamples for the speed-up interval; enough for stable 2.5/97.5 percentiles
CONFIDENCE = 0.95


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
    """A point estimate with a confidence interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.value:.2f}x [{self.low:.2f}, {self.high:.2f}]"


def speedup_interval(baseline, candidate, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> Interval:
    """Speed-up of `candidate` over `baseline` (ratio of median latencies) with a percentile-bootstrap 95 % interval.

    Both sample sets are resampled independently: they come from separate measuring loops.
    """
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    rng = np.random.default_rng(seed)
    b_med = np.median(rng.choice(b, size=(resamples, b.size), replace=True), axis=1)
    c_med = np.median(rng.choice(c, size=(resamples, c.size), replace=True), axis=1)
    ratios = b_med / c_med
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return Interval(float(np.median(b) / np.median(c)), float(low), float(high))
