"""Inference backends: PyTorch eager and ONNX Runtime. Each turns a built model into something the profiler can call.

A backend session exposes `run(inputs)`, `synchronize()` and memory figures; it knows nothing about clocks
(see kdbench.clock). Heavy libraries are imported when a session is created.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdbench.errors import KdbenchError
from kdbench.registry import lookup

DTYPES = ("fp32", "fp16", "bf16")
DEFAULT_OPSET = 18  # optimum's recommended minimum for BERT-family encoders


def cache_root() -> Path:
    """Where exported ONNX files are cached: $KDBENCH_CACHE, else ~/.cache/kdbench."""
    return Path(os.environ.get("KDBENCH_CACHE", Path.home() / ".cache" / "kdbench"))


def _process_peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the process high-water mark, not this cell's alone
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class TorchSession:
    """PyTorch eager inference under `torch.inference_mode`."""

    model: object
    device: str
    dtype: str
    attn_impl: str
    name: str = "torch"

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

    _baseline: int = 0

    def reset_peak_memory(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._baseline = torch.cuda.memory_allocated()

    def peak_memory(self) -> tuple[float, str]:
        """(MiB, what was measured). On CUDA: this model's weights plus the peak its calls allocated on top of what
        was resident before (other models stay resident while the grid is measured)."""
        if self.device == "cuda":
            import torch

            weights = sum(p.numel() * p.element_size() for p in self.model.parameters())
            extra = torch.cuda.max_memory_allocated() - self._baseline
            return (weights + extra) / 2**20, "cuda_weights_plus_peak_activations"
        return _process_peak_rss_mb(), "process_peak_rss"


def open_torch(model, device: str, dtype: str, threads: int, **_) -> TorchSession:
    """Move the model to the device and dtype; set the intra-op thread count."""
    import torch

    from kdbench.modeling import attention_implementation

    torch.set_num_threads(threads)
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    model = model.to(device=device, dtype=torch_dtype).eval()
    return TorchSession(model, device, dtype, attention_implementation(model))


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
    def attn_impl(self) -> str:
        return f"ort:{self.provider}"

    def prepare(self, arrays: dict[str, np.ndarray]) -> dict:
        wanted = [i.name for i in self.session.get_inputs()]
        batch, seq = arrays["input_ids"].shape
        return {n: arrays[n] if n in arrays else np.zeros((batch, seq), dtype=np.int64) for n in wanted}

    def run(self, inputs: dict) -> None:
        self.session.run(None, inputs)

    def synchronize(self) -> None:
        """Nothing to wait for: `InferenceSession.run` returns only when the outputs are on the host."""

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory(self) -> tuple[float, str]:
        return _process_peak_rss_mb(), "process_peak_rss"


def config_digest(config) -> str:
    """What else shapes the graph besides the sizes: vocabulary, positions, labels, activation..."""
    return hashlib.sha1(config.to_json_string(use_diff=False).encode()).hexdigest()[:10]


def onnx_cache_path(model_type: str, arch_key: str, digest: str = "", opset: int = DEFAULT_OPSET) -> Path:
    """The cached model.onnx for an architecture and config (its weights do not change its speed)."""
    digest = hashlib.sha1(f"{model_type}|{arch_key}|{digest}|{opset}".encode()).hexdigest()[:10]
    return cache_root() / "onnx" / f"{model_type}-{arch_key}-op{opset}-{digest}" / "model.onnx"


@contextlib.contextmanager
def _quiet_export():
    """Silence the tracer and exporter chatter that would scroll over the progress display."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    loggers = [logging.getLogger(n) for n in ("optimum", "transformers")]
    levels = [lg.level for lg in loggers]
    hf_level = hf_logging.get_verbosity()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        hf_logging.set_verbosity_error()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        hf_logging.set_verbosity(hf_level)


def export_onnx(model, dest: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export a sequence-classification model with optimum (dynamic batch and sequence axes) into `dest`'s folder.

    Exports into a temporary folder first and renames it, so a killed export never leaves a half-written cache.
    """
    try:
        from optimum.exporters.onnx import onnx_export_from_model
    except ImportError:
        raise KdbenchError(
            "the onnxruntime backend exports with optimum: pip install 'optimum-onnx>=0.1,<0.2'"
        ) from None
    from kdbench.run import TMP_PREFIX, exclusive, remove_stale_temp

    folder = dest.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(folder.parent)  # what killed exports left behind
    with exclusive(folder.with_name(folder.name + ".lock"), str(folder), wait=True):
        if dest.is_file():  # another process exported it while this one waited
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-{folder.name}-", dir=folder.parent))
        try:
            with _quiet_export():
                onnx_export_from_model(
                    model.float().cpu(), output=tmp, task="text-classification", opset=opset, do_validation=False
                )
            if folder.exists():
                shutil.rmtree(folder)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def open_onnxruntime(model, device: str, dtype: str, threads: int, onnx_path: Path | None = None, **_) -> OrtSession:
    """Create an InferenceSession on the CPU or CUDA execution provider, exporting `model` first if needed."""
    if dtype != "fp32":
        raise KdbenchError(f"the onnxruntime backend profiles fp32 models only, not {dtype}")
    from kdbench import ort as ort_check

    provider = ort_check.check(device)  # one build installed, with this device's provider
    import onnxruntime as ort

    assert onnx_path is not None, "the profiler passes the ONNX path"
    if not onnx_path.is_file():
        export_onnx(model, onnx_path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # Idle intra-op threads must not spin: kdbench keeps one session per model open, and spinning pools of idle
    # sessions steal the cores from the one being timed.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise KdbenchError(f"onnxruntime cannot load {onnx_path}: {str(exc).splitlines()[0]}") from None
    return OrtSession(session, device, dtype, onnx_path, provider)


BACKENDS = {"torch": open_torch, "onnxruntime": open_onnxruntime}


def check_backend(name: str) -> str:
    """Validate a backend name (with a 'did you mean')."""
    lookup("backend", name, BACKENDS)
    return name


def open_session(backend: str, model, device: str, dtype: str, threads: int, onnx_path: Path | None = None):
    """Open a session of the named backend."""
    return lookup("backend", backend, BACKENDS)(model, device=device, dtype=dtype, threads=threads, onnx_path=onnx_path)
