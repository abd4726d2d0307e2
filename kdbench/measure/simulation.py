"""A simulated shared machine, to check the profile's stopping rule without timing anything.

`DriftingMachine` is a fake clock (kdbench.measure.clock.Clock) on which a call lasts its model's latency times the
machine's slowness at that moment; `sequential_run` measures one comparison exactly as a default profile does (the
minimum, then phases.adapt's looks until decided or out of budget); `simulate` repeats it and says how often the
interval where measuring stopped covered the truth and how often the student was called faster. The tests hold the
rule to issue 26's criteria with it; scripts/sequential_coverage.py prints the figures.
"""

from __future__ import annotations

import numpy as np

from kdbench.measure.clock import BLOCK_S, Rotation, Target, measure_interleaved
from kdbench.measure.stats import MIN_BLOCKS, MIN_SAMPLES, Interval, paired_speedup

TEACHER_S = 0.05  # seconds per call of the simulated teacher (five calls a block)


class DriftingMachine:
    """A fake clock for models sharing a machine: a call lasts its model's latency times the machine's slowness -
    a slow random walk every model shares (it moves once a block, by `walk_sd` in log terms), bursts of other tenants
    that last half a block (`burst_sd`: they hit one model's block and not its neighbour's) - times call-to-call
    noise (`call_sd`). Time is the sum of the simulated calls: nothing sleeps."""

    def __init__(self, rng: np.random.Generator, walk_sd: float = 0.02, burst_sd: float = 0.05, call_sd: float = 0.03):
        self.rng, self.t, self.walk, self.walk_t, self.bursts = rng, 0.0, 0.0, 0.0, {}
        self.walk_sd, self.burst_sd, self.call_sd = walk_sd, burst_sd, call_sd

    def _level(self) -> float:
        while self.walk_t + BLOCK_S <= self.t:
            self.walk += self.rng.normal(0, self.walk_sd)
            self.walk_t += BLOCK_S
        burst = int(self.t / (BLOCK_S / 2))
        if burst not in self.bursts:
            self.bursts[burst] = self.rng.normal(0, self.burst_sd)
        return self.walk + self.bursts[burst]

    def time_call(self, fn, synchronize) -> float:
        """`fn` returns the model's own latency; the machine scales it."""
        seconds = fn() * float(np.exp(self._level() + self.rng.normal(0, self.call_sd)))
        self.t += seconds
        return seconds

    def now(self) -> float:
        return self.t


def sequential_run(rng: np.random.Generator, truth: float, budget_s: float = 40.0, **machine) -> Interval:
    """One comparison of a student `truth` times faster than its teacher, measured as a default profile measures it:
    the minimum (MIN_SAMPLES calls over MIN_BLOCKS blocks and one second), then looks until decided or `budget_s` of
    simulated time is spent. Returns the interval at the stop."""
    from kdbench.measure.phases import adapt

    clock = DriftingMachine(rng, **machine)
    teacher = Target("teacher", lambda: TEACHER_S, lambda: None, min_blocks=MIN_BLOCKS)
    student = Target("student", lambda: TEACHER_S / truth, lambda: None, min_blocks=MIN_BLOCKS)
    rotation = Rotation()
    measure_interleaved([teacher, student], clock, MIN_SAMPLES, 1.0, 20.0, BLOCK_S, rotation=rotation)
    looks = {"student": 1}
    adapt(teacher, {"student": student}, looks, rotation, clock, clock.now() + budget_s, lambda *_: None)
    return paired_speedup(teacher, student, looks["student"])


def simulate(truth: float, trials: int = 300, seed: int = 11, **machine) -> dict[str, float]:
    """Over `trials` sequential runs: the share whose final interval covers `truth`, the share called faster, and the
    mean number of paired rounds at the stop."""
    from kdbench.measure.comparisons import FASTER, classify

    rng = np.random.default_rng(seed)
    stops = [sequential_run(rng, truth, **machine) for _ in range(trials)]
    return {
        "coverage": float(np.mean([s.low <= truth <= s.high for s in stops])),
        "faster": float(np.mean([classify(s) == FASTER for s in stops])),
        "rounds": float(np.mean([s.blocks for s in stops])),
    }
