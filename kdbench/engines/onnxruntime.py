"""ONNX Runtime as an engine: sessions as a deployment opens them, on one variant of the exported graph (fp32, O2,
int8 on a CPU, fp16 on CUDA); a zoo model is exported (and its variants derived) once into the cache, a trained run
brings its own files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdbench.core.errors import KdbenchError
from kdbench.engines.base import DEFAULT_OPSET, ModelEntry, Session, config_digest, onnx_cache_path

# ---------------------------------------------------------------------------------------------- ONNX Runtime
# the exported graph, ORT's transformer optimisations, dynamic int8 (CPU), and fp16 (CUDA: the optimised graph in half)
ORT_VARIANTS = ("fp32", "O2", "int8", "fp16")


@dataclass
class OrtSession:
    """An onnxruntime.InferenceSession. On CPU it is fed numpy arrays, as a server would; on CUDA through IO binding:
    inputs copied to the device once and outputs left there, on torch's current stream, so a call's time is the
    engine's and not the copies' and CUDA events around it time ONNX Runtime's own kernels."""

    session: object
    device: str
    dtype: str
    onnx_path: Path
    provider: str
    name: str = "onnxruntime"
    iobinding: str | None = None  # the device IO binding keeps inputs and outputs on (None: numpy in and out)

    def __post_init__(self) -> None:
        if self.device == "cuda" and self.iobinding is None:
            self.iobinding = "cuda"

    @property
    def engine(self) -> str:
        return f"ort:{self.provider}" + ("+iobinding" if self.iobinding else "")

    attn_impl = engine

    def prepare(self, arrays: dict[str, np.ndarray]):
        wanted = [i.name for i in self.session.get_inputs()]
        batch, seq = arrays["input_ids"].shape
        feeds = {n: arrays[n] if n in arrays else np.zeros((batch, seq), dtype=np.int64) for n in wanted}
        if self.iobinding is None:
            return feeds
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, self.iobinding, 0))
        for out in self.session.get_outputs():
            binding.bind_output(out.name, self.iobinding, 0)
        return binding

    def run(self, inputs) -> None:
        if self.iobinding is not None:
            self.session.run_with_iobinding(inputs)
        else:
            self.session.run(None, inputs)

    def synchronize(self) -> None:
        """On CPU nothing to wait for (`run` returns with the outputs on the host); on CUDA the session runs on torch's
        current stream, so torch's synchronize waits for it."""
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def memory(self, inputs) -> tuple[float | None, str]:
        """The graph's size on disk (its weights: int8 shows its 4x saving); ONNX Runtime's activation arena is not
        attributable per session in one process, so it is not counted."""
        files = [self.onnx_path, *self.onnx_path.parent.glob("*.onnx_data"), *self.onnx_path.parent.glob("*.data")]
        return sum(f.stat().st_size for f in files if f.is_file()) / 2**20, "onnx file size (weights; no activations)"


def ort_session(path: Path, device: str, threads: int, dtype: str = "fp32") -> OrtSession:
    """An InferenceSession as a deployment would open one: ORT's own defaults (graph optimisations, intra-op thread
    spinning while a call runs), `threads` intra-op threads, and spinning stopped when a call returns - kdbench keeps
    several sessions open to interleave them, and an idle session's spinning threads would steal the cores of the
    one being timed. On CUDA the session must really run on the CUDA provider: ONNX Runtime falls back to the CPU
    when the CUDA libraries fail to load, and such a session is refused rather than timed under a CUDA label."""
    from kdbench.core import ortbuild as ort_check

    provider = ort_check.check(device)  # one build installed, with this device's provider
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=[_provider(provider)])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise KdbenchError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
    running = list(session.get_providers())
    if not running or running[0] != provider:
        raise KdbenchError(
            f"onnxruntime opened {path} on {', '.join(running) or 'no provider'}, not {provider}: the CUDA and cuDNN "
            "libraries onnxruntime-gpu needs did not load (`kdbench env` shows the versions; ORT's release notes name "
            "the ones it needs); nothing is timed under a CUDA label on the CPU"
        )
    return OrtSession(session, device, dtype, path, provider)


def _provider(name: str):
    """The provider with its options: on CUDA, torch's current stream (CUDA events then time ORT's kernels)."""
    if name != "CUDAExecutionProvider":
        return name
    import torch

    return (name, {"device_id": 0, "user_compute_stream": str(torch.cuda.current_stream().cuda_stream)})


class OrtBackend:
    """ONNX Runtime on one variant of the exported graph. A zoo model is exported once (and its O2, int8 and fp16
    variants derived once) into the cache; a trained run brings its own parity-checked files."""

    def __init__(self, variant: str = "fp32") -> None:
        self.variant = variant
        self.name = "onnxruntime" if variant == "fp32" else f"onnxruntime:{variant}"

    def check(self, device: str, dtype: str) -> None:
        from kdbench.core import ortbuild as ort

        if not runs_on(self.variant, device) and self.variant == "int8":
            raise KdbenchError(
                "onnxruntime:int8 is dynamic quantisation for CPUs: ONNX Runtime's CUDA provider runs its integer ops "
                "on the CPU, so its time would not be the GPU's; on cuda choose onnxruntime or onnxruntime:fp16"
            )
        if not runs_on(self.variant, device) and self.variant == "fp16":
            raise KdbenchError(
                "onnxruntime:fp16 is for --device cuda: ONNX Runtime's CPU provider has no fp16 kernels for most of "
                "the graph; on a CPU choose onnxruntime, onnxruntime:O2 or onnxruntime:int8"
            )
        ort.check(device)

    def skips(self, dtype: str) -> str | None:
        if dtype != "fp32":
            return f"ONNX Runtime's variants carry their own precision ({', '.join(ORT_VARIANTS)}); no {dtype} graph"
        return None

    def open(self, entry: ModelEntry, load, device: str, dtype: str, threads: int, progress) -> dict[str, Session]:
        if entry.variants:  # a trained run: its own checked files; plain `onnxruntime` times every one of them
            wanted = {v: f for v, f in entry.variants.items() if runs_on(v, device)} if self.variant == "fp32" else {}
            if self.variant in entry.variants:
                wanted = {**wanted, self.variant: entry.variants[self.variant]}
            files = {("onnxruntime" if v == "fp32" else f"onnxruntime:{v}"): p for v, p in wanted.items()}
        else:
            files = {self.name: zoo_variant(entry, load, self.variant, progress)}
        return {label: ort_session(path, device, threads) for label, path in files.items()}


def runs_on(variant: str, device: str) -> bool:
    """Whether a variant's time on `device` is that device's: int8's integer ops run on a CPU only, fp16 on CUDA."""
    return not (variant == "int8" and device == "cuda") and not (variant == "fp16" and device != "cuda")


def zoo_variant(entry: ModelEntry, load, variant: str, progress) -> Path:
    """The cached ONNX file of a zoo model's variant: exported (fp32) or derived from the fp32 export, once; the
    model is loaded (`load()`) only to export it."""
    from kdbench.engines.onnx import onnx_export, onnx_optimize, onnx_quantize

    fp32 = onnx_cache_path(entry.model_type, entry.shape.key(), config_digest(entry.config))
    if not fp32.is_file():
        progress(f"exporting {entry.name} to ONNX", 0)
        cache_once(fp32, lambda dest: onnx_export(load(), dest, DEFAULT_OPSET))
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
