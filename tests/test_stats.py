import numpy as np
import pytest

from kdbench.stats import LatencyStats, speedup_interval


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
