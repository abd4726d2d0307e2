"""The report's sections beyond the per-task tables: the head sweep, training-set size, training budget,
deployment (accuracy per exported variant) and the Pareto frontier."""

from __future__ import annotations

import numpy as np

from kdbench.judge.report.claims import judged_claims
from kdbench.judge.report.inputs import Inputs
from kdbench.judge.report.rows import _samples_seen, aggregate, budget_of, first_speed, mean_or_none


def budget_points(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Per task, the distinct training budgets of its runs, smallest first (only tasks with more than one)."""
    by: dict[str, set] = {}
    for r in rows:
        by.setdefault(r["task"], set()).add(budget_of(r))
    return {t: sorted(b, key=lambda x: (_samples_seen(x), x)) for t, b in sorted(by.items()) if len(b) > 1}


def _grid_budget(row: dict, rows: list[dict]) -> bool:
    """Whether the row's budget was given to several students of its task (a budget sweep), not to one student
    alone (a training-size or seed sweep)."""
    return len({r["student"] for r in rows if r["task"] == row["task"] and budget_of(r) == budget_of(row)}) > 1


def budget_study(rows: list[dict], inputs: Inputs) -> dict | None:
    """Shares and claims against training budget: point k takes every task's k-th smallest budget (the tasks must
    have the same number of points), aggregates those runs and judges the paper's claims on them alone."""
    rows = [r for r in rows if _grid_budget(r, rows)]
    points = budget_points(rows)
    counts = {len(v) for v in points.values()}
    if not points or len(counts) != 1:
        return None
    curves: dict[str, dict] = {}
    for r in rows:
        if r["task"] in points:
            k = points[r["task"]].index(budget_of(r))
            curves.setdefault(f"{r['task']}/{r['student']}", {}).setdefault(k, []).append(r)
    table = {
        name: [
            {
                "point": k,
                "rows": budget_of(rs[0])[0],
                "epochs": budget_of(rs[0])[1],
                "share": mean_or_none([r["share"] for r in rs]),
                "score": float(np.mean([r["score"] for r in rs])),
            }
            for k, rs in sorted(by_point.items())
        ]
        for name, by_point in sorted(curves.items())
    }
    verdicts = []
    for k in range(counts.pop()):
        at_k = [r for r in rows if r["task"] in points and budget_of(r) == points[r["task"]][k]]
        paper = [r for r in aggregate(at_k) if not r["recipe"] and r["share"] is not None]
        verdicts.append(
            {
                "point": k,
                "budgets": {t: list(v[k]) for t, v in points.items()},
                "claims": [c.__dict__ for c in judged_claims(paper, inputs)],
            }
        )
    return {"points": {t: [list(b) for b in v] for t, v in points.items()}, "curves": table, "verdicts": verdicts}


def verdict_trend(verdicts: list[str]) -> str:
    """One phrase for a claim's verdicts from the smallest budget to the largest."""
    if len(set(verdicts)) == 1:
        return f"{verdicts[0]} at every budget"
    last = verdicts[-1]
    first_of_last = len(verdicts) - next(i for i, v in enumerate(reversed(verdicts)) if v != last)
    if all(v == last for v in verdicts[first_of_last:]) and first_of_last > 0:
        return f"{last} from budget B{first_of_last + 1} on (before: {', '.join(verdicts[:first_of_last])})"
    return "changes with the budget: " + ", ".join(f"B{i + 1} {v}" for i, v in enumerate(verdicts))


def train_size_curves(rows: list[dict]) -> dict[str, list[dict]]:
    """Per "<task>/<student>" trained on more than one training-set size: score and share per size (seed 42 or the
    first seed, so every point differs only in the data)."""
    by: dict[str, dict[int, dict]] = {}
    for r in sorted(rows, key=lambda r: (r["seed"] is None, r["seed"] or 0)):
        if r["train_samples"] is not None:
            by.setdefault(f"{r['task']}/{r['student']}", {}).setdefault(r["train_samples"], r)
    return {
        k: [{"train_samples": n, "score": r["score"], "share": r["share"]} for n, r in sorted(v.items())]
        for k, v in sorted(by.items())
        if len(v) > 1
    }


def head_sweep(main: list[dict], teachers: dict[str, dict]) -> list[dict]:
    """Students that differ from their teacher only in the number of heads (wider heads, or pruned to the teacher's
    head width), with the teacher itself as the full-heads point, per task, fewest heads first."""
    out = []
    for task in sorted({r["task"] for r in main}):
        t = teachers.get(task)
        if not t:
            continue
        rs = [
            r
            for r in main
            if r["task"] == task
            and r["shape"]["layers"] == t["layers"]
            and r["shape"]["hidden"] == t["hidden"]
            and r["shape"]["heads"] < t["heads"]
        ]
        if not rs:
            continue
        for r in sorted(rs, key=lambda r: (r["shape"]["heads"], bool(r["shape"].get("pruned")))):
            speed = first_speed(r, "torch")
            out.append(
                {
                    "task": task,
                    "heads": r["shape"]["heads"],
                    "student": r["student"],
                    "pruned": bool(r["shape"].get("pruned")),
                    "score": r["score"],
                    "share": r["share"],
                    "p50_ms": speed["p50_ms"] if speed else None,
                    "speedup": speed["speedup"]["value"] if speed and speed["speedup"] else None,
                }
            )
        teacher = next(r for r in main if r["task"] == task)
        out.append(
            {
                "task": task,
                "heads": t["heads"],
                "student": "teacher",
                "pruned": False,
                "score": teacher["teacher_score"],
                "share": 1.0,
                "p50_ms": next((v["teacher_p50_ms"] for r in rs if (v := first_speed(r, "torch"))), None),
                "speedup": 1.0,
            }
        )
    return out


def deployment(main: list[dict]) -> list[dict]:
    """Per student with ONNX evaluations: accuracy of each variant next to PyTorch's, its parity, and its latency
    and speed-up over the teacher in eager PyTorch at the same grid point."""
    out = []
    for r in main:
        if not r["onnx_scores"]:
            continue
        variants = {}
        for label, score in sorted(r["onnx_scores"].items()):
            engine, variant = label.split(":", 1)
            if engine == "torch" and variant == "fp32":
                continue  # the row's own score
            backend = engine if variant == "fp32" else f"{engine}:{variant}"
            variant = variant if engine == "onnxruntime" else backend  # ONNX variants by name, torch:bf16 in full
            speed = first_speed(r, backend)
            eager = first_speed(r, "torch")
            variants[variant] = {
                "score": score,
                "delta": score - r["score"],
                "agreement": r["parity"].get(variant),
                "p50_ms": speed["p50_ms"] if speed else None,
                "vs_teacher_eager": eager["teacher_p50_ms"] / speed["p50_ms"]
                if speed and eager and eager["teacher_p50_ms"]
                else None,
            }
        eager = first_speed(r, "torch")
        out.append(
            {
                "task": r["task"],
                "student": r["student"],
                "torch_score": r["score"],
                "torch_p50_ms": eager["p50_ms"] if eager else None,
                "torch_vs_teacher": eager["speedup"]["value"] if eager and eager["speedup"] else None,
                "variants": variants,
            }
        )
    return out


def pareto(points: list[tuple[str, float, float]]) -> set[str]:
    """Names on the frontier of (latency lower, score higher): no other point is at least as good on both and
    better on one."""
    front = set()
    for name, lat, score in points:
        if not any((l2 <= lat and s2 >= score) and (l2 < lat or s2 > score) for n2, l2, s2 in points if n2 != name):
            front.add(name)
    return front
