"""The engines by name: what `--backends` takes."""

from __future__ import annotations

from kdbench.core.names import lookup
from kdbench.engines.base import Backend
from kdbench.engines.onnxruntime import ORT_VARIANTS, OrtBackend
from kdbench.engines.pytorch import CompiledBackend, TorchBackend

BACKENDS: dict[str, Backend] = {
    "torch": TorchBackend(),
    "torch-compile": CompiledBackend(),
    **{b.name: b for b in (OrtBackend(v) for v in ORT_VARIANTS)},
}


def check_backend(name: str) -> Backend:
    """A backend by name (with a 'did you mean')."""
    return lookup("backend", name, BACKENDS)
