"""The measuring loop and the clocks, with a fake clock: no sleeps, no real timing."""

import pytest

from kdbench.measure.clock import CpuClock, Target, clock_for, measure, measure_interleaved


class FakeClock:
    """Each timed call takes `step` seconds of fake time; warm-up calls take `step` too."""

    def __init__(self, step: float):
        self.t = 0.0
        self.step = step
        self.calls = 0

    def time_call(self, fn, synchronize):
        fn()  # a real clock synchronizes here (tested below on CpuClock); the fake leaves it to the loop under test
        return self.step

    def now(self):
        return self.t

    def tick(self):
        self.calls += 1
        self.t += self.step


def run(step, **kw):
    clock = FakeClock(step)
    synced = []
    defaults = dict(warmup_runs=2, min_runs=5, min_time_s=1.0, max_time_s=10.0, warmup_time_s=0.0)
    samples = measure(clock.tick, lambda: synced.append(1), clock, **{**defaults, **kw})
    return samples, clock, synced


def test_min_time_dominates_for_fast_calls():
    samples, clock, _ = run(0.125)
    assert len(samples) == 8  # 1.0 s of 0.125 s calls, warm-up excluded
    assert clock.calls == 10  # 2 warm-up calls ran but were not sampled


def test_min_runs_dominates_for_slow_calls():
    samples, _, _ = run(0.5, min_runs=5, min_time_s=0.1)
    assert len(samples) == 5


def test_max_time_cuts_a_very_slow_cell_but_keeps_two_samples():
    samples, _, _ = run(6.0, min_runs=10, max_time_s=10.0)
    assert len(samples) == 2


def test_warmup_time_extends_the_warmup():
    samples, clock, _ = run(0.125, warmup_runs=1, warmup_time_s=0.5, min_time_s=0.0, min_runs=3)
    assert len(samples) == 3 and clock.calls == 4 + 3


def test_every_warm_up_call_is_synchronized_before_timing_starts():
    samples, clock, synced = run(0.125, warmup_runs=3)
    assert len(synced) == 3 and clock.calls == 3 + len(samples)


def test_cpu_clock_times_the_call_and_waits_for_the_backend():
    order = []
    elapsed = CpuClock().time_call(lambda: order.append("run"), lambda: order.append("sync"))
    assert order == ["run", "sync"] and elapsed >= 0.0


def test_clock_for_cpu():
    assert isinstance(clock_for("cpu"), CpuClock)


@pytest.mark.gpu
def test_cuda_clock_times_gpu_work():
    import torch

    clock = clock_for("cuda")
    a = torch.randn(2048, 2048, device="cuda")
    assert clock.time_call(lambda: a @ a, torch.cuda.synchronize) > 0


def test_interleaving_alternates_blocks_until_every_target_is_done():
    clock = FakeClock(0.125)
    order = []
    fast = Target("fast", lambda: (order.append("fast"), clock.tick()), lambda: None)
    slow = Target("slow", lambda: (order.append("slow"), clock.tick()), lambda: None)
    measure_interleaved([fast, slow], clock, min_runs=6, min_time_s=0.0, max_time_s=100.0, block_s=0.25)
    assert len(fast.samples) == 6 and len(slow.samples) == 6
    # blocks of two calls (0.25 s), alternating, every other round reversed (ABBA): drift on the machine, and a
    # trend within rounds, hit both targets alike
    assert order == ["fast", "fast", "slow", "slow", "slow", "slow", "fast", "fast", "fast", "fast", "slow", "slow"]
    assert fast.rounds == slow.rounds == [1, 1, 2, 2, 3, 3]


def test_a_trend_within_rounds_favours_neither_model():
    """A machine slowing down by 2 % from each block to the next, every round: with the teacher always first, each
    paired ratio would show the student 2 % slower; in ABBA order the trend cancels."""
    from kdbench.measure.clock import Rotation
    from kdbench.measure.stats import paired_speedup

    class Fading(FakeClock):
        def time_call(self, fn, synchronize):
            fn()
            seconds = self.step * (1.0 + 0.02 * ((len(order) - 1) % 2))  # the second block of a round is slower
            self.t += seconds
            return seconds

    order = []
    clock = Fading(0.25)  # one call per 0.25 s block
    teacher = Target("teacher", lambda: order.append("t"), lambda: None)
    student = Target("student", lambda: order.append("s"), lambda: None)
    measure_interleaved([teacher, student], clock, 0, 0.0, float("inf"), 0.25, rotation=Rotation(), rounds=8)
    assert order[:4] == ["t", "s", "s", "t"]
    speed = paired_speedup(teacher, student)
    assert speed.value == pytest.approx(1.0, abs=1e-9)


def test_the_next_round_lasts_each_target_s_mean_block_and_never_less_than_a_block():
    from kdbench.measure.clock import BLOCK_S, round_seconds

    a = Target("a", lambda: None, lambda: None, samples=[0.3, 0.2, 0.3], blocks=[1, 2, 2])  # blocks of 0.3 and 0.5
    b = Target("b", lambda: None, lambda: None, samples=[0.01], blocks=[3])  # cut short after one call
    c = Target("c", lambda: None, lambda: None)  # not measured yet
    assert round_seconds([a, b, c]) == pytest.approx(0.4 + BLOCK_S + BLOCK_S)
