"""`kdbench report`: accuracy joined with speed, per task and across tasks, the Pareto frontier, and the paper's claims
with verdicts computed from the data.

Inputs are profile results (kdbench.profile files) and run folders (their metrics.json from `kdbench distill` and
eval/*.json from `kdbench evaluate`), or folders holding them. Speed comes from `kdbench profile --runs` cells of the
trained students ("<task>/<student>"); accuracy from the run folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdbench.errors import KdbenchError
from kdbench.io import atomic_write_json, atomic_write_text, check_folder_writable, read_json
from kdbench.results import SCHEMA as PROFILE_SCHEMA
from kdbench.results import ProfileResult
from kdbench.run import Run
from kdbench.uncertainty import combine_seeds, interval, verdict_from_support
from kdbench.verdict import FASTER, MEANINGFUL_SPEEDUP, TOO_FEW, excludes_speedup, head_verdicts

SCHEMA = "kdbench.report"
KINDS = ("layers", "heads", "hidden", "combined", "pruned")
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


def kind_of(s: dict, t: dict) -> str | None:
    """What a student compresses relative to its teacher: layers, heads, hidden, combined or pruned."""
    if s.get("pruned"):
        return "pruned"
    fewer = [k for k in ("layers", "heads", "hidden") if s[k] < t[k]]
    if len(fewer) == 1:
        return fewer[0]
    return "combined" if fewer else None


def _cells(inputs: Inputs):
    for pr in inputs.profiles:
        for c in pr.cells:
            yield pr, c


def build_rows(inputs: Inputs, baselines: dict[str, float] | None = None) -> list[dict]:
    """One row per run with accuracy, share of the teacher, size, and speed per grid point.

    Speed is the run's own profile cell ("<task>/<student>") or, when only another task's copy of the same student was
    profiled, that copy's: latency depends on the shape, not on the weights. With `baselines` (task -> the score
    of answering the majority class), `share_above_chance` is the part of the teacher's margin over that baseline the
    student keeps: on tasks where the teacher is barely above chance (RTE, WNLI) it says more than the plain share.
    """
    from kdbench.uncertainty import resampled

    samples = resampled(list(inputs.runs))
    rows = []
    for i, run in enumerate(inputs.runs):
        task, student = run["task"], run["student"]
        recipe = _recipe(run.get("config") or {})
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
        for pr, c in _cells(inputs):
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


def _recipe(config: dict) -> str:
    """How a run's recipe differs from the paper's, e.g. "init slice" ("" when it does not)."""
    from kdbench.distill import DistillConfig

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
                "share": _mean_or_none([r["share"] for r in rs]),  # None where the teacher scored 0
                "share_above_chance": _mean_or_none([r["share_above_chance"] for r in rs]),
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


def _mean_or_none(values: list[float | None]) -> float | None:
    return float(np.mean(values)) if values and all(v is not None for v in values) else None


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
                "share": _mean_or_none([r["share"] for r in rs]),
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
            speed = _first(r, "torch")
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
                "p50_ms": next((v["teacher_p50_ms"] for r in rs if (v := _first(r, "torch"))), None),
                "speedup": 1.0,
            }
        )
    return out


def _first_key(row: dict, backend: str) -> str | None:
    """The row's first speed key (sorted) measured on `backend` exactly (not one of its variants)."""
    return next((k for k in sorted(row["speed"]) if k.split(" ")[1] == backend), None)


def _first(row: dict, backend: str) -> dict | None:
    """The row's speed entry at its first grid point measured on `backend`."""
    key = _first_key(row, backend)
    return row["speed"][key] if key else None


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
            speed = _first(r, backend)
            eager = _first(r, "torch")
            variants[variant] = {
                "score": score,
                "delta": score - r["score"],
                "agreement": r["parity"].get(variant),
                "p50_ms": speed["p50_ms"] if speed else None,
                "vs_teacher_eager": eager["teacher_p50_ms"] / speed["p50_ms"]
                if speed and eager and eager["teacher_p50_ms"]
                else None,
            }
        eager = _first(r, "torch")
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


# ------------------------------------------------------------------------------------------------------ claims
@dataclass(frozen=True)
class Claim:
    """One of the paper's claims with the verdict the data supports."""

    claim: str
    verdict: str  # "holds", "does not hold", "inconclusive" (the data allow either), "not enough data"
    evidence: str

    def line(self) -> str:
        return f"{self.claim}: {self.verdict.upper()} - {self.evidence}"


def _reference_speed(row: dict) -> float | None:
    """The student's speed-up at its first measured grid point on PyTorch (the reference configuration)."""
    for key, cell in sorted(row["speed"].items()):
        if " torch " in f" {key} " and cell["speedup"]:
            return cell["speedup"]["value"]
    return None


def _by_kind(rows: list[dict], teacher_shapes: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        t = teacher_shapes.get(r["task"])
        k = kind_of(r["shape"], t) if t else None
        if k:
            out.setdefault(k, []).append(r)
    return out


def teacher_shapes(inputs: Inputs) -> dict[str, dict]:
    """Per task, the shape of the teacher its students were distilled from."""
    teachers = {run["task"]: run["teacher_shape"] for run in inputs.runs if run.get("teacher_shape")}
    for pr in inputs.profiles:  # runs written before metrics.json carried the teacher's shape
        for name, s in pr.students.items():
            if name.endswith("/teacher"):
                teachers.setdefault(name.split("/")[0], s)
    return teachers


def judged_claims(rows: list[dict], inputs: Inputs) -> list[Claim]:
    """The four claims with verdicts that say how sure they are: each is judged again on every bootstrap resample of
    the evaluation examples (seeds resampled too); HOLDS or DOES NOT HOLD needs 95 % of the resamples, anything
    between is INCONCLUSIVE. Runs without per-example predictions leave a claim INCONCLUSIVE, with the point
    estimates' verdict shown."""
    lines = [ln for pr in inputs.profiles for ln in head_verdicts(pr)]
    base = claims(rows, inputs, lines)
    decided = [i for i, c in enumerate(base) if c.verdict in ("holds", "does not hold")]
    if not decided:
        return base
    missing = [r for r in rows if r.get("_share_samples") is None]
    if missing:
        for i in decided:
            c = base[i]
            base[i] = Claim(
                c.claim,
                "inconclusive",
                f"point estimates say {c.verdict.upper()} ({c.evidence}); {len(missing)} of {len(rows)} runs have no "
                "per-example predictions, so how sure that is cannot be said",
            )
        return base
    resamples = len(rows[0]["_share_samples"])
    votes = [
        claims([{**r, "share": float(r["_share_samples"][k])} for r in rows], inputs, lines) for k in range(resamples)
    ]
    for i in decided:
        c = base[i]
        support = float(np.mean([v[i].verdict == "holds" for v in votes]))
        against = float(np.mean([v[i].verdict == "does not hold" for v in votes]))
        verdict = verdict_from_support(support) if against < 0.95 else "does not hold"
        base[i] = Claim(
            c.claim,
            verdict,
            f"{c.evidence}; holds in {support:.0%} and fails in {against:.0%} of {resamples} bootstrap resamples of "
            "the evaluation examples",
        )
    return base


def claims(rows: list[dict], inputs: Inputs, lines=None) -> list[Claim]:
    """The four claims of the paper, each with a verdict computed from the rows' point estimates ("holds", "does not
    hold", "inconclusive" where the speed intervals decide nothing, or "not enough data"). `lines`: the head
    verdicts of the profiles (computed here when not given)."""
    kinds = _by_kind(rows, teacher_shapes(inputs))
    out = []

    # 1. layer reduction loses the least accuracy per unit of speed gained
    cost = {}
    for k, rs in kinds.items():
        vals = [(1 - r["share"]) / (sp - 1) for r in rs if (sp := _reference_speed(r)) and sp > MEANINGFUL_SPEEDUP]
        if vals:
            cost[k] = float(np.mean(vals))
    text = "layer reduction loses the least accuracy per unit of speed gained"
    if "layers" not in cost or len(cost) < 2:
        missing = "layer-reduced students" if "layers" not in cost else "another kind of student"
        out.append(
            Claim(
                text,
                "not enough data",
                f"needs accuracy and a measured speed-up (> {MEANINGFUL_SPEEDUP}x) "
                f"for {missing}; have: {', '.join(sorted(cost)) or 'none'}",
            )
        )
    else:
        best = min(cost, key=cost.get)
        ev = ", ".join(f"{k} {v:.3f}" for k, v in sorted(cost.items(), key=lambda kv: kv[1]))
        out.append(
            Claim(
                text,
                "holds" if best == "layers" else "does not hold",
                f"share of the teacher's score lost per unit of speed-up gained: {ev}",
            )
        )

    # 2. fewer attention heads cost accuracy and bring no speed-up
    text = "fewer attention heads cost accuracy and bring no speed-up"
    heads = kinds.get("heads", [])
    lines = [ln for pr in inputs.profiles for ln in head_verdicts(pr)] if lines is None else lines
    if not heads or not lines:
        out.append(
            Claim(
                text,
                "not enough data",
                "needs distilled head-reduced students (4AH, 8AH) with accuracy and "
                "a profile with the teacher and head-reduced students",
            )
        )
    else:
        share = float(np.mean([r["share"] for r in heads]))
        others = [r["share"] for k, rs in kinds.items() if k != "heads" for r in rs]
        costs = share < 1 and (not others or share <= float(np.mean(others)))
        faster = [ln for ln in lines if ln.outcome == FASTER]
        ruled_out = sum(excludes_speedup(ln.speedup) for ln in lines)
        pruned = [f"{ln.pruned} {ln.pruned_speedup}" for ln in lines if ln.pruned_speedup]
        kept = f"head students keep {share:.1%} of the teacher's score" + (
            f" (other students {np.mean(others):.1%})" if others else ""
        )
        few = sum(ln.outcome == TOO_FEW for ln in lines)
        speed = (
            f"{len(faster)} of {len(lines)} speed measurements faster, {ruled_out} rule out a speed-up above "
            f"{MEANINGFUL_SPEEDUP:.2f}x"
            + (f", {few} lack the calls or blocks of time a verdict needs" if few else "")
            + (f"; pruned heads would give {pruned[0]}" if pruned else "")
        )
        if not costs or faster:
            verdict = "does not hold"
        elif ruled_out == len(lines):
            verdict = "holds"
        else:
            verdict = "inconclusive"  # no speed-up shown, but the intervals do not rule one out either
        out.append(Claim(text, verdict, f"{kept}; {speed}"))

    # 3. tasks differ in sensitivity
    text = "tasks differ in sensitivity (paper: SST-2 and QQP resistant, RTE and CoLA sensitive)"
    by_task: dict[str, list[float]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r["share"])
    if len(by_task) < 2:
        out.append(
            Claim(text, "not enough data", f"needs students on at least two tasks; have {', '.join(by_task) or 'none'}")
        )
    else:
        rank = sorted(by_task, key=lambda t: -float(np.mean(by_task[t])))
        ev = " > ".join(f"{t} {np.mean(by_task[t]):.1%}" for t in rank)
        resistant = [t for t in ("sst2", "qqp") if t in rank]
        sensitive = [t for t in ("rte", "cola") if t in rank]
        if not resistant or not sensitive:
            out.append(
                Claim(
                    text,
                    "not enough data",
                    f"ranked by share kept: {ev}; the paper's comparison needs SST-2 or QQP and RTE or CoLA",
                )
            )
        else:
            holds = max(rank.index(t) for t in resistant) < min(rank.index(t) for t in sensitive)
            out.append(Claim(text, "holds" if holds else "does not hold", f"ranked by share kept: {ev}"))

    # 4. smaller hidden size costs a moderate amount
    text = "smaller hidden size costs a moderate amount"
    hidden, layers_, heads_ = (kinds.get(k, []) for k in ("hidden", "layers", "heads"))
    if not hidden or not (layers_ or heads_):
        out.append(
            Claim(
                text,
                "not enough data",
                "needs distilled smaller-hidden students (384D, 516D) and layer- or "
                "head-reduced students to compare with",
            )
        )
    else:
        h = float(np.mean([r["share"] for r in hidden]))
        bounds = [float(np.mean([r["share"] for r in g])) for g in (layers_, heads_) if g]
        moderate = min(bounds) <= h <= max(bounds) if len(bounds) == 2 else h < 1
        others = "; ".join(
            f"{k} students {np.mean([r['share'] for r in g]):.1%}"
            for k, g in (("layer", layers_), ("head", heads_))
            if g
        )
        out.append(
            Claim(
                text,
                "holds" if moderate else "does not hold",
                f"smaller-hidden students keep {h:.1%} of the teacher's score; {others}",
            )
        )
    return out


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
            "macro_share": _mean_or_none([x for x in v["shares"] if x is not None]),  # tasks where the teacher > 0
            # over the tasks where the teacher beats the majority class (elsewhere there is no margin to keep)
            "macro_share_above_chance": _mean_or_none(
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
    for _pr, c in _cells(inputs):
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
        key = _first_key(r, "torch")
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


def _fmt(value: float | None, spec: str = ".4f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _variant_order(variant: str) -> tuple[int, str]:
    order = ("fp32", "O1", "O2", "O3", "int8")
    return (order.index(variant) if variant in order else len(order), variant)


def _score(r: dict) -> str:
    spread = f" ± {r['score_std']:.4f} (n={len(r['seeds'])})" if r.get("score_std") is not None else ""
    ci = r.get("score_ci")
    return f"{r['score']:.4f}{spread}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def _share(r: dict) -> str:
    """The share of the teacher's score with its 95 % paired-bootstrap interval, where per-example data exist."""
    ci = r.get("share_ci")
    return _fmt(r["share"], ".1%") + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "")


def markdown(doc: dict, claim_list: list[Claim], fronts: dict[str, set], preamble: str = "") -> str:
    """REPORT.md: claims first, then the sweeps (heads, training-set size, seeds, deployment), then every task."""
    main, summary = doc["main"], doc["macro"]
    lines = ["# kdbench report", ""] + ([preamble.rstrip(), ""] if preamble else [])
    lines += ["## The paper's claims", ""] + [f"- {c.line()}" for c in claim_list] + [""]
    points = {v["grid_point"] for v in summary.values() if v["grid_point"]}
    lines += [
        "## Across tasks (macro average)",
        "",
        "Speed-ups are over the teacher in eager PyTorch"
        + (f" at {', '.join(sorted(points))}" if points else "")
        + '; the ONNX column is the student\'s fastest ONNX Runtime variant. "Above chance" is the share of the '
        "teacher's margin over answering the majority class that the student keeps, averaged over the tasks where "
        "the teacher beats it by at least 5 points (shown when the baselines are known, as in a study)."
        + (
            " Majority-class scores: " + ", ".join(f"{t} {v:.4f}" for t, v in sorted(doc["baselines"].items())) + "."
            if doc["baselines"]
            else ""
        ),
        "",
        "| student | params (M) | score | share of teacher | above chance | speed-up, PyTorch | speed-up, ONNX "
        "| tasks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    t = doc["teacher"]
    if t["macro_score"] is not None:
        onnx = f"{t['onnx_speedup']:.2f}x (onnxruntime)" if t["onnx_speedup"] else "-"
        lines.append(
            f"| teacher | - | {t['macro_score']:.4f} | 100.0% | 100.0% | 1.00x | {onnx} | {', '.join(t['tasks'])} |"
        )
    # students on the most tasks first (the main grid), then by share: a sweep's one-task students do not outrank them
    for s, v in sorted(summary.items(), key=lambda kv: (-len(kv[1]["tasks"]), -(kv[1]["macro_share"] or 0))):
        onnx = f"{v['best_onnx_speedup']:.2f}x ({v['best_onnx']})" if v["best_onnx"] else "-"
        params = f"{v['parameters'] / 1e6:.1f}" if v["parameters"] else "-"
        lines.append(
            f"| {s} | {params} | {v['macro_score']:.4f} | {_fmt(v['macro_share'], '.1%')} | "
            f"{_fmt(v['macro_share_above_chance'], '.1%')} | {_x(v['torch_speedup'])} | {onnx} | "
            f"{', '.join(v['tasks'])} |"
        )
    lines.append("")
    if doc["heads"]:
        lines += [
            "## Number of heads",
            "",
            "Students that differ from the teacher only in their heads: wider heads (every projection kept) or pruned "
            "to the teacher's head width (projections shrink). Speed: PyTorch eager, first measured grid point.",
            "",
            "| task | heads | student | score | share | p50 ms | speed-up |",
            "|---|---|---|---|---|---|---|",
        ]
        for h in doc["heads"]:
            lines.append(
                f"| {h['task']} | {h['heads']} | {h['student']} | {h['score']:.4f} | {_fmt(h['share'], '.1%')} | "
                f"{_fmt(h['p50_ms'], '.2f')} | {_x(h['speedup'])} |"
            )
        lines.append("")
    if doc.get("budget"):
        lines += budget_markdown(doc["budget"])
    if doc["train_size"]:
        lines += ["## Training-set size", "", "| run | training rows | score | share |", "|---|---|---|---|"]
        for k, points in doc["train_size"].items():
            for pt in points:
                lines.append(f"| {k} | {pt['train_samples']} | {pt['score']:.4f} | {_fmt(pt['share'], '.1%')} |")
        lines.append("")
    spread = [r for r in main if r.get("score_std") is not None]
    if spread:
        lines += [
            "## Run-to-run spread (seeds)",
            "",
            "| task | student | seeds | mean score | std | share |",
            "|---|---|---|---|---|---|",
        ]
        for r in spread:
            lines.append(
                f"| {r['task']} | {r['student']} | {', '.join(map(str, r['seeds']))} | {r['score']:.4f} | "
                f"{r['score_std']:.4f} | {_fmt(r['share'], '.1%')} |"
            )
        lines.append("")
    if doc["deployment"]:
        variants = sorted({v for d in doc["deployment"] for v in d["variants"]}, key=_variant_order)
        lines += [
            "## Deployment (ONNX Runtime)",
            "",
            "Per exported variant: its score (change against PyTorch; argmax agreement with PyTorch in the parity "
            "check) and its speed-up over the teacher in eager PyTorch at the same grid point.",
            "",
            "| task | student | PyTorch score | speed-up, PyTorch | "
            + " | ".join(f"{v} score | {v} speed-up" for v in variants)
            + " |",
            "|---|---|---|---|" + "---|---|" * len(variants),
        ]
        for d in doc["deployment"]:
            cells = []
            for v in variants:
                e = d["variants"].get(v)
                agreement = f", {e['agreement']:.1%}" if e and e["agreement"] is not None else ""
                cells += (
                    [f"{e['score']:.4f} ({e['delta']:+.4f}{agreement})", _x(e["vs_teacher_eager"])] if e else ["-", "-"]
                )
            lines.append(
                f"| {d['task']} | {d['student']} | {d['torch_score']:.4f} | {_x(d['torch_vs_teacher'])} | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
    for task in sorted({r["task"] for r in main}):
        lines += [
            f"## {task}",
            "",
            "| student | params (M) | score | teacher | share | above chance | speed (p50 ms, speed-up) | ONNX scores "
            "| Pareto |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in main if r["task"] == task):
            speed = "; ".join(
                f"{k}: {v['p50_ms']:.1f} ms" + (f", {v['speedup']['value']:.2f}x" if v["speedup"] else "")
                for k, v in sorted(r["speed"].items())
            )
            if speed and r["speed_from"] != f"{task}/{r['student']}":
                speed += f" (measured on {r['speed_from']})"
            params = f"{r['parameters'] / 1e6:.1f}" if r["parameters"] else "-"
            onnx = ", ".join(f"{k} {v:.3f}" for k, v in sorted(r["onnx_scores"].items())) or "-"
            front = "yes" if r["student"] in fronts.get(task, ()) else ""
            lines.append(
                f"| {r['student']} | {params} | {_score(r)} | {r['teacher_score']:.4f} | {_share(r)} | "
                f"{_fmt(r['share_above_chance'], '.1%')} | {speed or '-'} | {onnx} | {front} |"
            )
        lines.append("")
    return "\n".join(lines)


def teacher_latency(inputs: Inputs) -> dict[str, float]:
    """Per task, the fine-tuned teacher's fastest measured p50 in ms (from `profile --runs` cells)."""
    out: dict[str, float] = {}
    for _pr, c in _cells(inputs):
        if c.student.endswith("/teacher"):
            task = c.student.split("/")[0]
            out[task] = min(out.get(task, float("inf")), c.stats.p50 * 1e3)
    return out


MARKERS = {"torch": "o", "torch-compile": "P", "onnxruntime": "^", "onnxruntime:O2": "D", "onnxruntime:int8": "v"}


def _points(row: dict) -> list[tuple[str, float, float]]:
    """(engine, p50 ms, share) of a row at its first grid point per engine; a quantised or lower-precision engine
    takes its own measured accuracy where it was evaluated, else the fp32 share."""
    out, seen = [], set()
    for key in sorted(row["speed"]):
        engine = key.split(" ")[1]
        if engine in seen:
            continue
        seen.add(engine)
        score = row["onnx_scores"].get(engine if ":" in engine else f"{engine}:fp32")
        share = score / row["teacher_score"] if score is not None and row["teacher_score"] else row["share"]
        out.append((engine, row["speed"][key]["p50_ms"], share))
    return out


def plot(rows: list[dict], path: Path, teachers: dict[str, float] | None = None) -> None:
    """Accuracy (share of the teacher's score) against p50 latency: one panel per task and one for the macro
    average, each with its Pareto frontier over every engine and precision; colour = student, marker = engine, error
    bars = 95 % intervals where known; a legend instead of labels on the points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r["speed"] and r["share"] is not None]
    tasks = sorted({r["task"] for r in shown})
    panels = tasks + (["macro"] if len(tasks) > 1 else [])
    if not panels:
        panels = ["(no measured speed)"]
    students = sorted({r["student"] for r in shown})
    colours = {s: plt.cm.tab20(i % 20) for i, s in enumerate(students)}
    cols = min(3, len(panels))
    rows_n = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(5.5 * cols, 4.2 * rows_n), squeeze=False)
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        if panel == "macro":
            by_student: dict[str, list] = {}
            for r in shown:
                by_student.setdefault(r["student"], []).append(r)
            pts = []
            for student, rs in by_student.items():
                for engine, ms, _ in _points(rs[0]):
                    pts.append(
                        (
                            student,
                            engine,
                            ms,
                            float(np.mean([p[2] for r in rs for p in _points(r) if p[0] == engine])),
                            None,
                        )
                    )
        else:
            pts = [
                (r["student"], engine, ms, share, r.get("share_ci") if engine == "torch" else None)
                for r in shown
                if r["task"] == panel
                for engine, ms, share in _points(r)
            ]
            if task_latency := (teachers or {}).get(panel):
                pts.append(("teacher", "torch", task_latency, 1.0, None))
        for student, engine, ms, share, ci in pts:
            err = [[max(0.0, share - ci[0])], [max(0.0, ci[1] - share)]] if ci else None
            ax.errorbar(
                ms,
                share,
                yerr=err,
                fmt=MARKERS.get(engine.split(":")[0] if engine.startswith("torch:") else engine, "s"),
                color=colours.get(student, "black"),
                capsize=2,
                markersize=6,
            )
        front_names = pareto([(f"{p[0]}|{p[1]}", p[2], p[3]) for p in pts])
        front = sorted((p for p in pts if f"{p[0]}|{p[1]}" in front_names), key=lambda p: p[2])
        ax.plot([p[2] for p in front], [p[3] for p in front], linestyle="--", linewidth=1, color="grey")
        ax.set_title(panel)
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency (ms)")
        ax.set_ylabel("share of the teacher's score")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[s], marker="o", linestyle="", label=s) for s in students]
    handles += [Line2D([], [], color="black", marker="o", linestyle="", label="teacher")] if teachers else []
    engines = sorted({p[0] for r in shown for p in _points(r)})
    handles += [
        Line2D(
            [],
            [],
            color="grey",
            marker=MARKERS.get(e.split(":")[0] if e.startswith("torch:") else e, "s"),
            linestyle="",
            label=e,
        )
        for e in engines
    ]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle("Accuracy versus latency (dashed: Pareto frontier over students and engines; bars: 95 % intervals)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def write_report(
    paths: list[Path],
    out_dir: Path,
    allow_mixed: bool = False,
    preamble: str = "",
    baselines: dict[str, float] | None = None,
) -> dict:
    """Build the report and write REPORT.md, report.json and accuracy_vs_latency.png into `out_dir`.

    Several seeds of a (task, student) are averaged; runs on fewer training rows feed only the training-set-size
    table. `preamble` (markdown) opens REPORT.md: the study's setup and how it differs from the paper. `baselines`:
    per task the majority-class score, for the "above chance" columns.
    """
    out_dir = Path(out_dir)
    check_folder_writable(out_dir, "--output-dir")
    inputs = collect(paths, allow_mixed)
    rows = build_rows(inputs, baselines)
    main = aggregate(rows)
    fronts = {}
    for task in sorted({r["task"] for r in main}):
        pts = [
            (r["student"], min(v["p50_ms"] for v in r["speed"].values()), r["score"])
            for r in main
            if r["task"] == task and r["speed"]
        ]
        fronts[task] = pareto(pts) if pts else set()
    # the claims are about the paper's recipe, on tasks where the teacher scored above zero (a share needs one)
    paper = [r for r in main if not r["recipe"] and r["share"] is not None]
    claim_list = judged_claims(paper, inputs)
    doc = {
        "schema": SCHEMA,
        "schema_version": 3,  # 3: score_ci and share_ci per row; verdicts may be "inconclusive"; budget section
        "rows": _public(rows),
        "main": _public(main),
        "macro": macro(main),
        "teacher": teacher_summary(main, inputs),
        "baselines": baselines or {},
        "heads": head_sweep(paper, teacher_shapes(inputs)),
        "train_size": train_size_curves(rows),
        "deployment": deployment(main),
        "pareto": {k: sorted(v) for k, v in fronts.items()},
        "claims": [c.__dict__ for c in claim_list],
        "budget": budget_study(rows, inputs),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "report.json", doc)
    atomic_write_text(out_dir / "REPORT.md", markdown(doc, claim_list, fronts, preamble))
    plot(main, out_dir / "accuracy_vs_latency.png", teacher_latency(inputs))
    if doc["budget"]:
        plot_budget(doc["budget"], out_dir / "share_vs_budget.png")
    return doc


def budget_markdown(budget: dict) -> list[str]:
    """The budget section: each claim's verdict per budget point, then every student's share per budget."""
    verdicts = budget["verdicts"]
    labels = [
        "B" + str(v["point"] + 1) + " (" + ", ".join(f"{t} {b[0]:,} x {b[1]:g}" for t, b in v["budgets"].items()) + ")"
        for v in verdicts
    ]
    lines = [
        "## Training budget",
        "",
        "Budget point Bk gives every task its k-th smallest budget (training rows x epochs); each claim is judged on "
        "those runs alone. See share_vs_budget.png.",
        "",
        "| claim | " + " | ".join(labels) + " | trend |",
        "|---|" + "---|" * len(labels) + "---|",
    ]
    for i, claim in enumerate(verdicts[0]["claims"]):
        per = [v["claims"][i]["verdict"] for v in verdicts]
        lines.append(f"| {claim['claim']} | " + " | ".join(x.upper() for x in per) + f" | {verdict_trend(per)} |")
    lines += ["", "Evidence per budget point:", ""]
    for label, v in zip(labels, verdicts, strict=True):
        for c in v["claims"]:
            lines.append(f"- {label}, {c['claim']}: {c['verdict'].upper()} - {c['evidence']}")
    lines += ["", "| task/student | " + " | ".join(f"B{i + 1}" for i in range(len(verdicts))) + " |"]
    lines += ["|---|" + "---|" * len(verdicts)]
    for name, pts in budget["curves"].items():
        cells = {p["point"]: f"{_fmt(p['share'], '.1%')} ({p['score']:.4f})" for p in pts}
        lines.append(f"| {name} | " + " | ".join(cells.get(i, "-") for i in range(len(verdicts))) + " |")
    return [*lines, ""]


def _public(rows: list[dict]) -> list[dict]:
    """Rows without their bootstrap resamples (kept in memory only; report.json holds their intervals)."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]


def plot_budget(budget: dict, path: Path) -> None:
    """Share of the teacher's score against samples seen (rows x epochs), one panel per task, one line per student."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(budget["points"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for name, pts in budget["curves"].items():
            shown = [p for p in pts if p["share"] is not None]
            if name.split("/")[0] != task or not shown:
                continue
            x = [p["rows"] * p["epochs"] for p in shown]
            ax.plot(x, [p["share"] for p in shown], marker="o", label=name[len(task) + 1 :])
        ax.set_xscale("log")
        ax.set_xlabel("training samples seen (rows x epochs)")
        ax.set_ylabel("share of the teacher's score")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a task with no budget points yet has no lines
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
