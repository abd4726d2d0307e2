"""The environment every result embeds: machine, accelerator, library versions and the code's git commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

LIBRARIES = ("torch", "transformers", "accelerate", "datasets", "onnx", "onnxruntime", "onnxruntime-gpu", "numpy")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_model() -> str:
    """The CPU's model name."""
    return _cpu_model()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    if os.environ.get("KDBENCH_GIT_COMMIT"):  # said by the caller: a copied tree's .git may be stale or missing
        return os.environ["KDBENCH_GIT_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _gpu() -> dict:
    try:
        import torch
    except ImportError:
        return {"available": False}
    if not torch.cuda.is_available():
        return {"available": False}
    info = {
        "available": True,
        "name": torch.cuda.get_device_name(0),
        "cuda": torch.version.cuda,
        "count": torch.cuda.device_count(),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
        "cudnn": torch.backends.cudnn.version(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,  # False: fp32 cells are true fp32, not TF32
    }
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    return info


CPU_FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "avx_vnni",
    "asimd",
    "sve",
)  # what decides whether bf16 and int8 are fast on this CPU (x86 flags, and Arm's)


def cpu_features() -> list[str]:
    """The instruction-set features above that this CPU reports (Linux /proc/cpuinfo flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[1].split())
    return [f for f in CPU_FEATURES if f in flags]


def _torch_build() -> dict:
    try:
        import torch
    except ImportError:
        return {}
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"cuda": torch.version.cuda, "cudnn": cudnn, "cpu_capability": _cpu_capability(torch)}


def _cpu_capability(torch) -> str | None:
    try:
        return torch.backends.cpu.get_cpu_capability()  # e.g. AVX512, AVX2: the kernels torch dispatches to
    except AttributeError:
        return None


def _onnxruntime() -> dict:
    from kdbench.core import ortbuild as ort

    return ort.describe()


def collect(threads: int | None = None) -> dict:
    """A JSON-ready description of where and with what a measurement ran; `threads` defaults to PyTorch's intra-op
    threads when PyTorch is loaded (a training's arithmetic, and so its exact result, depends on them)."""
    if threads is None and "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_features": cpu_features(),
        "cores": os.cpu_count(),
        "threads": threads,
        "gpu": _gpu(),
        "versions": {name: v for name in LIBRARIES if (v := _version(name))},
        "torch_build": _torch_build(),
        "onnxruntime": _onnxruntime(),
        "kdbench": _version("kdbench"),
        "git_commit": _git_commit(),
    }


DEVICES = ("cpu", "cuda")


def check_device(device: str) -> None:
    """Fail with one clear line for an unknown device, or CUDA asked for where PyTorch sees none."""
    from kdbench.core.errors import KdbenchError
    from kdbench.core.names import check_choice

    check_choice("device", device, DEVICES)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise KdbenchError("--device cuda: no CUDA device is visible to PyTorch here; use --device cpu")
