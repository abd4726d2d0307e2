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


# ------------------------------------------------------------------- sequential looks: valid however the stop is chosen
@pytest.mark.parametrize("truth", [1.0, 1.05])
def test_sequential_intervals_cover_at_the_stopping_time_under_drift(truth):
    """Issue 26's criteria at the default settings: measuring until decided, the interval where it stops covers the
    true speed-up at least 93 % of the time, and a pair no faster than the 1.05x bound (identical models, or exactly at
    the bound) is called "faster" in at most 5 % of runs - though each run looked several times."""
    from kdbench.measure.simulation import simulate

    found = simulate(truth)
    assert found["rounds"] > 10, found  # the comparisons were really looked at again and again
    assert found["coverage"] >= 0.93, found
    assert found["faster"] <= 0.05, found


def test_looking_at_a_fixed_95_percent_each_time_would_fail_those_criteria(monkeypatch):
    """The same simulation with every look at the plain 5 % error (no spending): at the 1.05x bound it stops on a
    lucky look often enough to miss the truth and call the pair faster - what the checks above are there to catch."""
    from kdbench.measure import stats
    from kdbench.measure.simulation import simulate

    monkeypatch.setattr(stats, "look_alpha", lambda look: 1 - stats.CONFIDENCE)
    found = simulate(1.05)
    assert found["coverage"] < 0.93 or found["faster"] > 0.05, found


def test_the_error_spent_over_every_look_stays_within_five_percent():
    from kdbench.measure.stats import CONFIDENCE, look_alpha, next_look

    assert sum(look_alpha(k) for k in range(1, 10_000)) <= 1 - CONFIDENCE
    assert look_alpha(0) == pytest.approx(1 - CONFIDENCE)  # never looked at sequentially: the plain interval
    rounds = [5]
    while rounds[-1] < 1000:
        rounds.append(next_look(rounds[-1]))
    assert len(rounds) < 20  # looks grow geometrically: few looks, each spending a fair share


def test_paired_rounds_cancel_drift_that_independent_blocks_cannot():
    """A machine slowing down steadily, both models timed in each round: the ratio of each round's block medians
    stays put, so the paired interval is narrow where one built from the two sets of block medians is not."""
    from kdbench.measure.stats import paired_speedup_interval

    rng = np.random.default_rng(3)
    rounds = np.repeat(np.arange(12), 5)
    drift = np.exp(0.05 * rounds)  # 5 % slower every round
    teacher = 0.1 * drift * np.exp(rng.normal(0, 0.01, rounds.size))
    student = 0.08 * drift * np.exp(rng.normal(0, 0.01, rounds.size))
    paired = paired_speedup_interval(teacher, rounds, student, rounds)
    blocked = speedup_interval(teacher, student, baseline_blocks=rounds, candidate_blocks=rounds + 100)
    assert paired.method == "paired rounds" and paired.sufficient
    assert paired.low < 1.25 < paired.high
    assert (paired.high - paired.low) * 5 < blocked.high - blocked.low
    later = paired_speedup_interval(teacher, rounds, student, rounds, looks=4)
    assert later.low < paired.low and later.high > paired.high  # a later look spends less error: a wider interval
