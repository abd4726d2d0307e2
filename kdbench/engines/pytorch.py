"""PyTorch engines: eager (the reference every speed-up is measured against) and torch.compile (inductor; CUDA
graphs on CUDA), in fp32, bf16 or fp16, with the memory a model holds and allocates."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass

import numpy as np

from kdbench.core.errors import KdbenchError
from kdbench.engines.base import ModelEntry, Session

# --------------------------------------------------------------------------------------------------- PyTorch
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


# the CPU features that make a precision native on the CPU (without them PyTorch emulates it, many times slower)
CPU_DTYPE_FEATURES = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


def cpu_dtype_problem(dtype: str, features: list[str] | None = None) -> str | None:
    """Why `dtype` would be emulated on this CPU (None when it is native, or fp32)."""
    from kdbench.core import env

    needed = CPU_DTYPE_FEATURES.get(dtype)
    if not needed:
        return None
    have = env.cpu_features() if features is None else features
    if any(f in have for f in needed):
        return None
    return (
        f"{dtype} on this CPU ({env.cpu_model()}) would be emulated, many times slower than fp32: it lacks "
        f"{' and '.join(f.upper().replace('_', '-') for f in needed)} (it has: {', '.join(have) or 'none of those'}); "
        "time fp32 and ONNX Runtime int8 here, or bf16 on a CPU with AMX or AVX512-BF16"
    )


@dataclass
class TorchSession:
    """PyTorch inference under `torch.inference_mode` (eager, or compiled when `engine` says so)."""

    model: object
    device: str
    dtype: str
    engine: str
    name: str = "torch"

    @property
    def attn_impl(self) -> str:  # the name results used before engines existed
        return self.engine

    def prepare(self, arrays: dict[str, np.ndarray]) -> dict:
        import torch

        return {
            k: torch.from_numpy(v).to(self.device) for k, v in arrays.items() if k in ("input_ids", "attention_mask")
        }

    def run(self, inputs: dict) -> None:
        import torch

        with torch.inference_mode():
            self.model(**inputs)

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def memory(self, inputs: dict) -> tuple[float | None, str]:
        """This model's weights (parameters and buffers) plus the peak its own call allocates on top: on CUDA from
        the allocator's peak statistics, on CPU from the allocations and frees the PyTorch profiler records."""
        weights = sum(t.numel() * t.element_size() for t in (*self.model.parameters(), *self.model.buffers()))
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            self.run(inputs)
            torch.cuda.synchronize()
            return (weights + torch.cuda.max_memory_allocated() - before) / 2**20, "weights+peak (cuda allocator)"
        return (weights + _cpu_activation_peak(lambda: self.run(inputs))) / 2**20, "weights+peak (torch profiler)"


@contextlib.contextmanager
def _stderr_silenced():
    """Silence file descriptor 2 (the profiler's C++ side prints start/stop lines there, past Python's sys.stderr)."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_activation_peak(call) -> int:
    """Peak bytes a CPU call allocates beyond what it started with: the profiler's allocations (at each operator's
    start) and frees (its [memory] events), summed in time order."""
    from torch.profiler import ProfilerActivity, profile

    with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = list(prof.events())
    timeline = [
        (e.time_range.start, e.self_cpu_memory_usage)
        for e in events
        if e.name != "[memory]" and e.self_cpu_memory_usage > 0
    ]
    timeline += [(e.time_range.start, e.cpu_memory_usage) for e in events if e.name == "[memory]"]
    running = peak = 0
    for _, delta in sorted(timeline, key=lambda x: x[0]):
        running += delta
        peak = max(peak, running)
    return peak


def _placed(model, device: str, dtype: str):
    """The model on `device` in `dtype`; a copy when that changes it (the fp32 CPU original serves other engines)."""
    import copy

    import torch

    torch_dtype = getattr(torch, TORCH_DTYPES[dtype])
    if device == "cpu" and dtype == "fp32":
        return model.eval()
    return copy.deepcopy(model).to(device=device, dtype=torch_dtype).eval()


class TorchBackend:
    """PyTorch eager: the reference every speed-up is measured against."""

    name = "torch"

    def check(self, device: str, dtype: str) -> None:
        if device == "cpu" and (problem := cpu_dtype_problem(dtype)):
            raise KdbenchError(problem)

    def skips(self, dtype: str) -> str | None:
        return None

    def open(self, entry: ModelEntry, load, device: str, dtype: str, threads: int, progress) -> dict[str, Session]:
        import torch

        from kdbench.zoo.modeling import attention_implementation

        torch.set_num_threads(threads)
        placed = _placed(load(), device, dtype)
        return {self.name: TorchSession(placed, device, dtype, attention_implementation(placed))}


RECOMPILE_LIMIT = 1024  # compiled graphs per forward function: a profile's models x grid points, with room to spare


def _fresh_compiler() -> None:
    """Every model of every family shares one forward function, and TorchDynamo keeps at most `recompile_limit` (8)
    compiled graphs per function, then runs the rest eagerly with only a log warning: a zoo profile (9 models and
    more, times its batch sizes) would time eager PyTorch under the torch-compile label. So the limit is raised, and
    hitting it is an error instead of a silent fallback. The reset drops earlier graphs (sessions opened before this
    one have not compiled yet: they compile on their first call), so each profile pays its own compiling."""
    import torch._dynamo

    torch._dynamo.reset()
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, RECOMPILE_LIMIT)
    config.fail_on_recompile_limit_hit = True


class CompiledBackend(TorchBackend):
    """torch.compile (inductor); on CUDA with mode="reduce-overhead", i.e. CUDA graphs, which remove the launch
    overhead that dominates small batches. The first calls compile; they are part of the warm-up."""

    name = "torch-compile"

    def check(self, device: str, dtype: str) -> None:
        super().check(device, dtype)
        if device == "cpu" and not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
            raise KdbenchError(
                "torch-compile on the CPU needs a C++ compiler (inductor builds its kernels); none found"
            )

    def open(self, entry: ModelEntry, load, device: str, dtype: str, threads: int, progress) -> dict[str, Session]:
        import torch

        from kdbench.zoo.modeling import attention_implementation

        torch.set_num_threads(threads)
        placed = _placed(load(), device, dtype)
        _fresh_compiler()
        mode = "reduce-overhead" if device == "cuda" else None
        progress(f"compiling {entry.name}", 0)
        compiled = torch.compile(placed, mode=mode, dynamic=False)
        engine = f"inductor{'+cudagraphs' if mode else ''}:{attention_implementation(placed)}"
        return {self.name: TorchSession(compiled, device, dtype, engine, self.name)}
