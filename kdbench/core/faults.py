"""Fault injection for the crash tests: named points in kdbench's code where a test kills the whole process group, as
a preempted job or `kill -9` would, and then checks that the same command continues where the kill left it.

The environment variable KDBENCH_FAULT names the point: "distill-step" (the first time a process reaches it) or
"distill-step@4" (the fourth time in that process). Unset, as it always is outside the crash tests, a point costs a
dictionary lookup. The points (tests/study/test_faults.py kills at each):

    finetune-step, distill-step              after an optimisation step of the teacher fine-tune / a distillation
    finetune-checkpoint, distill-checkpoint  while a checkpoint is written (weights saved, its trainer state not yet)
    export                                   after the fp32 graph replaced the old one, before its parity entry
    evaluate                                 after the metrics are computed, before their file is written
    profile                                  after the first grid point was timed
    report                                   after report.json was written, before REPORT.md
"""

from __future__ import annotations

import os
import signal

ENV = "KDBENCH_FAULT"
POINTS = (
    "finetune-step",
    "distill-step",
    "finetune-checkpoint",
    "distill-checkpoint",
    "export",
    "evaluate",
    "profile",
    "report",
)
_reached: dict[str, int] = {}


def point(name: str) -> None:
    """Kill this process and every process of its group here, when KDBENCH_FAULT names this point (and count)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    assert name in POINTS, f"unknown fault point {name}"
    target, _, nth = wanted.partition("@")
    if target != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(nth or 1):
        os.killpg(os.getpgrp(), signal.SIGKILL)
