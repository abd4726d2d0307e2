"""A study killed at any moment continues by itself and ends where an uninterrupted one ends (issue 28).

Each case runs a tiny study (`kdbench study --jobs 2` in a process group of its own) and kills the whole group with
SIGKILL at one point (kdbench.core.faults), then runs the same command again and checks:
  * the kill really happened there (status -9), and the rerun exits 0 with every cell done (`--list`);
  * nothing is left half-written: no temporary folder or file, no fine-tune work folder, no checkpoint (a finished
    run keeps none), no lock still held;
  * the results equal an uninterrupted run's exactly: every run's scores, its teacher's, layer map, optimizer steps,
    per-example answers, evaluations and ONNX parity.

The normal run kills at the two points that matter most (before a distillation's first checkpoint, and while its
second checkpoint is written); `-m slow` kills at every point:

    python3 -m pytest -q -m slow tests/study/test_faults.py
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import STUDY

CHECKED = ("metrics", "teacher_metrics", "teacher_score", "layer_map", "optimizer_steps", "train_samples", "score")
EVERY_POINT = [
    "finetune-step@2",  # during the teacher fine-tune, before its first checkpoint
    "finetune-checkpoint@1",  # while the fine-tune's first checkpoint is written
    "distill-step@1",  # a distillation before its first checkpoint
    "distill-checkpoint@1",  # while a distillation's first checkpoint is written
    "distill-checkpoint@2",  # while its second is written (the first is complete)
    "distill-step@4",  # between two checkpoints
    "export@1",  # after the fp32 graph was replaced, before its parity entry
    "evaluate@2",  # after an evaluation's metrics, before its file
    "profile@1",  # after the profile's first grid point
    "report@1",  # after report.json, before REPORT.md
]
SHORT = ["distill-step@1", "distill-checkpoint@2"]


def write_study(folder: Path, teacher: Path, data: Path, zoo: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(STUDY.format(teacher=teacher, data=data, zoo=zoo, epochs=2))  # checkpoints at steps 3 and 6
    return path


def kdbench_study(study: Path, *extra: str, fault: str | None = None) -> subprocess.CompletedProcess:
    """`kdbench study STUDY --jobs 2 ...` as a user runs it, in a process group of its own (a fault kills the group)
    with the study's own cache of fine-tuned teachers and ONNX exports."""
    env = {k: v for k, v in os.environ.items() if k != "KDBENCH_FAULT"}
    env.update(KDBENCH_CACHE=str(study.parent / "cache"), PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    if fault:
        env["KDBENCH_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "kdbench", "study", str(study), "--jobs", "2", *extra],
        env=env,
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=900,
    )


def results(folder: Path) -> dict:
    """Everything a study computed that must not depend on a kill: per run its scores and answers, evaluations and
    parity (timings are left out: they differ between any two runs)."""
    out = {}
    for metrics in sorted((folder / "out" / "runs").glob("*/*/metrics.json")):
        run = metrics.parent
        doc = json.loads(metrics.read_text())
        out[run.name] = {
            **{k: doc[k] for k in CHECKED},
            "predictions": json.loads((run / "predictions.json").read_text())["splits"],
            "evaluations": {
                e.name: {k: v for k, v in json.loads(e.read_text()).items() if k in ("metrics", "score", "sha256")}
                for e in sorted((run / "eval").glob("*.json"))
            },
            "parity": {
                v: {k: e[k] for k in ("argmax_agreement", "max_abs_diff", "sha256", "passed")}
                for v, e in json.loads((run / "onnx" / "parity.json").read_text()).items()
            },
        }
    return out


def leftovers(folder: Path) -> list[str]:
    """What a kill may leave and the rerun must have cleaned: temporary folders and files, a fine-tune's work
    folder, checkpoints, and locks still held by someone."""
    found = []
    for p in folder.rglob("*"):
        name = p.name
        if name.startswith(".kdbench-tmp-") or name.endswith((".tmp", ".work", ".tmp.png")) or name == "checkpoints":
            found.append(str(p.relative_to(folder)))
        elif p.is_dir() and name.startswith("checkpoint-") and not (p / "trainer_state.json").is_file():
            found.append(f"{p.relative_to(folder)} (no trainer state)")
        elif p.is_file() and name.endswith(".lock"):
            with open(p) as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    found.append(f"{p.relative_to(folder)} (still held)")
    return sorted(found)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The tiny study run once without a fault: the results every killed-and-rerun study must equal."""
    from conftest import TINY_ZOO, write_parquet_glue, write_tiny_teacher

    root = tmp_path_factory.mktemp("faults")
    teacher, data = write_tiny_teacher(root / "teacher"), write_parquet_glue(root / "glue")
    zoo = root / "students"
    zoo.mkdir()
    for name, body in TINY_ZOO.items():
        (zoo / f"{name}.toml").write_text(f'name = "{name}"\n{body}')
    study = write_study(root / "reference", teacher, data, zoo)
    done = kdbench_study(study)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = results(study.parent)
    assert len(reference) == 2 and all(r["evaluations"] and r["parity"] for r in reference.values())
    return (teacher, data, zoo), reference


def killed_then_rerun(fault: str, inputs, reference, folder: Path) -> None:
    study = write_study(folder, *inputs)
    killed = kdbench_study(study, fault=fault)
    assert killed.returncode == -signal.SIGKILL, f"the fault {fault} never fired: {killed.stderr[-2000:]}"
    listing = kdbench_study(study, "--list").stdout
    assert "pending" in listing or "resume" in listing or "restart" in listing, listing
    rerun = kdbench_study(study)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    listing = kdbench_study(study, "--list").stdout
    assert listing.split() and all(line.startswith("done ") for line in listing.splitlines()), listing
    assert leftovers(folder) == []
    assert (folder / "out" / "REPORT.md").is_file() and (folder / "out" / "profile.json").is_file()
    assert results(folder) == reference


@pytest.mark.parametrize("fault", SHORT)
def test_a_killed_study_continues_and_ends_as_an_uninterrupted_one(fault, uninterrupted, tmp_path):
    inputs, reference = uninterrupted
    killed_then_rerun(fault, inputs, reference, tmp_path / "study")


@pytest.mark.slow
@pytest.mark.parametrize("fault", [f for f in EVERY_POINT if f not in SHORT])
def test_every_kill_point_recovers(fault, uninterrupted, tmp_path):
    inputs, reference = uninterrupted
    killed_then_rerun(fault, inputs, reference, tmp_path / "study")


def test_what_a_kill_left_is_listed_with_what_the_next_run_does(uninterrupted, tmp_path):
    """`--list` after a kill before the first checkpoint of a distillation says it restarts; after one between its
    checkpoints, that it resumes from the last complete one."""
    inputs, _ = uninterrupted
    study = write_study(tmp_path / "before", *inputs)
    assert kdbench_study(study, fault="distill-step@1").returncode == -signal.SIGKILL
    lines = kdbench_study(study, "--list").stdout.splitlines()
    assert any(ln.startswith("restart distill/rte/") and "starts again from scratch" in ln for ln in lines), lines
    assert any(ln.startswith("done    finetune/rte") for ln in lines), lines
    study = write_study(tmp_path / "between", *inputs)
    assert kdbench_study(study, fault="distill-step@4").returncode == -signal.SIGKILL
    lines = kdbench_study(study, "--list").stdout.splitlines()
    assert any(ln.startswith("resume  distill/rte/") and "continues from checkpoint-3" in ln for ln in lines), lines
