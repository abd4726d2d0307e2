"""A study's report: REPORT.md opened by the study's setup and compute time, with majority-class baselines."""

from __future__ import annotations

from pathlib import Path

from kdbench.study.cells import read_log, seconds_by_kind, teacher_folder
from kdbench.study.spec import Study


def write_study_report(study: Study) -> dict:
    """The report of what the study has produced so far, opened by its setup and compute time (none before the first
    finished run)."""
    from kdbench.judge.report.write import write_report

    inputs = [study.output_dir / "runs"] + ([study.output_dir / "profile.json"] if study.profile else [])
    if not any(study.output_dir.glob("runs/*/*/metrics.json")):
        return {}  # nothing finished yet (a time limit before the first run): no report to write
    return write_report(
        [p for p in inputs if p.exists()], study.output_dir, preamble=preamble(study), baselines=baselines(study)
    )


def report_status(study: Study, cells_done: bool) -> tuple[str, str]:
    """("done" | "pending", why) for the study's report, as `--list` shows it: pending while a cell is, or while
    REPORT.md is missing or older than report.json (a run killed between the two files)."""
    md, js = study.output_dir / "REPORT.md", study.output_dir / "report.json"
    if not cells_done:
        return "pending", "written when every cell is done"
    if not md.is_file() or (js.is_file() and js.stat().st_mtime_ns > md.stat().st_mtime_ns):
        return "pending", "the next run writes REPORT.md"
    return "done", ""


def baselines(study: Study) -> dict[str, float]:
    """Per task, the score of always answering the training split's majority class on the evaluation split."""
    from kdbench.tasks.loading import load_task
    from kdbench.tasks.metrics import majority_baseline

    out = {}
    for name in study.tasks:
        task = study.task(name)
        data = load_task(task, study.data_dir, splits=("train", task.eval_splits[0]))
        out[task.name] = majority_baseline(task, data["train"]["label"], data[task.eval_splits[0]]["label"])
    return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def _budget_text(budget: dict) -> str:
    rows = budget.get("max_train_samples", "task's")
    return f"{'all' if rows is None else rows} x {budget.get('epochs', 'train')}"


def _budget(fields_: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in fields_.items()) or "defaults"


def preamble(study: Study) -> str:
    """REPORT.md's opening: the study's setup as run (teacher, sweeps, budgets) and its compute time by cell kind."""
    from kdbench.core.io import read_json

    teacher = Path(study.teacher).name if Path(study.teacher).exists() else study.teacher
    lines = [
        f"Study **{study.name}**: teacher `{teacher}`, tasks {', '.join(study.tasks)}. "
        "Regenerate with `kdbench study` on the study file next to this report.",
        "",
        "| sweep | tasks | students | seeds | training fractions | budgets (rows x epochs) | recipe |",
        "|---|---|---|---|---|---|---|",
    ]
    for sw in study.sweeps:
        seeds = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in sw.seeds.items())
        fractions = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in sw.train_fractions.items())
        budgets = (
            "; ".join(f"{k}: {', '.join(_budget_text(b) for b in v)}" for k, v in sw.budgets.items() if any(v))
            or "train"
        )
        recipe = _budget(sw.distill) if sw.distill else "paper"
        lines.append(
            f"| {sw.name} | {', '.join(sw.tasks)} | {sw.students} | {seeds} | {fractions} | {budgets} | {recipe} |"
        )
    lines += [
        "",
        f"- Teacher fine-tunes: {_budget(study.teacher_train or study.train)}"
        + "".join(f"; {t}: {_budget(v)}" for t, v in (study.teacher_task_train or study.task_train).items()),
        f"- Distillations: {_budget(study.train)}"
        + "".join(f"; {t}: {_budget(v)}" for t, v in study.task_train.items()),
    ]
    if study.export:
        lines.append(f"- Export: {_budget(study.export)}")
    if study.profile:
        lines.append(f"- Profile: {_budget(study.profile)}")
    log = read_log(study)
    by_kind = seconds_by_kind(log)
    # teacher fine-tunes found in the cache ran before this study's log: their own metrics hold their time
    reused = []
    for task in study.tasks:
        done = teacher_folder(study, task) / "metrics.json"
        if f"finetune/{task}" not in log and done.is_file():
            reused.append(read_json(done).get("wall_s", 0.0))
    if by_kind or reused:
        lines += ["", "| compute (this machine) | cells | wall time |", "|---|---|---|"]
        for kind, secs in sorted(by_kind.items()):
            lines.append(f"| {kind} | {len(secs)} | {_duration(sum(secs))} |")
        if reused:
            lines.append(f"| finetune (reused from the cache) | {len(reused)} | {_duration(sum(reused))} |")
        total = sum(sum(v) for v in by_kind.values()) + sum(reused)
        lines.append(f"| **total** | {sum(map(len, by_kind.values())) + len(reused)} | **{_duration(total)}** |")
    if study.notes:
        lines += ["", study.notes.rstrip()]
    return "\n".join(lines)
