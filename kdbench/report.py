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
from kdbench.io import atomic_write_json, atomic_write_text, check_writable, read_json
from kdbench.results import SCHEMA as PROFILE_SCHEMA
from kdbench.results import ProfileResult
from kdbench.stats import speedup_interval
from kdbench.verdict import MEANINGFUL_SPEEDUP, head_verdicts

SCHEMA = "kdbench.report"
KINDS = ("layers", "heads", "hidden", "combined", "pruned")
GRID_SETTINGS = ("batch_sizes", "seq_lens", "threads", "device")


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
            doc["evals"] = [read_json(e) for e in sorted((f.parent / "eval").glob("*.json"))]
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


def build_rows(inputs: Inputs) -> list[dict]:
    """One row per (task, student) with accuracy, share of the teacher, size, and speed per grid point."""
    rows = []
    for run in inputs.runs:
        task, student = run["task"], run["student"]
        name = f"{task}/{student}"
        row = {
            "task": task,
            "student": student,
            "metric": run["metric"],
            "score": run["score"],
            "teacher_score": run["teacher_score"],
            "share": run["share_of_teacher"],
            "shape": run["student_shape"],
            "speed": {},
            "parameters": None,
            "flops": None,
            "onnx_scores": {f"{e['backend']}:{e['variant']}": e["score"] for e in run.get("evals", [])},
        }
        for pr, c in _cells(inputs):
            if c.student != name:
                continue
            info = pr.students[name]
            row["parameters"], row["flops"] = info["parameters"], info["flops_per_sequence"]
            ref = pr.reference(c)
            speed = speedup_interval(ref.samples, c.samples) if ref else None
            key = f"{c.device} {c.backend} b{c.batch_size} n{c.seq_len}"
            row["speed"][key] = {
                "p50_ms": c.stats.p50 * 1e3,
                "sequences_per_s": c.sequences_per_s,
                "speedup": speed.to_dict() if speed else None,
            }
        rows.append(row)
    return rows


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
    verdict: str  # "holds", "does not hold", "not enough data"
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


def claims(rows: list[dict], inputs: Inputs) -> list[Claim]:
    """The four claims of the paper, each with a verdict computed from the rows (or "not enough data")."""
    teachers = {run["task"]: run["teacher_shape"] for run in inputs.runs if run.get("teacher_shape")}
    for pr in inputs.profiles:  # runs written before metrics.json carried the teacher's shape
        for name, s in pr.students.items():
            if name.endswith("/teacher"):
                teachers.setdefault(name.split("/")[0], s)
    kinds = _by_kind(rows, teachers)
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
    lines = [ln for pr in inputs.profiles for ln in head_verdicts(pr)]
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
        no_speed = all(ln.outcome != "speed-up" for ln in lines)
        costs = share < 1 and (not others or share <= float(np.mean(others)))
        pruned = [f"{ln.pruned} {ln.pruned_speedup}" for ln in lines if ln.pruned_speedup]
        kept = f"head students keep {share:.1%} of the teacher's score" + (
            f" (other students {np.mean(others):.1%})" if others else ""
        )
        speed = (
            f"{sum(ln.outcome != 'speed-up' for ln in lines)} of {len(lines)} speed measurements show no "
            "speed-up" + (f"; pruned heads would give {pruned[0]}" if pruned else "")
        )
        out.append(Claim(text, "holds" if (no_speed and costs) else "does not hold", f"{kept}; {speed}"))

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
    """Per student across tasks: mean score, mean share of the teacher, tasks covered."""
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(r["student"], {"scores": [], "shares": [], "tasks": []})
        out[r["student"]]["scores"].append(r["score"])
        out[r["student"]]["shares"].append(r["share"])
        out[r["student"]]["tasks"].append(r["task"])
    return {
        s: {"macro_score": float(np.mean(v["scores"])), "macro_share": float(np.mean(v["shares"])), "tasks": v["tasks"]}
        for s, v in out.items()
    }


def markdown(rows: list[dict], summary: dict, claim_list: list[Claim], fronts: dict[str, set]) -> str:
    lines = ["# kdbench report", ""]
    for task in sorted({r["task"] for r in rows}):
        lines += [
            f"## {task}",
            "",
            "| student | params (M) | score | teacher | share | speed (p50 ms, speed-up) | ONNX scores | Pareto |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["task"] == task):
            speed = "; ".join(
                f"{k}: {v['p50_ms']:.1f} ms" + (f", {v['speedup']['value']:.2f}x" if v["speedup"] else "")
                for k, v in sorted(r["speed"].items())
            )
            params = f"{r['parameters'] / 1e6:.1f}" if r["parameters"] else "-"
            onnx = ", ".join(f"{k} {v:.3f}" for k, v in r["onnx_scores"].items()) or "-"
            front = "yes" if r["student"] in fronts.get(task, ()) else ""
            lines.append(
                f"| {r['student']} | {params} | {r['score']:.4f} | {r['teacher_score']:.4f} | "
                f"{r['share']:.1%} | {speed or '-'} | {onnx} | {front} |"
            )
        lines.append("")
    lines += [
        "## Across tasks (macro average)",
        "",
        "| student | score | share of teacher | tasks |",
        "|---|---|---|---|",
    ]
    for s, v in sorted(summary.items(), key=lambda kv: -kv[1]["macro_share"]):
        lines.append(f"| {s} | {v['macro_score']:.4f} | {v['macro_share']:.1%} | {', '.join(v['tasks'])} |")
    lines += ["", "## The paper's claims", ""] + [f"- {c.line()}" for c in claim_list] + [""]
    return "\n".join(lines)


def teacher_latency(inputs: Inputs) -> dict[str, float]:
    """Per task, the fine-tuned teacher's fastest measured p50 in ms (from `profile --runs` cells)."""
    out: dict[str, float] = {}
    for _pr, c in _cells(inputs):
        if c.student.endswith("/teacher"):
            task = c.student.split("/")[0]
            out[task] = min(out.get(task, float("inf")), c.stats.p50 * 1e3)
    return out


def plot(rows: list[dict], path: Path, teachers: dict[str, float] | None = None) -> None:
    """Accuracy (share of the teacher's score) against p50 latency at each student's fastest measured configuration,
    with each task's teacher at share 1.0 where it was profiled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for task in sorted({r["task"] for r in rows}):
        pts = [
            (r["student"], min(v["p50_ms"] for v in r["speed"].values()), r["share"])
            for r in rows
            if r["task"] == task and r["speed"]
        ]
        if pts and task in (teachers or {}):
            pts.append(("teacher", teachers[task], 1.0))
        if not pts:
            continue
        front = sorted((p for p in pts if p[0] in pareto(pts)), key=lambda p: p[1])
        ax.scatter([p[1] for p in pts], [p[2] for p in pts], label=task)
        ax.plot([p[1] for p in front], [p[2] for p in front], linestyle="--", linewidth=1)
        for name, x, y in pts:
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("p50 latency (ms), fastest measured configuration")
    ax.set_ylabel("share of the teacher's score")
    ax.set_title("Accuracy versus latency (dashed: Pareto frontier)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def write_report(paths: list[Path], out_dir: Path, allow_mixed: bool = False) -> dict:
    """Build the report and write REPORT.md, report.json and accuracy_vs_latency.png into `out_dir`."""
    out_dir = Path(out_dir)
    check_writable(out_dir / "REPORT.md")
    inputs = collect(paths, allow_mixed)
    rows = build_rows(inputs)
    fronts = {}
    for task in {r["task"] for r in rows}:
        pts = [
            (r["student"], min(v["p50_ms"] for v in r["speed"].values()), r["score"])
            for r in rows
            if r["task"] == task and r["speed"]
        ]
        fronts[task] = pareto(pts) if pts else set()
    summary = macro(rows)
    claim_list = claims(rows, inputs)
    doc = {
        "schema": SCHEMA,
        "schema_version": 1,
        "rows": rows,
        "macro": summary,
        "pareto": {k: sorted(v) for k, v in fronts.items()},
        "claims": [c.__dict__ for c in claim_list],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "report.json", doc)
    atomic_write_text(out_dir / "REPORT.md", markdown(rows, summary, claim_list, fronts))
    plot(rows, out_dir / "accuracy_vs_latency.png", teacher_latency(inputs))
    return doc
