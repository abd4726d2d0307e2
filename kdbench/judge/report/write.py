"""`kdbench report`: read the inputs, build rows and sections, judge the claims, and write REPORT.md, report.json
and the plots."""

from __future__ import annotations

from pathlib import Path

from kdbench.core import faults
from kdbench.core.io import atomic_write_json, atomic_write_text, check_folder_writable
from kdbench.judge.report.claims import judged_claims
from kdbench.judge.report.inputs import SCHEMA, collect, teacher_latency, teacher_shapes
from kdbench.judge.report.markdown import markdown
from kdbench.judge.report.plots import plot, plot_budget
from kdbench.judge.report.rows import aggregate, build_rows, macro, teacher_summary
from kdbench.judge.report.sections import budget_study, deployment, head_sweep, pareto, train_size_curves


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
        "rows": public(rows),
        "main": public(main),
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
    faults.point("report")
    atomic_write_text(out_dir / "REPORT.md", markdown(doc, claim_list, fronts, preamble))
    plot(main, out_dir / "accuracy_vs_latency.png", teacher_latency(inputs))
    if doc["budget"]:
        plot_budget(doc["budget"], out_dir / "share_vs_budget.png")
    return doc


def public(rows: list[dict]) -> list[dict]:
    """Rows without their bootstrap resamples (kept in memory only; report.json holds their intervals)."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
