"""Atomic file writes: a reader sees the previous complete file or the new complete file, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from kdbench.errors import KdbenchError


def check_writable(path: Path) -> None:
    """Fail early (before minutes of measuring) when `path` could not be written later."""
    parent = path.parent if str(path.parent) else Path(".")
    probe = parent
    while not probe.exists():  # the folder will be created; the first existing ancestor must accept it
        probe = probe.parent
    if not probe.is_dir():
        raise KdbenchError(f"cannot write {path}: {probe} is not a folder; pass --output with a writable path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise KdbenchError(f"cannot write {path}: {probe} is not writable; pass --output with a writable path")
    if path.is_dir():
        raise KdbenchError(f"cannot write {path}: it is a folder; pass --output with a file name")


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
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise KdbenchError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """Serialise `data` as indented JSON and write it atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file, turning missing files and bad JSON into one-line user errors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KdbenchError(f"no such file: {path}") from None
    except OSError as exc:
        raise KdbenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise KdbenchError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
