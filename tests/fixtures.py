"""Synthetic profile results for tests of everything that reads results (verdicts, rendering, file format)."""

from __future__ import annotations

import numpy as np

from kdbench.measure.result import Cell, ProfileResult

TEACHER = {
    "name": "t",
    "model_type": "bert",
    "layers": 12,
    "heads": 12,
    "head_dim": 64,
    "hidden": 768,
    "ffn": 3072,
    "pruned": False,
    "group": "teacher",
    "description": "",
}


def student(name, group="paper", flops=1.0, **shape):
    s = {**TEACHER, "name": name, "group": group, **shape}
    return {**s, "parameters": 1000, "flops_per_sequence": {"128": int(flops * 1e9)}}


def samples(median: float, n: int = 30, spread: float = 0.01, seed: int = 0) -> tuple[float, ...]:
    rng = np.random.default_rng(seed)
    return tuple(float(median * (1 + spread * v)) for v in rng.standard_normal(n))


def blocks(n: int = 30, per_block: int = 5) -> tuple[int, ...]:
    """Measuring block ids for n samples taken in blocks of `per_block` (as the interleaved loop records them)."""
    return tuple(i // per_block for i in range(n))


def make_result(latencies: dict[str, float], students: dict[str, dict] | None = None) -> ProfileResult:
    """A result with one grid point (cpu, torch, fp32, batch 1, seq 128) and the given median latencies."""
    students = students or {
        "teacher": student("teacher", "teacher", 1.0),
        "4AH": student("4AH", heads=4, head_dim=192),
        "4AH_pruned": student("4AH_pruned", "pruned", 0.77, heads=4, pruned=True),
    }
    cells = tuple(
        Cell(n, "torch", "cpu", "fp32", 1, 128, 2, "sdpa", samples(m, seed=i), 3, 100.0, "process_peak_rss", blocks())
        for i, (n, m) in enumerate(latencies.items())
    )
    return ProfileResult({"cpu": "test"}, {"threads": 2}, TEACHER, students, cells)
