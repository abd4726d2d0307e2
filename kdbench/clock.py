"""The one place that knows how to time a call on CPU versus CUDA.

Backends only expose `synchronize()`; everything else about clocks lives here. A clock times one call of `fn`:
  * CPU: `time.perf_counter` around the call.
  * CUDA: CUDA events recorded on the current stream around the call, then `synchronize()`. Work the backend queues
    on that stream is timed on the GPU; a backend that blocks until its result is on the host (ONNX Runtime's
    `run`) is timed just as correctly, because the end event is recorded only after it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


DEVICES = ("cpu", "cuda")


def check_device(device: str) -> None:
    """Fail with one clear line for an unknown device, or CUDA asked for where PyTorch sees none."""
    from kdbench.errors import KdbenchError, check_choice

    check_choice("device", device, DEVICES)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise KdbenchError("--device cuda: no CUDA device is visible to PyTorch here; use --device cpu")


def clock_for(device: str) -> Clock:
    """The right clock for a device ('cpu' or 'cuda')."""
    return CudaClock() if device == "cuda" else CpuClock()
