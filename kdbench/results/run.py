"""The run folder's one owner: its layout, its state, typed readers, the writer's lock, and every write into it.

A run folder, as `kdbench distill`, `export` and `evaluate` fill it:

    config.json                   the recipe, written when training starts (schema kdbench.run)
    predictions.json              per evaluation example: the label, the student's and the teacher's answer
    checkpoints/checkpoint-N/     Trainer checkpoints while it trains (removed once it has finished)
    student/                      the distilled student (save_pretrained)
    metrics.json                  written last by distill: its presence marks a finished run
    onnx/<variant>/model.onnx     exported variants (fp32, O1-O3, int8)
    onnx/parity.json              per variant: the file's sha256 and opset, and its agreement with PyTorch
    eval/<backend>-<variant>.json the task's metrics on a backend
    .kdbench.lock                 held by the one process writing into the run

Other modules never spell these paths: they ask a `Run`. A command checks everything it was given, then takes the
run's lock (`Run.writing`), and only then creates, replaces or deletes anything in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kdbench.core.errors import KdbenchError
from kdbench.core.io import atomic_write_json, read_json

SCHEMA = "kdbench.run"
PREDICTIONS_SCHEMA = "kdbench.predictions"  # predictions.json (kdbench.engines.inference writes it)
LOCK = ".kdbench.lock"
TMP_PREFIX = ".kdbench-tmp-"  # + pid + "-": temporary folders of a writer; a dead writer's are removed later
ABSENT = "absent"  # no folder, or an empty one: a new run may start there
STARTED = "started"  # config.json only: killed before its first checkpoint (nothing to resume)
INTERRUPTED = "interrupted"  # config.json and a checkpoint, no metrics.json: --resume continues it
FINISHED = "finished"  # metrics.json: the user's data; replaced only with --overwrite
FOREIGN = "foreign"  # a non-empty folder that kdbench did not write: never replaced


@dataclass(frozen=True)
class Run:
    """A run folder (which may not exist yet)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # ------------------------------------------------------------------------------------------------- layout
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def student_dir(self) -> Path:
        return self.path / "student"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def onnx_dir(self) -> Path:
        return self.path / "onnx"

    @property
    def parity_file(self) -> Path:
        return self.onnx_dir / "parity.json"

    @property
    def predictions_file(self) -> Path:
        return self.path / "predictions.json"

    def eval_file(self, backend: str, variant: str) -> Path:
        return self.path / "eval" / f"{backend}-{variant}.json"

    def variant_dir(self, variant: str) -> Path:
        return self.onnx_dir / variant

    # -------------------------------------------------------------------------------------------------- state
    def state(self) -> str:
        """absent, started, interrupted, finished or foreign (see the module's constants)."""
        if not self.path.exists():
            return ABSENT
        if not self.path.is_dir():
            raise KdbenchError(f"{self.path} is a file, not a run folder")
        entries = [p.name for p in self.path.iterdir() if p.name != LOCK]
        if not entries:
            return ABSENT
        if not self._is_kdbench_config():
            return FOREIGN
        if self.metrics_file.is_file():
            return FINISHED
        return INTERRUPTED if self.last_checkpoint() else STARTED

    def _is_kdbench_config(self) -> bool:
        if not self.config_file.is_file():
            return False
        try:
            doc = read_json(self.config_file)
        except KdbenchError:
            return False
        # runs written before the schema field carry task, student and train all the same
        return isinstance(doc, dict) and (doc.get("schema") == SCHEMA or {"task", "student", "train"} <= doc.keys())

    def last_checkpoint(self) -> str | None:
        """The newest complete Trainer checkpoint, or None. A kill while the Trainer was writing a checkpoint leaves
        one without its trainer_state.json (written last): it is skipped for the one before."""
        return last_checkpoint(self.checkpoints_dir)

    # ------------------------------------------------------------------------------------------------ readers
    def config(self) -> dict:
        """The recorded recipe of a kdbench run; anything else is refused in one line."""
        if not self._is_kdbench_config():
            raise KdbenchError(f"{self.path} is not a kdbench run folder (no config.json written by `kdbench distill`)")
        return read_json(self.config_file)

    def finished_config(self) -> dict:
        """The recipe of a finished run whose student is on disk (what export, evaluate and profile need)."""
        state = self.state()
        if state != FINISHED:
            what = {ABSENT: "does not exist or is empty", FOREIGN: "is not a kdbench run folder"}.get(
                state, f"holds an unfinished run ({state}); finish it with `kdbench distill --resume`"
            )
            raise KdbenchError(f"{self.path} {what}")
        if not (self.student_dir / "config.json").is_file() or not any(self.student_dir.glob("*.safetensors")):
            raise KdbenchError(f"{self.path} has no student model (student/ with config.json and weights)")
        return self.config()

    def metrics(self) -> dict:
        doc = read_json(self.metrics_file)
        if not isinstance(doc, dict) or doc.get("schema") != "kdbench.distill":
            raise KdbenchError(f"{self.metrics_file} is not a kdbench metrics file")
        return doc

    def parity(self) -> dict[str, dict]:
        """The parity report, each entry checked to name its file ({} before the first export)."""
        if not self.parity_file.is_file():
            return {}
        doc = read_json(self.parity_file)
        if not isinstance(doc, dict):
            raise KdbenchError(f"{self.parity_file} is not a parity report (a JSON object of variants)")
        for variant, entry in doc.items():
            missing = [k for k in ("path", "passed") if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise KdbenchError(
                    f"{self.parity_file}: entry {variant!r} lacks {', '.join(missing)}; run `kdbench export` again"
                )
        return doc

    def variant_file(self, variant: str, force: bool = False) -> Path:
        """The ONNX file of an exported variant, refused when its parity failed (unless forced) or when the file is
        no longer the one its parity check measured (changed, or an export was interrupted)."""
        report = self.parity()
        if variant not in report:
            exported = ", ".join(report) or "none"
            raise KdbenchError(
                f"{self.path} has no exported {variant!r} variant (exported: {exported}); run "
                f"`kdbench export {self.path}` first"
            )
        entry = report[variant]
        if not entry["passed"] and not force:
            goal = entry.get("goal") or {}
            raise KdbenchError(
                f"{self.path}: the {variant} export failed its parity check (argmax agreement "
                f"{entry.get('argmax_agreement', 0):.2%}, largest |logit diff| {entry.get('max_abs_diff', 0):.2e}; "
                f"goal {goal.get('agreement', '?')} and {goal.get('max_abs_diff') or 'any'}); pass --force to use it"
            )
        path = self.path / entry["path"]
        if not path.is_file():
            raise KdbenchError(f"{path} is missing; run `kdbench export {self.path}` again")
        if entry.get("sha256") != file_sha256(path):
            raise KdbenchError(
                f"{path} is not the file its parity check measured (changed since, or an export was interrupted); "
                f"run `kdbench export {self.path}` again"
            )
        return path

    def variants(self, force: bool = False) -> dict[str, Path]:
        """Every exported variant whose parity passed (all with `force`), each file checked against its hash."""
        return {v: self.variant_file(v, force) for v, e in self.parity().items() if e["passed"] or force}

    def predictions(self) -> dict | None:
        """Per-example answers of the student and the teacher on the evaluation split (None for older runs)."""
        if not self.predictions_file.is_file():
            return None
        doc = read_json(self.predictions_file)
        if not isinstance(doc, dict) or doc.get("schema") != PREDICTIONS_SCHEMA or "splits" not in doc:
            raise KdbenchError(f"{self.predictions_file} is not a kdbench predictions file")
        return doc

    def evaluation(self, backend: str, variant: str) -> dict | None:
        path = self.eval_file(backend, variant)
        return read_json(path) if path.is_file() else None

    def evaluations(self) -> list[dict]:
        return [read_json(e) for e in sorted((self.path / "eval").glob("*.json"))]

    # ------------------------------------------------------------------------------------------------- writes
    @contextlib.contextmanager
    def writing(self) -> Iterator[Run]:
        """Hold the run's lock while writing into it; a second writer is refused in one line naming the holder.
        Temporary folders that a killed writer left behind are removed first."""
        self.path.mkdir(parents=True, exist_ok=True)
        with exclusive(self.path / LOCK, str(self.path)):
            remove_stale_temp(self.path)
            remove_stale_temp(self.onnx_dir)
            yield self

    def clear(self) -> None:
        """Empty a kdbench run folder for --overwrite (the caller holds the lock, which stays)."""
        state = self.state()
        assert state != FOREIGN, "callers refuse to overwrite a folder kdbench did not write"
        for p in self.path.iterdir():
            if p.name == LOCK:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()

    def write_config(self, doc: dict) -> None:
        atomic_write_json(self.config_file, {"schema": SCHEMA, "schema_version": 1, **doc})

    def write_metrics(self, doc: dict) -> None:
        atomic_write_json(self.metrics_file, doc)

    def write_predictions(self, doc: dict) -> None:
        atomic_write_json(self.predictions_file, doc)

    def write_parity(self, doc: dict) -> None:
        atomic_write_json(self.parity_file, doc)

    def write_evaluation(self, backend: str, variant: str, doc: dict) -> None:
        atomic_write_json(self.eval_file(backend, variant), doc)

    def temp_dir(self, parent: Path, label: str) -> Path:
        """A temporary folder beside its destination, named so a later writer can tell a dead writer's leftovers."""
        import tempfile

        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-{label}-", dir=parent))


def find_runs(folder: Path) -> list[Run]:
    """Every finished run under `folder` (the folder itself included), in path order."""
    folder = Path(folder)
    return [Run(m.parent) for m in sorted(folder.rglob("metrics.json")) if Run(m.parent).state() == FINISHED]


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete Trainer checkpoint folder under `folder`, or None."""
    found = sorted(
        (p for p in Path(folder).glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
        key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1,
    )
    return str(found[-1]) if found else None


def remove_partial_checkpoints(folder: Path) -> list[Path]:
    """Remove the checkpoint folders a kill left half-written (no trainer_state.json: the Trainer writes it last), so
    that only complete checkpoints stay beside a training that continues; return them. The writer's lock is held."""
    removed = [p for p in Path(folder).glob("checkpoint-*") if p.is_dir() and not (p / "trainer_state.json").is_file()]
    for p in removed:
        shutil.rmtree(p)
    return removed


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def exclusive(lock_file: Path, what: str, wait: bool = False, log=None) -> Iterator[None]:
    """An exclusive lock on `lock_file` (flock: released by the kernel when the process dies, so a killed writer
    never leaves a stale lock). The holder's pid is written into the file for the refusal message; with `wait` a
    second process waits for the first instead of failing (saying so through `log`)."""
    import fcntl

    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        if wait:
            if log:
                log(f"waiting for kdbench process {holder}, which is writing {what}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            os.close(fd)
            raise KdbenchError(
                f"{what} is being written by another kdbench process (pid {holder}); wait for it to finish, "
                "or choose another folder"
            ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp(folder: Path, now: float | None = None) -> list[Path]:
    """Remove the temporary folders of kdbench writers that no longer run (their pid is in the name); return them.
    A live writer's temporary folder is kept, whoever owns it."""
    removed = []
    if not Path(folder).is_dir():
        return removed
    for p in Path(folder).glob(f"{TMP_PREFIX}*"):
        pid = p.name[len(TMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def wall_time_so_far(checkpoint: str | None) -> float:
    """Training seconds recorded in a checkpoint by an earlier session of the same run (0 for a fresh run)."""
    if checkpoint is None:
        return 0.0
    path = Path(checkpoint) / WALL_FILE
    try:
        return float(read_json(path)["wall_s"]) if path.is_file() else 0.0
    except (KdbenchError, KeyError, TypeError, ValueError):
        return 0.0


WALL_FILE = "kdbench_wall.json"  # in each checkpoint: training seconds up to it, summed over resumed sessions
