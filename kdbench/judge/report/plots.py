"""The report's plots: accuracy against latency (per task and macro, Pareto frontier, intervals as bars) and
share of the teacher against training budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdbench.judge.report.sections import pareto

MARKERS = {"torch": "o", "torch-compile": "P", "onnxruntime": "^", "onnxruntime:O2": "D", "onnxruntime:int8": "v"}


def engine_points(row: dict) -> list[tuple[str, float, float]]:
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
    from matplotlib.lines import Line2D

    shown = [r for r in rows if r["speed"] and r["share"] is not None]
    tasks = sorted({r["task"] for r in shown})
    panels = (tasks + (["macro"] if len(tasks) > 1 else [])) or ["(no measured speed)"]
    students = sorted({r["student"] for r in shown})
    colours = {s: plt.cm.tab20(i % 20) for i, s in enumerate(students)}
    cols = min(3, len(panels))
    rows_n = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(5.5 * cols, 4.2 * rows_n), squeeze=False)
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        _panel(ax, panel, _panel_points(panel, shown, teachers), colours)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    handles = [Line2D([], [], color=colours[s], marker="o", linestyle="", label=s) for s in students]
    handles += [Line2D([], [], color="black", marker="o", linestyle="", label="teacher")] if teachers else []
    engines = sorted({p[0] for r in shown for p in engine_points(r)})
    handles += [Line2D([], [], color="grey", marker=_marker(e), linestyle="", label=e) for e in engines]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle("Accuracy versus latency (dashed: Pareto frontier over students and engines; bars: 95 % intervals)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110, bbox_inches="tight")


def save_figure(fig, path: Path, **options) -> None:
    """Write a figure through a temporary file and a rename: a kill leaves the old plot or the new one, never half."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, **options)
    plt.close(fig)
    tmp.replace(path)


def _marker(engine: str) -> str:
    """An engine's marker (a PyTorch precision such as torch:bf16 takes its engine's)."""
    return MARKERS.get(engine.split(":")[0] if engine.startswith("torch:") else engine, "s")


def _panel_points(panel: str, shown: list[dict], teachers: dict[str, float] | None) -> list[tuple]:
    """(student, engine, p50 ms, share, interval or None) of one panel: a task's rows (and its teacher), or for the
    macro panel each student's mean share per engine at the latency of its first task."""
    if panel != "macro":
        pts = [
            (r["student"], engine, ms, share, r.get("share_ci") if engine == "torch" else None)
            for r in shown
            if r["task"] == panel
            for engine, ms, share in engine_points(r)
        ]
        if task_latency := (teachers or {}).get(panel):
            pts.append(("teacher", "torch", task_latency, 1.0, None))
        return pts
    by_student: dict[str, list] = {}
    for r in shown:
        by_student.setdefault(r["student"], []).append(r)
    return [
        (student, engine, ms, float(np.mean([p[2] for r in rs for p in engine_points(r) if p[0] == engine])), None)
        for student, rs in by_student.items()
        for engine, ms, _ in engine_points(rs[0])
    ]


def _panel(ax, title: str, pts: list[tuple], colours: dict) -> None:
    """One panel: every point with its error bar, and the Pareto frontier dashed."""
    for student, engine, ms, share, ci in pts:
        err = [[max(0.0, share - ci[0])], [max(0.0, ci[1] - share)]] if ci else None
        ax.errorbar(
            ms, share, yerr=err, fmt=_marker(engine), color=colours.get(student, "black"), capsize=2, markersize=6
        )
    front_names = pareto([(f"{p[0]}|{p[1]}", p[2], p[3]) for p in pts])
    front = sorted((p for p in pts if f"{p[0]}|{p[1]}" in front_names), key=lambda p: p[2])
    ax.plot([p[2] for p in front], [p[3] for p in front], linestyle="--", linewidth=1, color="grey")
    ax.set_title(title)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel("share of the teacher's score")
    ax.grid(alpha=0.3)


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
    save_figure(fig, path, dpi=120)
