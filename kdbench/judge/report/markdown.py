"""REPORT.md: claims first, then the macro table, the sections, and one table per task."""

from __future__ import annotations

from kdbench.judge.report.claims import Claim
from kdbench.judge.report.sections import verdict_trend


def fmt(value: float | None, spec: str = ".4f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def speedup_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def variant_order(variant: str) -> tuple[int, str]:
    order = ("fp32", "O1", "O2", "O3", "int8")
    return (order.index(variant) if variant in order else len(order), variant)


def score_text(r: dict) -> str:
    spread = f" ± {r['score_std']:.4f} (n={len(r['seeds'])})" if r.get("score_std") is not None else ""
    ci = r.get("score_ci")
    return f"{r['score']:.4f}{spread}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def share_text(r: dict) -> str:
    """The share of the teacher's score with its 95 % paired-bootstrap interval, where per-example data exist."""
    ci = r.get("share_ci")
    return fmt(r["share"], ".1%") + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "")


def markdown(doc: dict, claim_list: list[Claim], fronts: dict[str, set], preamble: str = "") -> str:
    """REPORT.md: claims first, then the sweeps (heads, training-set size, seeds, deployment), then every task."""
    lines = ["# kdbench report", ""] + ([preamble.rstrip(), ""] if preamble else [])
    lines += ["## The paper's claims", ""] + [f"- {c.line()}" for c in claim_list] + [""]
    lines += _macro_section(doc)
    lines += _heads_section(doc["heads"]) if doc["heads"] else []
    lines += budget_markdown(doc["budget"]) if doc.get("budget") else []
    lines += _train_size_section(doc["train_size"]) if doc["train_size"] else []
    lines += _spread_section(doc["main"])
    lines += _deployment_section(doc["deployment"]) if doc["deployment"] else []
    for task in sorted({r["task"] for r in doc["main"]}):
        lines += _task_section(task, [r for r in doc["main"] if r["task"] == task], fronts.get(task, set()))
    return "\n".join(lines)


def _macro_section(doc: dict) -> list[str]:
    """Across tasks: the teacher, then students on the most tasks first (the main grid), then by share, so that a
    sweep's one-task students do not outrank them."""
    summary = doc["macro"]
    points = {v["grid_point"] for v in summary.values() if v["grid_point"]}
    lines = [
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
    for s, v in sorted(summary.items(), key=lambda kv: (-len(kv[1]["tasks"]), -(kv[1]["macro_share"] or 0))):
        onnx = f"{v['best_onnx_speedup']:.2f}x ({v['best_onnx']})" if v["best_onnx"] else "-"
        params = f"{v['parameters'] / 1e6:.1f}" if v["parameters"] else "-"
        lines.append(
            f"| {s} | {params} | {v['macro_score']:.4f} | {fmt(v['macro_share'], '.1%')} | "
            f"{fmt(v['macro_share_above_chance'], '.1%')} | {speedup_text(v['torch_speedup'])} | {onnx} | "
            f"{', '.join(v['tasks'])} |"
        )
    return [*lines, ""]


def _heads_section(heads: list[dict]) -> list[str]:
    lines = [
        "## Number of heads",
        "",
        "Students that differ from the teacher only in their heads: wider heads (every projection kept) or pruned "
        "to the teacher's head width (projections shrink). Speed: PyTorch eager, first measured grid point.",
        "",
        "| task | heads | student | score | share | p50 ms | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for h in heads:
        lines.append(
            f"| {h['task']} | {h['heads']} | {h['student']} | {h['score']:.4f} | {fmt(h['share'], '.1%')} | "
            f"{fmt(h['p50_ms'], '.2f')} | {speedup_text(h['speedup'])} |"
        )
    return [*lines, ""]


def _train_size_section(train_size: dict) -> list[str]:
    lines = ["## Training-set size", "", "| run | training rows | score | share |", "|---|---|---|---|"]
    for k, points in train_size.items():
        for pt in points:
            lines.append(f"| {k} | {pt['train_samples']} | {pt['score']:.4f} | {fmt(pt['share'], '.1%')} |")
    return [*lines, ""]


def _spread_section(main: list[dict]) -> list[str]:
    spread = [r for r in main if r.get("score_std") is not None]
    if not spread:
        return []
    lines = [
        "## Run-to-run spread (seeds)",
        "",
        "| task | student | seeds | mean score | std | share |",
        "|---|---|---|---|---|---|",
    ]
    for r in spread:
        lines.append(
            f"| {r['task']} | {r['student']} | {', '.join(map(str, r['seeds']))} | {r['score']:.4f} | "
            f"{r['score_std']:.4f} | {fmt(r['share'], '.1%')} |"
        )
    return [*lines, ""]


def _deployment_section(deployment: list[dict]) -> list[str]:
    variants = sorted({v for d in deployment for v in d["variants"]}, key=variant_order)
    lines = [
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
    for d in deployment:
        cells = []
        for v in variants:
            e = d["variants"].get(v)
            agreement = f", {e['agreement']:.1%}" if e and e["agreement"] is not None else ""
            cells += (
                [f"{e['score']:.4f} ({e['delta']:+.4f}{agreement})", speedup_text(e["vs_teacher_eager"])]
                if e
                else ["-", "-"]
            )
        lines.append(
            f"| {d['task']} | {d['student']} | {d['torch_score']:.4f} | {speedup_text(d['torch_vs_teacher'])} | "
            + " | ".join(cells)
            + " |"
        )
    return [*lines, ""]


def _task_section(task: str, rows: list[dict], front: set) -> list[str]:
    lines = [
        f"## {task}",
        "",
        "| student | params (M) | score | teacher | share | above chance | speed (p50 ms, speed-up) | ONNX scores "
        "| Pareto |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = "; ".join(
            f"{k}: {v['p50_ms']:.1f} ms" + (f", {v['speedup']['value']:.2f}x" if v["speedup"] else "")
            for k, v in sorted(r["speed"].items())
        )
        if speed and r["speed_from"] != f"{task}/{r['student']}":
            speed += f" (measured on {r['speed_from']})"
        params = f"{r['parameters'] / 1e6:.1f}" if r["parameters"] else "-"
        onnx = ", ".join(f"{k} {v:.3f}" for k, v in sorted(r["onnx_scores"].items())) or "-"
        pareto = "yes" if r["student"] in front else ""
        lines.append(
            f"| {r['student']} | {params} | {score_text(r)} | {r['teacher_score']:.4f} | {share_text(r)} | "
            f"{fmt(r['share_above_chance'], '.1%')} | {speed or '-'} | {onnx} | {pareto} |"
        )
    return [*lines, ""]


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
        cells = {p["point"]: f"{fmt(p['share'], '.1%')} ({p['score']:.4f})" for p in pts}
        lines.append(f"| {name} | " + " | ".join(cells.get(i, "-") for i in range(len(verdicts))) + " |")
    return [*lines, ""]
