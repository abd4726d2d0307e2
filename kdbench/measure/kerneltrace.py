"""Which kernels a forward pass runs and how busy they keep the device: a torch.profiler trace per model and batch,
set beside the same call's timed latency.

This is what explains a latency that contradicts the FLOPs (a smaller model slower than its teacher at one batch size
on a GPU): when the device is busy for much less than the call lasts, the time goes to launches and the host; when it
is busy, the top kernels show which implementation (attention kernel, matrix-product tile) was chosen for the shape.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

from kdbench.core.env import check_device
from kdbench.measure.clock import clock_for, warm_up

TOP = 8  # kernels (CUDA) or operators (CPU) kept per trace


@dataclass(frozen=True)
class Trace:
    """One model at one batch size: its timed latency, the device's busy time per call, and its top kernels."""

    model: str
    batch_size: int
    seq_len: int
    dtype: str
    device: str
    engine: str  # the session's engine (attention implementation for eager PyTorch)
    p50_s: float  # median seconds per call, timed with kdbench's clock outside the profiler
    device_busy_s: float | None  # summed kernel time per call (CUDA); None on the CPU, where there is no device
    kernels_per_call: float | None  # kernel launches per call (CUDA)
    top: tuple[dict, ...]  # {"name", "calls_per_call", "seconds_per_call"}, the most expensive first

    @property
    def busy_share(self) -> float | None:
        """Share of the call the device spends in kernels; far below 1: launch- or host-bound."""
        return None if self.device_busy_s is None else self.device_busy_s / self.p50_s

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "dtype": self.dtype,
            "device": self.device,
            "engine": self.engine,
            "p50_s": self.p50_s,
            "device_busy_s": self.device_busy_s,
            "busy_share": self.busy_share,
            "kernels_per_call": self.kernels_per_call,
            "top": list(self.top),
        }


def trace_session(session, inputs, name: str, batch: int, seq: int, device: str, calls: int = 10) -> Trace:
    """Time `calls` calls of an opened (warmed-up) session, then trace `calls` more with torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    clock = clock_for(device)
    p50 = float(np.median([clock.time_call(lambda: session.run(inputs), session.synchronize) for _ in range(calls)]))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(calls):
            session.run(inputs)
        session.synchronize()
    events = prof.key_averages()
    if device == "cuda":
        kernels = [e for e in events if e.self_device_time_total > 0]
        seconds = {e.key: e.self_device_time_total / 1e6 for e in kernels}
        busy: float | None = sum(seconds.values()) / calls
        launches: float | None = sum(e.count for e in kernels) / calls
    else:  # no device: the operators' own host time says where the call goes
        kernels = [e for e in events if e.self_cpu_time_total > 0]
        seconds = {e.key: e.self_cpu_time_total / 1e6 for e in kernels}
        busy = launches = None
    counts = {e.key: e.count for e in kernels}
    top = sorted(seconds, key=seconds.get, reverse=True)[:TOP]
    return Trace(
        name,
        batch,
        seq,
        session.dtype,
        device,
        session.engine,
        p50,
        busy,
        launches,
        tuple({"name": k, "calls_per_call": counts[k] / calls, "seconds_per_call": seconds[k] / calls} for k in top),
    )


def trace_models(cfg, calls: int = 10) -> list[Trace]:
    """Trace every model of a profile configuration (teacher and students, eager PyTorch at its first dtype) at each
    of its batch sizes and its first sequence length; models are built with random weights, as `kdbench profile`
    builds them."""
    import torch

    from kdbench.engines.pytorch import TorchBackend
    from kdbench.measure.models import entries, make_inputs, plan
    from kdbench.zoo.modeling import build_model

    check_device(cfg.device)
    p = plan(cfg)
    dtype, seq = cfg.dtypes[0], cfg.seq_lens[0]
    clock = clock_for(cfg.device)
    out = []
    for entry in entries(p):
        torch.manual_seed(cfg.seed)
        model = build_model(p.teacher_config, entry.shape)
        load = lambda m=model: m  # noqa: E731
        session = TorchBackend().open(entry, load, cfg.device, dtype, cfg.threads, lambda *_: None)["torch"]
        for batch in cfg.batch_sizes:
            inputs = session.prepare(make_inputs(p.teacher_config.vocab_size, batch, seq, cfg.seed))
            warm_up(lambda s=session, x=inputs: s.run(x), session.synchronize, clock, cfg.warmup_runs, 0.0)
            out.append(trace_session(session, inputs, entry.name, batch, seq, cfg.device, calls))
        del session, model
        if cfg.device == "cuda":
            torch.cuda.empty_cache()
    return out


def gpu_clocks() -> dict | None:
    """The card's SM and memory clocks, power and temperature now (nvidia-smi), or None where it is not installed:
    a latency that changes between runs with the same kernels is often a clock that changed."""
    if not shutil.which("nvidia-smi"):
        return None
    fields = "clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active"
    r = subprocess.run(
        ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
    )
    if r.returncode != 0:
        return {"error": r.stderr.strip()[:200]}
    return dict(zip(fields.split(","), (v.strip() for v in r.stdout.splitlines()[0].split(",")), strict=False))


def trace_markdown(traces: list[Trace]) -> str:
    """A table per trace set: latency, device busy share, launches, and the three most expensive kernels."""
    out = [
        "| model | batch | dtype | p50 ms | device busy ms | busy share | kernels/call | top kernels (ms per call) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in traces:
        busy = "-" if t.device_busy_s is None else f"{t.device_busy_s * 1e3:.2f}"
        share = "-" if t.busy_share is None else f"{t.busy_share:.0%}"
        launches = "-" if t.kernels_per_call is None else f"{t.kernels_per_call:.0f}"
        top = "; ".join(f"{k['name'][:60]} {k['seconds_per_call'] * 1e3:.2f}" for k in t.top[:3])
        out.append(
            f"| {t.model} | {t.batch_size} | {t.dtype} | {t.p50_s * 1e3:.2f} | {busy} | {share} | {launches} | {top} |"
        )
    return "\n".join(out) + "\n"
