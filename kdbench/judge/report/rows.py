"""One row per run (accuracy, share of the teacher, size, speed per grid point), aggregated per task and student
over seeds and across tasks (the macro table)."""

from __future__ import annotations

import numpy as np

from kdbench.judge.report.inputs import Inputs, profile_cells
from kdbench.judge.uncertainty import combine_seeds, interval


def build_rows(inputs: Inputs, baselines: dict[str, float] | None = None) -> list[dict]:
    """One row per run with accuracy, share of the teacher, size, and speed per grid point.

    Speed is the run's own profile cell ("<task>/<student>") or, when only another task's copy of the same student was
    profiled, that copy's: latency depends on the shape, not on the weights. With `baselines` (task -> the score
    of answering the majority class), `share_above_chance` is the part of the teacher's margin over that baseline the
    student keeps: on tasks where the teacher is barely above chance (RTE, WNLI) it says more than the plain share.
    """
    from kdbench.judge.uncertainty import resampled

    samples = resampled(list(inputs.runs))
    rows = []
    for i, run in enumerate(inputs.runs):
        task, student = run["task"], run["student"]
        recipe = recipe_label(run.get("config") or {})
        row = {
            "task": task,
            "student": f"{student} [{recipe}]" if recipe else student,
            "recipe": recipe,
            "metric": run["metric"],
            "score": run["score"],
            "teacher_score": run["teacher_score"],
            "share": run["share_of_teacher"],
            "shape": run["student_shape"],
            "seed": (run.get("config") or {}).get("train", {}).get("seed"),
            "train_samples": run.get("train_samples"),
            "epochs": (run.get("config") or {}).get("train", {}).get("epochs"),
            "speed": {},
            "speed_from": None,
            "parameters": None,
            "flops": None,
            "onnx_scores": {f"{e['backend']}:{e['variant']}": e["score"] for e in run.get("evals", [])},
            "parity": {v: e.get("argmax_agreement") for v, e in run.get("parity", {}).items()},
            "chance": (baselines or {}).get(task),
            "share_above_chance": _above_chance(run["score"], run["teacher_score"], (baselines or {}).get(task)),
            "_score_samples": samples.get(i, {}).get("score"),  # bootstrap resamples of the evaluation examples
            "_share_samples": samples.get(i, {}).get("share"),
        }
        name = _profiled_name(inputs, task, student, run["student_shape"])
        for pr, c in profile_cells(inputs):
            if c.student != name:
                continue
            info = pr.students[name]
            row["parameters"], row["flops"], row["speed_from"] = info["parameters"], info["flops_per_sequence"], name
            ref = pr.reference(c)
            speed = pr.speedup(c)
            engine = c.backend if c.dtype == "fp32" else f"{c.backend}:{c.dtype}"  # torch:bf16 beside onnxruntime:int8
            key = f"{c.device} {engine} b{c.batch_size} n{c.seq_len}"
            row["speed"][key] = {
                "p50_ms": c.stats.p50 * 1e3,
                "sequences_per_s": c.sequences_per_s,
                "speedup": speed.to_dict() if speed else None,
                "teacher_p50_ms": ref.stats.p50 * 1e3 if ref else None,
            }
        rows.append(row)
    return rows


MIN_MARGIN = 0.05  # a teacher must beat the majority class by 5 points for its margin to be a measure at all


def _above_chance(score: float, teacher: float, chance: float | None) -> float | None:
    if chance is None or teacher - chance < MIN_MARGIN:
        # no baseline, or a margin of a few examples (MiniLM on RTE: 1.8 points, 5 of 277 pairs): a student one
        # example either way would swing this by a third, so it is left out rather than shown as noise
        return None
    return (score - chance) / (teacher - chance)


SHAPE_FIELDS = ("layers", "heads", "head_dim", "hidden", "ffn", "pruned")


def recipe_label(config: dict) -> str:
    """How a run's recipe differs from the paper's, e.g. "init slice" ("" when it does not)."""
    from kdbench.train.config import DistillConfig

    defaults = DistillConfig.recipe_defaults()
    return ", ".join(f"{k} {config[k]}" for k, v in defaults.items() if k in config and config[k] != v)


def _profiled_name(inputs: Inputs, task: str, student: str, shape: dict) -> str | None:
    """The profile label to take a run's speed from: its own, else another trained run of the same shape."""
    own = f"{task}/{student}"
    names = [n for pr in inputs.profiles for n in pr.students]
    if own in names:
        return own
    for pr in inputs.profiles:
        for n, info in pr.students.items():
            if "/" in n and all(info.get(k) == shape.get(k) for k in SHAPE_FIELDS):
                return n
    return None


def budget_of(row: dict) -> tuple[int, float]:
    """A run's training budget: (training rows, epochs)."""
    return (row["train_samples"] or 0, row.get("epochs") or 0)


def _samples_seen(budget: tuple[int, float]) -> float:
    return budget[0] * budget[1]


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per (task, student) from the runs with the largest budget (training rows x epochs, then rows),
    averaged over seeds (score_std is the sample standard deviation across seeds, None with one seed)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["student"]), []).append(r)
    out = []
    for rs in groups.values():
        full = max((_samples_seen(budget_of(r)), budget_of(r)) for r in rs)[1]
        rs = [r for r in rs if budget_of(r) == full]
        scores = [r["score"] for r in rs]
        keys = sorted({k for r in rs for k in r["onnx_scores"]})  # a set: sorted so reruns write the same file
        resampled_ = {
            k: combine_seeds([r[k] for r in rs]) if all(r[k] is not None for r in rs) else None
            for k in ("_score_samples", "_share_samples")
        }
        out.append(
            {
                **rs[0],
                "score": float(np.mean(scores)),
                "score_std": float(np.std(scores, ddof=1)) if len(rs) > 1 else None,
                "share": mean_or_none([r["share"] for r in rs]),  # None where the teacher scored 0
                "share_above_chance": mean_or_none([r["share_above_chance"] for r in rs]),
                "seeds": sorted(r["seed"] for r in rs if r["seed"] is not None),
                "onnx_scores": {
                    k: float(np.mean([r["onnx_scores"][k] for r in rs if k in r["onnx_scores"]])) for k in keys
                },
                **resampled_,
                "score_ci": interval(resampled_["_score_samples"]),  # 95 %: examples (and seeds) resampled
                "share_ci": interval(resampled_["_share_samples"]),
            }
        )
    return out


def mean_or_none(values: list[float | None]) -> float | None:
    return float(np.mean(values)) if values and all(v is not None for v in values) else None


def first_speed_key(row: dict, backend: str) -> str | None:
    """The row's first speed key (sorted) measured on `backend` exactly (not one of its variants)."""
    return next((k for k in sorted(row["speed"]) if k.split(" ")[1] == backend), None)


def first_speed(row: dict, backend: str) -> dict | None:
    """The row's speed entry at its first grid point measured on `backend`."""
    key = first_speed_key(row, backend)
    return row["speed"][key] if key else None


# ------------------------------------------------------------------------------------------------------ output
def macro(rows: list[dict]) -> dict[str, dict]:
    """Per student across tasks: mean score, mean share of the teacher, tasks covered, parameters, and speed-ups
    over the teacher's eager PyTorch at the first measured grid point: eager PyTorch, and the fastest ONNX variant."""
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(r["student"], {"scores": [], "shares": [], "tasks": [], "rows": []})
        out[r["student"]]["scores"].append(r["score"])
        out[r["student"]]["shares"].append(r["share"])
        out[r["student"]]["tasks"].append(r["task"])
        out[r["student"]]["rows"].append(r)
    return {
        s: {
            "macro_score": float(np.mean(v["scores"])),
            "macro_share": mean_or_none([x for x in v["shares"] if x is not None]),  # tasks where the teacher > 0
            # over the tasks where the teacher beats the majority class (elsewhere there is no margin to keep)
            "macro_share_above_chance": mean_or_none(
                [x for r in v["rows"] if (x := r["share_above_chance"]) is not None]
            ),
            "tasks": v["tasks"],
            "parameters": next((r["parameters"] for r in v["rows"] if r["parameters"]), None),
            **_headline_speed(v["rows"]),
        }
        for s, v in out.items()
    }


def teacher_summary(main: list[dict], inputs: Inputs) -> dict:
    """The teachers' row of the macro table: their mean score over the tasks, and what ONNX Runtime alone buys them
    (fp32 ONNX versus eager PyTorch, at the first grid point both were measured at)."""
    scores = {r["task"]: r["teacher_score"] for r in main}
    eager, onnx = {}, {}
    for _pr, c in profile_cells(inputs):
        if not c.student.endswith("/teacher"):
            continue
        point = f"b{c.batch_size} n{c.seq_len}"
        if c.backend == "torch":
            eager[point] = c.stats.p50
        elif c.backend == "onnxruntime":
            onnx[point] = c.stats.p50
    both = sorted(set(eager) & set(onnx))
    return {
        "macro_score": float(np.mean(list(scores.values()))) if scores else None,
        "tasks": sorted(scores),
        "onnx_speedup": eager[both[0]] / onnx[both[0]] if both else None,
    }


def _headline_speed(rows: list[dict]) -> dict:
    """Speed-ups over the teacher in eager PyTorch at the first grid point any of `rows` was measured at."""
    for r in rows:
        key = first_speed_key(r, "torch")
        eager = r["speed"][key] if key else None
        if not eager or not eager["teacher_p50_ms"]:
            continue
        point = key.split(" ", 2)[2]
        onnx = {
            k.split(" ")[1]: eager["teacher_p50_ms"] / v["p50_ms"]
            for k, v in r["speed"].items()
            if k.split(" ")[1].startswith("onnxruntime") and k.endswith(point)
        }
        best = max(onnx, key=onnx.get) if onnx else None
        return {
            "grid_point": point,
            "torch_speedup": eager["teacher_p50_ms"] / eager["p50_ms"],
            "best_onnx": best,
            "best_onnx_speedup": onnx[best] if best else None,
        }
    return {"grid_point": None, "torch_speedup": None, "best_onnx": None, "best_onnx_speedup": None}
