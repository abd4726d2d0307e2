"""The one place that knows how to time a call on CPU versus CUDA.

Backends only expose `synchronize()`; everything else about clocks lives here. A clock times one call of `fn`:
  * CPU: `time.perf_counter` around the call.
  * CUDA: CUDA events recorded on the current stream around the call, then `synchronize()`. Work the backend queues
    on that stream is timed on the GPU; a backend that blocks until its result is on the host (ONNX Runtime's
    `run`) is timed just as correctly, because the end event is recorded only after it returns.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    """Measures single calls and tells the wall time used by the measuring loop."""

    def time_call(self, fn: Callable[[], object], synchronize: Callable[[], None]) -> float:
        """Seconds taken by one call of `fn`, including the device work it launched."""
        ...

    def now(self) -> float:
        """Monotonic wall seconds, for run budgets."""
        ...


class CpuClock:
    """perf_counter timing; `synchronize` is still called so a lazily executing backend finishes inside the timing."""

    def time_call(self, fn: Callable[[], object], synchronize: Callable[[], None]) -> float:
        start = time.perf_counter()
        fn()
        synchronize()
        return time.perf_counter() - start

    def now(self) -> float:
        return time.perf_counter()


class CudaClock:
    """CUDA-event timing on the current stream (microsecond resolution, no host-side launch jitter)."""

    def __init__(self) -> None:
        import torch

        self._torch = torch
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def time_call(self, fn: Callable[[], object], synchronize: Callable[[], None]) -> float:
        synchronize()  # nothing queued earlier may leak into this call's timing
        self._start.record()
        fn()
        self._end.record()
        synchronize()
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1000.0

    def now(self) -> float:
        return time.perf_counter()


def clock_for(device: str) -> Clock:
    """The right clock for a device ('cpu' or 'cuda')."""
    return CudaClock() if device == "cuda" else CpuClock()


# ------------------------------------------------------------------------------------------ the measuring loop
@dataclass
class Target:
    """One model's call at one grid point, as the interleaved measuring loop sees it."""

    name: str
    call: Callable[[], object]
    synchronize: Callable[[], None]
    samples: list[float] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)  # the measuring block of each sample
    rounds: list[int] = field(default_factory=list)  # the round of the rotation each sample's block was in
    spent: float = 0.0  # seconds of timed calls so far
    min_blocks: int = 1  # blocks of time the samples must span (the unit of noise an interval needs)

    def done(self, min_runs: int, min_time_s: float, max_time_s: float) -> bool:
        n = len(self.samples)
        spread = len(set(self.blocks)) >= self.min_blocks
        return (n >= min_runs and self.spent >= min_time_s and spread) or (n >= 2 and self.spent >= max_time_s)


BLOCK_S = 0.25  # seconds of back-to-back calls a measuring block lasts


@dataclass
class Rotation:
    """Block and round numbers that stay unique over every measuring loop of one profile: a teacher timed beside
    several groups of students keeps one cell, and each of its blocks pairs with the students' of the same round."""

    block: int = 0
    round: int = 0


def measure_interleaved(
    targets: list[Target],
    clock: Clock,
    min_runs: int,
    min_time_s: float,
    max_time_s: float,
    block_s: float = BLOCK_S,
    on_block: Callable[[Target], None] | None = None,
    rotation: Rotation | None = None,
    rounds: int | None = None,
) -> None:
    """Time several models at the same grid point in alternating blocks (fills each target's `samples`).

    A shared machine drifts (other tenants, thermal state); measuring the teacher and its students in round-robin
    blocks of about `block_s` seconds spreads that drift over all of them, so their ratios stay honest, and the blocks
    of one round - adjacent in time - pair up: their ratio cancels drift slower than a round. Every other round runs
    in reverse order (ABBA), so a trend within rounds (a CPU's turbo fading after a warm-up) favours no model: the
    teacher is first in one round and last in the next. Within a block calls run
    back to back, as in a serving loop. A target leaves the rotation once it has `min_runs` calls and `min_time_s`
    seconds (or `max_time_s`); with `rounds`, every target instead gets exactly that many more rounds (the adaptive
    phase of a profile). The caller has warmed every target up already.
    """
    rotation = rotation or Rotation()
    pending = list(targets)
    for done_rounds in itertools.count(1):
        rotation.round += 1
        for t in pending if rotation.round % 2 else pending[::-1]:
            block_start = clock.now()
            rotation.block += 1
            while True:
                sample = clock.time_call(t.call, t.synchronize)
                t.samples.append(sample)
                t.blocks.append(rotation.block)
                t.rounds.append(rotation.round)
                t.spent += sample
                if clock.now() - block_start >= block_s:
                    break
                if rounds is None and t.done(min_runs, min_time_s, max_time_s):
                    break
            if on_block:
                on_block(t)
        if rounds is not None:
            if done_rounds >= rounds:
                return
            continue
        pending = [t for t in pending if not t.done(min_runs, min_time_s, max_time_s)]
        if not pending:
            return


def round_seconds(measured) -> float:
    """Seconds one more round of `measured` (targets or cells: anything with samples and blocks) will take: for each,
    its mean block, and never less than BLOCK_S - a block runs until BLOCK_S of wall time has passed, while a block
    cut short at the minimum, or calls timed by CUDA events (device time, less than wall time), would count less."""
    total = 0.0
    for m in measured:
        blocks = len(set(m.blocks))
        total += max(BLOCK_S, sum(m.samples) / blocks if blocks else 0.0)
    return total


def warm_up(
    call: Callable[[], object], synchronize: Callable[[], None], clock: Clock, runs: int, time_s: float
) -> tuple[float | None, float]:
    """Untimed calls: at least `runs` of them and at least `time_s` seconds. Returns (seconds of the first call, None
    when there was none, and seconds of them all): what a deployment pays before its first answer (torch.compile
    compiles in its first calls)."""
    start = clock.now()
    first = None
    done = 0
    while done < runs or clock.now() - start < time_s:
        call()
        synchronize()
        done += 1
        first = clock.now() - start if first is None else first
    return first, clock.now() - start


def measure(
    call: Callable[[], object],
    synchronize: Callable[[], None],
    clock: Clock,
    warmup_runs: int,
    min_runs: int,
    min_time_s: float,
    max_time_s: float,
    warmup_time_s: float = 0.0,
) -> list[float]:
    """Time one `call` on its own: warm-up first (at least `warmup_runs` calls and `warmup_time_s` seconds,
    discarded), then until both `min_runs` calls and `min_time_s` seconds of timed calls are reached; `max_time_s`
    cuts a slow cell short (keeping at least two samples, the least a spread needs)."""
    warm_up(call, synchronize, clock, warmup_runs, warmup_time_s)
    target = Target("call", call, synchronize)
    measure_interleaved([target], clock, min_runs, min_time_s, max_time_s, block_s=float("inf"))
    return target.samples
