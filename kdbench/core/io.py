"""Atomic file writes: a reader sees the previous complete file or the new complete file, never half of one."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from kdbench.core.errors import KdbenchError


def check_writable(path: Path, option: str = "--output") -> None:
    """Fail early (before minutes of measuring) when the file `path` could not be written later."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    _check_creatable(parent, f"cannot write {path}", option)
    if path.is_dir():
        raise KdbenchError(f"cannot write {path}: it is a folder; pass {option} with a file name")


def check_folder_writable(folder: Path, option: str) -> None:
    """Fail early when `folder` (existing or to be created) could not hold the files a command writes."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise KdbenchError(f"{option} {folder} is a file, not a folder")
    _check_creatable(folder, f"cannot write into {folder}", option)


def _check_creatable(folder: Path, what: str, option: str) -> None:
    probe = folder
    while not probe.exists():  # the folder will be created; the first existing ancestor must accept it
        probe = probe.parent
    if not probe.is_dir():
        raise KdbenchError(f"{what}: {probe} is not a folder; pass {option} with a writable path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise KdbenchError(f"{what}: {probe} is not writable; pass {option} with a writable path")


def read_text(path: Path, what: str = "file") -> str:
    """A UTF-8 text file's content; a missing, unreadable or undecodable file is one line naming it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KdbenchError(f"no such {what}: {path}") from None
    except IsADirectoryError:
        raise KdbenchError(f"{what} {path} is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise KdbenchError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise KdbenchError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise KdbenchError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for the group too, as any new file
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise KdbenchError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None (JSON null): strict JSON any reader accepts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def atomic_write_json(path: Path, data: Any) -> None:
    """Serialise `data` as strict, indented JSON and write it atomically. A metric that is undefined (Pearson's r of
    a constant prediction is NaN) is written as null, never as the NaN that strict JSON readers refuse."""
    atomic_write_text(path, json.dumps(_finite(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file, turning missing files and bad JSON into one-line user errors."""
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise KdbenchError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None


def cache_root() -> Path:
    """Where exported ONNX files are cached: $KDBENCH_CACHE, else ~/.cache/kdbench."""
    return Path(os.environ.get("KDBENCH_CACHE", Path.home() / ".cache" / "kdbench"))
