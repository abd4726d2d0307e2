"""Which ONNX Runtime is installed, and whether it can do what was asked, checked before any ONNX Runtime work.

onnxruntime (CPU) and onnxruntime-gpu (CUDA) are separate distributions that install the same `onnxruntime` module
into the same folder: with both installed, whichever was written last wins, and a CUDA user silently gets the CPU
build. kdbench installs exactly one (the `cpu` or `gpu` extra) and refuses the mixed state, and a CUDA request without
the CUDA provider, in one line that says what to install or uninstall.
"""

from __future__ import annotations

from importlib import metadata

from kdbench.core.errors import KdbenchError

# every distribution that ships the `onnxruntime` module (the usual two, and the vendor builds)
DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-silicon",
)


PROVIDER = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def installed() -> dict[str, str]:
    """The ONNX Runtime distributions installed here, with their versions."""
    out = {}
    for name in DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def owners() -> list[str]:
    """The installed distributions whose files hold the `onnxruntime` module Python imports: one, unless two builds
    were installed into the same folder ([] when none imports). Nothing is imported to find out."""
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("onnxruntime")
    if spec is None or not spec.origin:
        return []
    origin = Path(spec.origin).resolve()
    out = []
    for name in installed():
        try:
            path = Path(str(metadata.distribution(name).locate_file("onnxruntime/__init__.py"))).resolve()
        except metadata.PackageNotFoundError:
            continue
        if path == origin:
            out.append(name)
    return out


def providers() -> list[str]:
    """The execution providers the importable onnxruntime module offers ([] when it cannot be imported)."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def check(device: str = "cpu") -> str:
    """Fail in one line unless exactly one ONNX Runtime is installed and it has `device`'s provider; return the
    provider to use."""
    found = installed()
    if not found:
        raise KdbenchError(
            "ONNX Runtime is not installed: pip install 'kdbench[cpu]' (or 'kdbench[gpu]' on a CUDA machine; "
            'in a source checkout: pip install -e ".[cpu]")'
        )
    imported = owners()
    if len(found) > 1 and len(imported) == 1:
        # each build in its own folder (a --target install ahead of the system's on the path): which one imports is
        # decided by the path, not by which wrote last - the one that imports is the one checked and used
        found = {imported[0]: found[imported[0]]}
    if len(found) > 1:
        names = ", ".join(f"{k} {v}" for k, v in found.items())
        keep = "onnxruntime-gpu" if device == "cuda" or "onnxruntime-gpu" in found else "onnxruntime"
        raise KdbenchError(
            f"{len(found)} ONNX Runtime builds are installed ({names}); they overwrite each other's files, so which "
            f"one runs is an accident. Keep one: pip uninstall -y {' '.join(found)} && pip install {keep}"
        )
    provider = PROVIDER[device]
    if provider not in providers():
        ((name, version),) = found.items()
        if device == "cuda" and name != "onnxruntime-gpu":
            raise KdbenchError(
                f"--device cuda needs ONNX Runtime's CUDA build, but {name} {version} is installed: "
                f"pip uninstall -y {name} && pip install 'kdbench[gpu]' (onnxruntime-gpu)"
            )
        raise KdbenchError(
            f"{name} {version} offers no {provider} here (available: {', '.join(providers()) or 'none'}); for CUDA "
            "it needs the CUDA and cuDNN libraries its release notes name"
        )
    return provider


def describe() -> dict:
    """What a bug report needs about ONNX Runtime: the installed distributions and the providers they offer."""
    return {"distributions": installed(), "imported": owners(), "providers": providers()}
