import numpy as np
import pytest

from kdbench.measure.stats import LatencyStats, speedup_interval


def test_statistics_are_derived_from_the_samples():
    x = [0.010, 0.011, 0.012, 0.013, 0.050]
    s = LatencyStats.from_samples(x)
    assert s.count == 5 and s.min == 0.010 and s.max == 0.050
    assert s.p50 == pytest.approx(np.percentile(x, 50)) and s.p99 == pytest.approx(np.percentile(x, 99))
    assert s.mean == pytest.approx(np.mean(x)) and s.std == pytest.approx(np.std(x, ddof=1))
    assert s.cv == pytest.approx(np.std(x, ddof=1) / np.mean(x))


def test_single_sample_has_zero_spread():
    assert LatencyStats.from_samples([0.5]).std == 0.0


def test_speedup_interval_covers_the_true_ratio_and_is_reproducible():
    rng = np.random.default_rng(1)
    teacher = 0.100 * (1 + 0.02 * rng.standard_normal(40))
    student = 0.050 * (1 + 0.02 * rng.standard_normal(40))
    a = speedup_interval(teacher, student, seed=3)
    assert a.low < 2.0 < a.high and a.high - a.low < 0.1
    assert a == speedup_interval(teacher, student, seed=3)


def test_identical_distributions_give_an_interval_around_one():
    rng = np.random.default_rng(2)
    a = speedup_interval(0.1 + 0.003 * rng.standard_normal(30), 0.1 + 0.003 * rng.standard_normal(30))
    assert a.low < 1.0 < a.high


def test_scaling_both_sides_leaves_the_speedup_unchanged():
    rng = np.random.default_rng(4)
    t, s = 0.1 + 0.01 * rng.random(20), 0.05 + 0.01 * rng.random(20)
    assert speedup_interval(t, s).value == pytest.approx(speedup_interval(3 * t, 3 * s).value)


def _blocked(rng, scale, blocks=5, per_block=4, between=0.05, within=0.03):
    """Timings from a shared machine: each block of time has its own level (drift), samples vary inside it."""
    samples, ids = [], []
    for b in range(blocks):
        level = rng.normal(0, between)
        samples += list(scale * np.exp(level + rng.normal(0, within, per_block)))
        ids += [b] * per_block
    return np.array(samples), np.array(ids)


def test_batch_means_intervals_cover_the_true_speedup_at_the_minimum_sample_count():
    """At the minimum a verdict needs (MIN_SAMPLES calls over MIN_BLOCKS blocks) the batch-means interval covers the
    true speed-up about 95 % of the time on drifting timings, where a bootstrap treating the calls as independent
    covers far less (it is what let `--quick` verdicts flip)."""
    from kdbench.measure.stats import MIN_BLOCKS, MIN_SAMPLES, speedup_interval

    rng = np.random.default_rng(7)
    truth, trials = 1.0 / 0.9, 400
    per_block = MIN_SAMPLES // MIN_BLOCKS
    hits = {"batch means": 0, "independent": 0}
    for _ in range(trials):
        b, bb = _blocked(rng, 1.0, MIN_BLOCKS, per_block)
        c, cb = _blocked(rng, 0.9, MIN_BLOCKS, per_block)
        blocked = speedup_interval(b, c, baseline_blocks=bb, candidate_blocks=cb)
        assert blocked.sufficient and blocked.method == "batch means"
        naive = speedup_interval(b, c, resamples=500)
        hits["batch means"] += blocked.low <= truth <= blocked.high
        hits["independent"] += naive.low <= truth <= naive.high
    coverage = {k: v / trials for k, v in hits.items()}
    assert coverage["batch means"] >= 0.92, coverage
    assert coverage["independent"] <= 0.88, coverage
