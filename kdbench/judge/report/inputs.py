"""What a report reads: profile results and run folders (metrics.json, evaluations, parity, predictions) found
under the paths given, checked, and the teachers' shapes and latencies they hold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdbench.core.errors import KdbenchError
from kdbench.core.io import read_json
from kdbench.measure.result import SCHEMA as PROFILE_SCHEMA
from kdbench.measure.result import ProfileResult
from kdbench.results.run import Run

SCHEMA = "kdbench.report"
GRID_SETTINGS = ("batch_sizes", "seq_lens", "threads", "device")
RUN_KEYS = ("task", "student", "score", "metric", "teacher_score", "share_of_teacher", "student_shape")


@dataclass(frozen=True)
class Inputs:
    """Everything the report reads."""

    profiles: tuple[ProfileResult, ...]
    runs: tuple[dict, ...]  # metrics.json documents of distillation runs, with "evals" added


def collect(paths: list[Path], allow_mixed: bool = False) -> Inputs:
    """Find profile results and run folders under `paths`; refuse mixed grids unless allowed."""
    profiles, runs = [], []
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise KdbenchError(f"no such file or folder: {p}")
        files += [p] if p.is_file() else sorted(p.rglob("*.json"))
    for f in files:
        if f.parent.name in ("eval", "onnx", "student", "checkpoints") or f.name == "config.json":
            continue
        doc = read_json(f)
        if not isinstance(doc, dict):
            continue
        if doc.get("schema") == "kdbench.distill":  # a run folder's metrics.json (its student need not be there)
            missing = [k for k in RUN_KEYS if k not in doc]
            if missing:
                raise KdbenchError(f"{f}: a kdbench.distill file without {', '.join(missing)}; is it truncated?")
            run = Run(f.parent)
            doc["evals"] = run.evaluations()
            doc["parity"] = run.parity()
            doc["predictions"] = run.predictions()
            runs.append(doc)
        elif doc.get("schema") == PROFILE_SCHEMA:
            profiles.append(ProfileResult.from_dict(doc, str(f)))
    if not profiles and not runs:
        raise KdbenchError(f"found no profile results or run folders in {', '.join(map(str, paths))}")
    grids = {tuple(str(pr.settings.get(k)) for k in GRID_SETTINGS) for pr in profiles}
    if len(grids) > 1 and not allow_mixed:
        raise KdbenchError(
            f"the profile results were measured on {len(grids)} different grids (batch sizes, "
            "lengths, threads or device); pass --allow-mixed to report them together"
        )
    return Inputs(tuple(profiles), tuple(runs))


def profile_cells(inputs: Inputs):
    for pr in inputs.profiles:
        for c in pr.cells:
            yield pr, c


def teacher_shapes(inputs: Inputs) -> dict[str, dict]:
    """Per task, the shape of the teacher its students were distilled from."""
    teachers = {run["task"]: run["teacher_shape"] for run in inputs.runs if run.get("teacher_shape")}
    for pr in inputs.profiles:  # runs written before metrics.json carried the teacher's shape
        for name, s in pr.students.items():
            if name.endswith("/teacher"):
                teachers.setdefault(name.split("/")[0], s)
    return teachers


def teacher_latency(inputs: Inputs) -> dict[str, float]:
    """Per task, the fine-tuned teacher's fastest measured p50 in ms (from `profile --runs` cells)."""
    out: dict[str, float] = {}
    for _pr, c in profile_cells(inputs):
        if c.student.endswith("/teacher"):
            task = c.student.split("/")[0]
            out[task] = min(out.get(task, float("inf")), c.stats.p50 * 1e3)
    return out
