"""Inference backends behind one small interface: PyTorch eager, torch.compile, and ONNX Runtime (fp32, O2, int8).

A Backend says which precisions it runs and opens Sessions; a Session exposes `prepare`, `run`, `synchronize` and
`memory` and knows nothing about clocks (see kdbench.clock). The profiler never asks which backend it holds. Heavy
libraries are imported when a session is created.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from kdbench.errors import KdbenchError
from kdbench.registry import lookup

DTYPES = ("fp32", "fp16", "bf16")
DEFAULT_OPSET = 18  # optimum's recommended minimum for BERT-family encoders


def cache_root() -> Path:
    """Where exported ONNX files are cached: $KDBENCH_CACHE, else ~/.cache/kdbench."""
    return Path(os.environ.get("KDBENCH_CACHE", Path.home() / ".cache" / "kdbench"))


# ------------------------------------------------------------------------------------------------ what is timed
@dataclass(frozen=True)
class ModelEntry:
    """A model the profiler times: a zoo shape (random weights) or a trained run's student or teacher."""

    name: str
    shape: object  # StudentShape
    model_type: str
    variants: dict = field(default_factory=dict)  # a trained run's parity-checked ONNX files by variant


class Session(Protocol):
    """One model, ready to be timed: the profiler calls prepare once per grid point, then run and synchronize."""

    engine: str  # what runs it: the attention implementation, "inductor", or "ort:<provider>"

    def prepare(self, arrays: dict[str, np.ndarray]) -> object: ...

    def run(self, inputs: object) -> None: ...

    def synchronize(self) -> None: ...

    def memory(self, inputs: object) -> tuple[float | None, str]:
        """(MiB, how it was measured) for this model at this grid point."""
        ...


class Backend(Protocol):
    """An inference engine: which precisions it runs, and sessions for a model (one per variant label)."""

    name: str

    def check(self, device: str, dtype: str) -> None:
        """Fail in one line when this machine cannot run `dtype` on `device` with this engine."""
        ...

    def skips(self, dtype: str) -> str | None:
        """Why this engine has no `dtype` cells by design (None: it has)."""
        ...

    def open(self, entry: ModelEntry, model, device: str, dtype: str, threads: int, progress) -> dict[str, Session]: ...


# --------------------------------------------------------------------------------------------------- PyTorch
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# the CPU features that make a precision native on the CPU (without them PyTorch emulates it, many times slower)
CPU_DTYPE_FEATURES = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


def cpu_dtype_problem(dtype: str, features: list[str] | None = None) -> str | None:
    """Why `dtype` would be emulated on this CPU (None when it is native, or fp32)."""
    from kdbench import env

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

    def open(self, entry: ModelEntry, model, device: str, dtype: str, threads: int, progress) -> dict[str, Session]:
        import torch

        from kdbench.modeling import attention_implementation

        torch.set_num_threads(threads)
        placed = _placed(model, device, dtype)
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

    def open(self, entry: ModelEntry, model, device: str, dtype: str, threads: int, progress) -> dict[str, Session]:
        import torch

        from kdbench.modeling import attention_implementation

        torch.set_num_threads(threads)
        placed = _placed(model, device, dtype)
        _fresh_compiler()
        mode = "reduce-overhead" if device == "cuda" else None
        progress(f"compiling {entry.name}", 0)
        compiled = torch.compile(placed, mode=mode, dynamic=False)
        engine = f"inductor{'+cudagraphs' if mode else ''}:{attention_implementation(placed)}"
        return {self.name: TorchSession(compiled, device, dtype, engine, self.name)}


# ---------------------------------------------------------------------------------------------- ONNX Runtime
ORT_VARIANTS = ("fp32", "O2", "int8")  # the exported graph, ORT's transformer optimisations, dynamic int8


@dataclass
class OrtSession:
    """An onnxruntime.InferenceSession fed with numpy arrays (inputs copied to the device on every run, as a server
    would)."""

    session: object
    device: str
    dtype: str
    onnx_path: Path
    provider: str
    name: str = "onnxruntime"

    @property
    def engine(self) -> str:
        return f"ort:{self.provider}"

    attn_impl = engine

    def prepare(self, arrays: dict[str, np.ndarray]) -> dict:
        wanted = [i.name for i in self.session.get_inputs()]
        batch, seq = arrays["input_ids"].shape
        return {n: arrays[n] if n in arrays else np.zeros((batch, seq), dtype=np.int64) for n in wanted}

    def run(self, inputs: dict) -> None:
        self.session.run(None, inputs)

    def synchronize(self) -> None:
        """Nothing to wait for: `InferenceSession.run` returns only when the outputs are on the host."""

    def memory(self, inputs: dict) -> tuple[float | None, str]:
        """The graph's size on disk (its weights: int8 shows its 4x saving); ONNX Runtime's activation arena is not
        attributable per session in one process, so it is not counted."""
        files = [self.onnx_path, *self.onnx_path.parent.glob("*.onnx_data"), *self.onnx_path.parent.glob("*.data")]
        return sum(f.stat().st_size for f in files if f.is_file()) / 2**20, "onnx file size (weights; no activations)"


def ort_session(path: Path, device: str, threads: int, dtype: str = "fp32") -> OrtSession:
    """An InferenceSession as a deployment would open one: ORT's own defaults (graph optimisations, intra-op thread
    spinning while a call runs), `threads` intra-op threads, and spinning stopped when a call returns - kdbench keeps
    several sessions open to interleave them, and an idle session's spinning threads would steal the cores of the
    one being timed."""
    from kdbench import ort as ort_check

    provider = ort_check.check(device)  # one build installed, with this device's provider
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise KdbenchError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
    return OrtSession(session, device, dtype, path, provider)


class OrtBackend:
    """ONNX Runtime on one variant of the exported graph. A zoo model is exported once (and its O2 and int8 variants
    derived once) into the cache; a trained run brings its own parity-checked files."""

    def __init__(self, variant: str = "fp32") -> None:
        self.variant = variant
        self.name = "onnxruntime" if variant == "fp32" else f"onnxruntime:{variant}"

    def check(self, device: str, dtype: str) -> None:
        from kdbench import ort

        ort.check(device)

    def skips(self, dtype: str) -> str | None:
        if dtype != "fp32":
            return f"ONNX Runtime's variants carry their own precision ({', '.join(ORT_VARIANTS)}); no {dtype} graph"
        return None

    def open(self, entry: ModelEntry, model, device: str, dtype: str, threads: int, progress) -> dict[str, Session]:
        if entry.variants:  # a trained run: its own checked files; plain `onnxruntime` times every one of them
            wanted = entry.variants if self.variant == "fp32" else {}
            if self.variant in entry.variants:
                wanted = {**wanted, self.variant: entry.variants[self.variant]}
            files = {("onnxruntime" if v == "fp32" else f"onnxruntime:{v}"): p for v, p in wanted.items()}
        else:
            files = {self.name: zoo_variant(entry, model, self.variant, progress)}
        return {label: ort_session(path, device, threads) for label, path in files.items()}


def zoo_variant(entry: ModelEntry, model, variant: str, progress) -> Path:
    """The cached ONNX file of a zoo model's variant: exported (fp32) or derived from the fp32 export, once."""
    from kdbench.export import onnx_export, onnx_optimize, onnx_quantize

    fp32 = onnx_cache_path(entry.model_type, entry.shape.key(), config_digest(model.config))
    if not fp32.is_file():
        progress(f"exporting {entry.name} to ONNX", 0)
        _cached(fp32, lambda dest: onnx_export(model, dest, DEFAULT_OPSET))
    if variant == "fp32":
        return fp32
    path = fp32.parent.with_name(f"{fp32.parent.name}-{variant}") / "model.onnx"
    if not path.is_file():
        progress(f"making the {variant} variant of {entry.name}", 0)
        if variant == "int8":
            _cached(path, lambda dest: onnx_quantize(fp32.parent, dest))
        else:
            _cached(path, lambda dest: onnx_optimize(fp32.parent, variant, dest))
    return path


def _cached(path: Path, make) -> None:
    """Make a cache entry (a folder holding model.onnx) once, even with several processes asking at once."""
    from kdbench.run import exclusive, remove_stale_temp

    folder = path.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(folder.parent)  # what killed exports left behind
    with exclusive(folder.with_name(folder.name + ".lock"), str(folder), wait=True):
        if not path.is_file():
            make(folder)


BACKENDS: dict[str, Backend] = {
    "torch": TorchBackend(),
    "torch-compile": CompiledBackend(),
    **{b.name: b for b in (OrtBackend(v) for v in ORT_VARIANTS)},
}


def config_digest(config) -> str:
    """What else shapes the graph besides the sizes: vocabulary, positions, labels, activation..."""
    return hashlib.sha1(config.to_json_string(use_diff=False).encode()).hexdigest()[:10]


def onnx_cache_path(model_type: str, arch_key: str, digest: str = "", opset: int = DEFAULT_OPSET) -> Path:
    """The cached model.onnx for an architecture and config (its weights do not change its speed)."""
    digest = hashlib.sha1(f"{model_type}|{arch_key}|{digest}|{opset}".encode()).hexdigest()[:10]
    return cache_root() / "onnx" / f"{model_type}-{arch_key}-op{opset}-{digest}" / "model.onnx"


def check_backend(name: str) -> Backend:
    """A backend by name (with a 'did you mean')."""
    return lookup("backend", name, BACKENDS)
