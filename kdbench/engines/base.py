"""What every inference engine offers the profiler: a Backend that opens Sessions (`prepare`, `run`,
`synchronize`, `memory`) for a ModelEntry. Sessions know nothing about clocks (kdbench.measure.clock does); heavy
libraries are imported when a session is created."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from kdbench.core.io import cache_root

DTYPES = ("fp32", "fp16", "bf16")
DEFAULT_OPSET = 18  # optimum's recommended minimum for BERT-family encoders


# ------------------------------------------------------------------------------------------------ what is timed
@dataclass(frozen=True)
class ModelEntry:
    """A model the profiler times: a zoo shape (random weights) or a trained run's student or teacher."""

    name: str
    shape: object  # StudentShape
    model_type: str
    variants: dict = field(default_factory=dict)  # a trained run's parity-checked ONNX files by variant
    config: object = None  # a zoo shape's transformers config: what an engine's cache is keyed on (None: a run's)


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

    def open(self, entry: ModelEntry, load, device: str, dtype: str, threads: int, progress) -> dict[str, Session]:
        """Sessions for one model, by label. `load()` builds or loads the PyTorch model: an engine that finds what it
        needs in its cache never calls it (so a profile on ONNX Runtime builds no eager model it does not time)."""
        ...


def config_digest(config) -> str:
    """What else shapes the graph besides the sizes: vocabulary, positions, labels, activation..."""
    return hashlib.sha1(config.to_json_string(use_diff=False).encode()).hexdigest()[:10]


def onnx_cache_path(model_type: str, arch_key: str, digest: str = "", opset: int = DEFAULT_OPSET) -> Path:
    """The cached model.onnx for an architecture and config (its weights do not change its speed)."""
    digest = hashlib.sha1(f"{model_type}|{arch_key}|{digest}|{opset}".encode()).hexdigest()[:10]
    return cache_root() / "onnx" / f"{model_type}-{arch_key}-op{opset}-{digest}" / "model.onnx"
