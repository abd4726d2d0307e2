"""A study as independent cells (teacher fine-tunes; per run its distillation, export and evaluations; the
profile), each complete when the file its command writes last exists, and running one cell or one group of them
with its output and duration in the study log."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from kdbench.core.errors import DeadlineReached
from kdbench.results.run import Run
from kdbench.study.spec import Study, for_task, profile_settings, student_train_config, teacher_train_config


@dataclass(frozen=True)
class Cell:
    """One independent step of a study."""

    id: str  # e.g. "distill/rte/6L/s42/f1.0"; `kdbench study FILE --cell ID` runs just this one
    kind: str  # finetune, distill, export, evaluate, profile
    done: Callable[[], bool]
    run: Callable[[], object]
    group: str = ""  # cells of one group run in order on one shard (a run's distillation, export, evaluations)
    needs: tuple[str, ...] = ()  # ids of cells that must be done first (a distillation needs its teacher fine-tune)
    left: Callable[[], tuple[str, str]] | None = None  # what a kill left and the next run does with it (trainings)

    def status(self) -> tuple[str, str]:
        """("done" | "pending" | "resume" | "restart" | "blocked", what the next run will do): what `--list` shows."""
        if self.done():
            return "done", ""
        return self.left() if self.left else ("pending", "")


@dataclass(frozen=True)
class RunSpec:
    """One distillation of the study: where it goes and which sweeps asked for it."""

    task: str
    student: str
    seed: int
    fraction: float
    path: Path
    sweeps: tuple[str, ...]
    recipe: tuple[tuple[str, object], ...] = ()  # DistillConfig fields that differ from the default recipe
    budget: tuple[tuple[str, object], ...] = ()  # a sweep's training budget (max_train_samples, epochs), if any

    @property
    def id(self) -> str:
        budget, recipe = _budget_label(self.budget), _suffix(self.recipe)
        return f"{self.task}/{self.student}/s{self.seed}/f{self.fraction}{budget}{recipe}"


def _budget_label(budget: tuple[tuple[str, object], ...]) -> str:
    """A budget in run ids and folders: (("epochs", 2), ("max_train_samples", 2000)) -> "-n2000-e2"."""
    b = dict(budget)
    if not b:
        return ""
    rows = b.get("max_train_samples", "task")
    return f"-n{'all' if rows is None else rows}" + (f"-e{b['epochs']:g}" if "epochs" in b else "")


def _suffix(recipe: tuple[tuple[str, object], ...]) -> str:
    """A recipe change in run ids and folders: ("init", "slice") -> "-init-slice"."""
    return "".join(f"-{k}-{v}" for k, v in recipe)


def run_specs(study: Study) -> list[RunSpec]:
    """Every distillation of every sweep, each once (a run two sweeps share is trained once)."""
    from kdbench.zoo.students import load_zoo, select

    zoo = load_zoo(study.students_dir)
    specs: dict[str, RunSpec] = {}
    for sw in study.sweeps:
        students = [s.name for s in select(zoo, sw.students)]
        for task in sw.tasks:
            for seed in for_task(sw.seeds, task) or [42]:
                for fraction in for_task(sw.train_fractions, task) or [1.0]:
                    for budget_fields in for_task(sw.budgets, task) or [{}]:
                        for student in students:
                            recipe = tuple(sorted(sw.distill.items()))
                            budget = tuple(sorted(budget_fields.items()))
                            name = f"{student}-s{seed}-f{fraction}{_budget_label(budget)}{_suffix(recipe)}"
                            path = study.output_dir / "runs" / task / name
                            spec = RunSpec(task, student, seed, float(fraction), path, (sw.name,), recipe, budget)
                            if spec.id in specs:
                                spec = replace(spec, sweeps=specs[spec.id].sweeps + (sw.name,))
                            specs[spec.id] = spec
    return list(specs.values())


def cells(study: Study, deadline: float | None = None) -> list[Cell]:
    """Every cell of the study, in the order they run: teacher fine-tunes, then per run its distillation, export and
    evaluations, then the profile. `deadline` (a `time.time()` value): trainings checkpoint and stop once it passes."""
    from kdbench.train.distill import distill
    from kdbench.train.finetune import finetune

    specs = run_specs(study)
    out: list[Cell] = []
    teachers: dict[str, Callable[[], str]] = {}
    for task in dict.fromkeys(s.task for s in specs):
        folder = teacher_folder(study, task)
        # a distillation run on its own (--cell) fine-tunes its teacher first; otherwise this finds it cached
        teachers[task] = lambda task=task: str(
            finetune(
                study.teacher,
                study.task(task),
                teacher_train_config(study, task),
                study.data_dir,
                lambda *_: None,
                False,
                deadline,
            )
        )
        out.append(
            Cell(
                f"finetune/{task}",
                "finetune",
                lambda folder=folder: (folder / "metrics.json").is_file(),
                teachers[task],
                left=lambda folder=folder: _training_left(folder.with_name(folder.name + ".work") / "checkpoints"),
            )
        )
    export = {k: v for k, v in study.export.items() if k != "tasks"}
    export_tasks = set(study.export.get("tasks") or study.tasks)
    for spec in specs:
        cfg = lambda spec=spec: spec_config(  # noqa: E731
            study, spec, teachers[spec.task](), resume=run_resumable(spec.path)
        )
        out.append(
            Cell(
                f"distill/{spec.id}",
                "distill",
                lambda run=spec.path: run_finished(run),
                lambda cfg=cfg: distill(cfg(), log=lambda *_: None, progress=False, deadline=deadline),
                spec.id,
                (f"finetune/{spec.task}",),
                left=lambda run=spec.path: _run_left(Run(run)),
            )
        )
        if study.export and spec.task in export_tasks:
            out += _export_cells(spec, export)
    if study.profile:
        profiled = profiled_paths(study, specs)
        out.append(
            Cell(
                "profile",
                "profile",
                lambda: _profile_covers(study, profiled),
                lambda: time_runs(study, profiled),
                needs=tuple(c.id for c in out),
            )
        )
    return out


def spec_config(study: Study, spec: RunSpec, teacher_checkpoint: str | None = None, resume: bool = False):
    """The DistillConfig of one distillation of the study (what its cell runs, and what a finished copy of it
    elsewhere must have been trained with)."""
    from kdbench.train.config import DistillConfig

    return DistillConfig(
        task=study.task_refs.get(spec.task, spec.task),
        tasks_dir=study.tasks_dir,
        student=spec.student,
        teacher=study.teacher,
        teacher_checkpoint=teacher_checkpoint,
        students_dir=study.students_dir,
        data_dir=study.data_dir,
        output_dir=spec.path,
        train=student_train_config(study, spec.task, spec.seed, spec.fraction, dict(spec.budget)),
        resume=resume,
        **dict(spec.recipe),
    )


def _profile_covers(study: Study, runs: list[Path]) -> bool:
    """The profile is complete when profile.json times every run it should (one made while runs were missing, say
    by `profile_finished` after a time limit, is redone once they exist)."""
    from kdbench.core.io import read_json

    path = study.output_dir / "profile.json"
    if not path.is_file():
        return False
    timed = {str(Path(r)) for r in read_json(path).get("settings", {}).get("runs", [])}
    return {str(r) for r in runs} <= timed


def profile_is_current(study: Study) -> bool:
    """Whether the study's profile.json already times every run finished so far (nothing new to time)."""
    return bool(study.profile) and _profile_covers(study, _finished_profiled(study))


def profiled_runs(study: Study) -> list[Path]:
    """The run folders the study's profile times (none without a profile: block)."""
    return profiled_paths(study, run_specs(study)) if study.profile else []


def _finished_profiled(study: Study) -> list[Path]:
    return [r for r in profiled_runs(study) if run_finished(r)]


def profile_finished(study: Study):
    """Profile the runs that are finished so far (after a time limit stopped the study), so that a partial study
    still gets a report with speeds. Returns the result, or None when the study has no profile or no finished run."""
    if not study.profile:
        return None
    runs = _finished_profiled(study)
    return time_runs(study, runs) if runs else None


def _export_cells(spec: RunSpec, export: dict) -> list[Cell]:
    from kdbench.deploy.evaluate import evaluate_run
    from kdbench.deploy.export import ExportConfig, export_run

    run = spec.path
    variants = ["fp32", *(v for v in (export.get("optimize"), export.get("quantize")) if v)]
    out = [
        Cell(
            f"export/{spec.id}",
            "export",
            lambda: _exported(run, variants),
            lambda: export_run(ExportConfig(run, **export), log=lambda *_: None),
            spec.id,
        )
    ]
    for variant in variants:
        out.append(
            Cell(
                f"evaluate/{spec.id}/{variant}",
                "evaluate",
                lambda v=variant: Run(run).eval_file("onnxruntime", v).is_file(),
                # forced: a variant that failed its parity check is still scored (the report shows the parity)
                lambda v=variant: evaluate_run(run, "onnxruntime", v, force=True),
                spec.id,
            )
        )
    return out


def profiled_paths(study: Study, specs: list[RunSpec]) -> list[Path]:
    """The runs the profile times: all, or with `profile.task` one task's runs at its first seed, all the data and
    the default recipe (speed depends on the shape only, so one trained copy per student is enough)."""
    task = study.profile.get("task")
    if task is None:
        return [s.path for s in specs]
    chosen: dict[str, Path] = {}
    for s in specs:
        if s.task == task and s.fraction == 1.0 and not s.recipe:
            chosen.setdefault(s.student, s.path)  # with budgets: the first (any copy has the shape's speed)
    return list(chosen.values())


def run_resumable(run: Path) -> bool:
    """Whether a distillation's folder holds a run kdbench started and did not finish: it continues from its last
    checkpoint, or starts again from scratch when it was stopped before its first one."""
    from kdbench.results.run import INTERRUPTED, STARTED

    return Run(run).state() in (INTERRUPTED, STARTED)


def _run_left(run: Run) -> tuple[str, str]:
    """What the next run of the study does with a distillation's folder."""
    from kdbench.results.run import FOREIGN, INTERRUPTED, STARTED

    state = run.state()
    if state == INTERRUPTED:
        return "resume", f"continues from {Path(run.last_checkpoint()).name}"
    if state == STARTED:
        return "restart", "stopped before its first checkpoint: starts again from scratch"
    if state == FOREIGN:
        return "blocked", f"{run.path} holds files kdbench did not write; it never touches them"
    return "pending", ""


def _training_left(checkpoints: Path) -> tuple[str, str]:
    """What the next run does with a teacher fine-tune a kill interrupted (its work folder's checkpoints)."""
    from kdbench.results.run import last_checkpoint

    found = last_checkpoint(checkpoints)
    if found:
        return "resume", f"continues from {Path(found).name}"
    if checkpoints.parent.is_dir():
        return "restart", "stopped before its first checkpoint: starts again from scratch"
    return "pending", ""


def _exported(run: Path, variants: list[str]) -> bool:
    return all(v in Run(run).parity() for v in variants)


def run_finished(run: Path) -> bool:
    from kdbench.results.run import FINISHED

    return Run(run).state() == FINISHED


def time_runs(study: Study, runs: list[Path]):
    from kdbench.measure.profile import ProfileConfig, run_profile

    cfg = ProfileConfig(
        teacher=study.teacher, runs=tuple(runs), output=study.output_dir / "profile.json", **profile_settings(study)
    )
    result = run_profile(cfg)
    result.save(cfg.output)
    return result


LOG = "study-log"  # one JSON per finished cell (kind, seconds, when): the ETA's history and the compute table


def read_log(study: Study) -> dict[str, dict]:
    """Finished cells' records by cell id (one file each, so shards on several machines never overwrite another's)."""
    from kdbench.core.io import read_json

    root = study.output_dir / LOG
    return {str(f.relative_to(root).with_suffix("")): read_json(f) for f in sorted(root.rglob("*.json"))}


def seconds_by_kind(log: dict[str, dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for entry in log.values():
        out.setdefault(entry["kind"], []).append(entry["seconds"])
    return out


def run_cell(study: Study, cell: Cell) -> float:
    """Run one cell and record its duration in the study log."""
    import datetime

    from kdbench.core.io import atomic_write_json

    began = datetime.datetime.now(datetime.UTC)
    started = time.perf_counter()
    cell.run()
    seconds = time.perf_counter() - started
    record = {
        "kind": cell.kind,
        "seconds": round(seconds, 2),
        "node": os.environ.get("KDBENCH_NODE") or socket.gethostname(),  # where it ran (a Ray node's id on Ray)
        "started": began.isoformat(timespec="milliseconds"),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
    }
    atomic_write_json(study.output_dir / LOG / f"{cell.id}.json", record)
    return seconds


def past(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def group_cells(pending: list[Cell]) -> list[list[Cell]]:
    """Pending cells by group (a run's distillation, export and evaluations stay together, in order)."""
    out: dict[str, list[Cell]] = {}
    for c in pending:
        out.setdefault(c.group or c.id, []).append(c)
    return list(out.values())


def worker_init(threads: int) -> None:
    """A study worker: its share of the CPU threads, and no per-tokenisation progress bars."""
    import datasets
    import torch

    torch.set_num_threads(threads)
    datasets.disable_progress_bars()


def run_group(study: Study, ids: list[str], deadline: float | None) -> list[tuple[str, str, float]]:
    """In a worker: run the cells `ids` in order, each with its output in the study log's `<cell id>.log`; return
    (id, kind, seconds) of each finished one (a training stopped at the deadline ends the group)."""
    import contextlib

    by_id = {c.id: c for c in cells(study, deadline)}
    out = []
    for cell_id in ids:
        cell = by_id[cell_id]
        if cell.done():
            continue
        if past(deadline):  # no cell starts after the deadline (a queued Ray task may start late)
            break
        log = study.output_dir / LOG / f"{cell_id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                seconds = run_cell(study, cell)
        except DeadlineReached:
            break
        out.append((cell_id, cell.kind, seconds))
    return out


def time_left(pending: list[Cell], durations: dict[str, list[float]]) -> float | None:
    known = {k: sum(v) / len(v) for k, v in durations.items() if v}
    if not known:
        return None
    fallback = max(known.values())
    return sum(known.get(c.kind, fallback) for c in pending)


def teacher_folder(study: Study, task: str) -> Path:
    """Where the study's fine-tuned teacher for `task` is cached (its metrics.json once fine-tuned)."""
    from kdbench.train.finetune import teacher_cache_dir

    return teacher_cache_dir(study.teacher, study.task(task), teacher_train_config(study, task), study.data_dir)
