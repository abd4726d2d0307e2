"""ONNX Runtime as an engine: sessions as a deployment opens them, on one variant of the exported graph (fp32, O2,
int8); a zoo model is exported (and its variants derived) once into the cache, a trained run brings its own files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdbench.core.errors import KdbenchError
from kdbench.engines.base import DEFAULT_OPSET, ModelEntry, Session, config_digest, onnx_cache_path

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
    from kdbench.core import ortbuild as ort_check

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
        from kdbench.core import ortbuild as ort

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
    from kdbench.engines.onnx import onnx_export, onnx_optimize, onnx_quantize

    fp32 = onnx_cache_path(entry.model_type, entry.shape.key(), config_digest(model.config))
    if not fp32.is_file():
        progress(f"exporting {entry.name} to ONNX", 0)
        cache_once(fp32, lambda dest: onnx_export(model, dest, DEFAULT_OPSET))
    if variant == "fp32":
        return fp32
    path = fp32.parent.with_name(f"{fp32.parent.name}-{variant}") / "model.onnx"
    if not path.is_file():
        progress(f"making the {variant} variant of {entry.name}", 0)
        if variant == "int8":
            cache_once(path, lambda dest: onnx_quantize(fp32.parent, dest))
        else:
            cache_once(path, lambda dest: onnx_optimize(fp32.parent, variant, dest))
    return path


def cache_once(path: Path, make) -> None:
    """Make a cache entry (a folder holding model.onnx) once, even with several processes asking at once."""
    from kdbench.results.run import exclusive, remove_stale_temp

    folder = path.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(folder.parent)  # what killed exports left behind
    with exclusive(folder.with_name(folder.name + ".lock"), str(folder), wait=True):
        if not path.is_file():
            make(folder)
