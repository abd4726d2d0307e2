"""The `kdbench` command line: a thin shell over the library. Each command imports heavy libraries only when it runs.

User errors (KdbenchError) become one line on stderr and exit status 2; nothing half-written is left behind.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from kdbench.errors import ConfigError, KdbenchError
from kdbench.profile import DEFAULTS  # light: the profile module imports torch only when it runs
from kdbench.teacher import DEFAULT_TEACHER


class OneLineErrors(TyperGroup):
    """Usage errors (an unknown option or command, a missing or malformed value) as one line and status 2, like
    every other user error, instead of a usage box. Only typer's public exceptions are caught: TyperException is the
    base of every usage error typer raises (typer 0.29 and later carry their own click)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        try:  # `kdbench` alone shows the help, as `kdbench --help` does
            code = super().main(args or ["--help"], prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
            err_console.print(f"error: {exc.format_message()}{where}", markup=False, highlight=False, soft_wrap=True)
            if standalone_mode:
                sys.exit(exc.exit_code)
            raise
        except typer.Abort:
            if standalone_mode:
                err_console.print("interrupted", markup=False)
                sys.exit(130)
            raise
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code


app = typer.Typer(
    cls=OneLineErrors,
    help="Measure what knowledge distillation loses and what it buys at deployment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Wide enough for the profile tables when output goes to a file or CI log (a terminal keeps its own width).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def user_errors(fn):
    """Turn KdbenchError into one clear line and exit status 2; Ctrl-C into status 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KdbenchError as exc:
            text = f"{flag(exc.setting)} {exc.problem}" if isinstance(exc, ConfigError) else str(exc)
            err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; nothing half-written was left (a distillation continues with --resume)")
            raise typer.Exit(130) from None

    return wrapper


# settings whose option is not simply --<setting with dashes>
FLAGS = {
    "min_time_s": "--min-time",
    "max_time_s": "--max-time",
    "warmup_runs": "--warmup",
    "warmup_time_s": "--warmup-time",
}


def flag(setting: str) -> str:
    """The command-line option of a configuration setting (library errors name settings, users type options)."""
    return FLAGS.get(setting, "--" + setting.replace("_", "-"))


def _ints(option: str, text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise KdbenchError(f"{option} takes comma-separated integers, e.g. 1,8; got {text!r}") from None


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(v.strip() for v in text.split(",") if v.strip())


TeacherOpt = Annotated[
    str,
    typer.Option(
        help="Teacher: hub id or local model folder (only its config is read). "
        f"{DEFAULT_TEACHER} is built in and needs no download."
    ),
]
StudentsDirOpt = Annotated[
    Path | None, typer.Option(help="Folder of student .toml files (default: the shipped zoo in students/).")
]


@app.command()
@user_errors
def students(
    teacher: TeacherOpt = DEFAULT_TEACHER,
    students_dir: StudentsDirOpt = None,
    select: Annotated[
        str, typer.Option("--students", help="Names or groups: paper, heads, pruned, custom, all.")
    ] = "all",
    seq_len: Annotated[int, typer.Option(help="Sequence length for the FLOPs column.")] = 128,
) -> None:
    """Show the student zoo for a teacher: shape, parameters, FLOPs and their ratios to the teacher."""
    from kdbench.profile import ProfileConfig, describe_students, plan
    from kdbench.render import students_table

    if seq_len <= 0:
        raise KdbenchError(f"--seq-len must be positive, got {seq_len}")
    p = plan(ProfileConfig(teacher=teacher, students=select, students_dir=students_dir))
    rows = list(describe_students(p, (seq_len,)).values())
    console.print(students_table(rows, seq_len, teacher))


@app.command()
@user_errors
def profile(
    teacher: TeacherOpt = DEFAULT_TEACHER,
    select: Annotated[
        str | None,
        typer.Option(
            "--students",
            help="Names or groups (paper, heads, pruned, custom, "
            f"all), comma-separated. Default: {DEFAULTS['students']}. The teacher is "
            "always profiled.",
        ),
    ] = None,
    students_dir: StudentsDirOpt = None,
    backends: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated engines: torch (eager), torch-compile (inductor; CUDA graphs on cuda), onnxruntime "
            "(fp32), onnxruntime:O2 (ORT's transformer optimisations), onnxruntime:int8 (dynamic quantisation). "
            f"Default: {DEFAULTS['backends']}."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    dtypes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated precisions for the PyTorch engines: fp32, bf16, fp16 (bf16/fp16 on a CPU need AMX or "
            "AVX512-BF16/FP16; refused in one line otherwise; `kdbench env` lists the CPU's features). Default: fp32."
        ),
    ] = None,
    dtype: Annotated[str | None, typer.Option(help="One precision; the same as --dtypes with one value.")] = None,
    batch_sizes: Annotated[
        str | None, typer.Option(help=f"Comma-separated batch sizes. Default: {DEFAULTS['batch_sizes']}.")
    ] = None,
    seq_lens: Annotated[
        str | None, typer.Option(help=f"Comma-separated sequence lengths. Default: {DEFAULTS['seq_lens']}.")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Intra-op CPU threads. Default: all cores.")] = None,
    warmup: Annotated[
        int | None, typer.Option(help=f"Untimed warm-up calls per cell. Default: {DEFAULTS['warmup_runs']}.")
    ] = None,
    warmup_time: Annotated[
        float | None,
        typer.Option(help=f"Seconds of warm-up per cell, at least. Default: {DEFAULTS['warmup_time_s']}."),
    ] = None,
    min_runs: Annotated[
        int | None, typer.Option(help=f"Timed calls per cell, at least. Default: {DEFAULTS['min_runs']}.")
    ] = None,
    min_blocks: Annotated[
        int | None,
        typer.Option(
            help="Separate measuring blocks (about 0.25 s each, interleaved with the other models) the timed calls "
            "of a cell must span; the speed-up interval is computed from block medians. "
            f"Default: {DEFAULTS['min_blocks']}."
        ),
    ] = None,
    min_time: Annotated[
        float | None,
        typer.Option(help=f"Seconds of timed calls per cell, at least. Default: {DEFAULTS['min_time_s']}."),
    ] = None,
    max_time: Annotated[
        float | None,
        typer.Option(help=f"Seconds of timed calls per cell at most. Default: {DEFAULTS['max_time_s']}."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for random weights, inputs and the bootstrap.")] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Result JSON file (written atomically).")] = Path(
        "reports/profile.json"
    ),
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Smoke run: 3L, 4AH, 4AH_pruned at batch 1, length 32, short cells; prints the tables and no verdict.",
        ),
    ] = False,
    runs: Annotated[
        list[Path] | None,
        typer.Option(
            "--runs",
            help="Run folder of `kdbench distill` (repeatable): "
            "profiles the trained student, its fine-tuned teacher and "
            "its exported ONNX variants. With --runs and no --students, "
            "no zoo student is added.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With --runs: also time ONNX variants whose parity check failed.")
    ] = False,
    breakdown: Annotated[
        bool,
        typer.Option(
            "--breakdown",
            help="Also attribute each model's eager PyTorch time (first batch size and length) to Q/K/V projections, "
            "attention products, output projection, feed-forward and the rest, beside each group's FLOPs: why "
            "fewer, wider heads save nothing and pruned heads save the projections.",
        ),
    ] = False,
) -> None:
    """Time the teacher and its students on each backend x device x batch size x sequence length.

    Prints a table per (device, backend) with p50/p90 latency, coefficient of variation, throughput and the speed-up
    over the teacher with a 95 % bootstrap interval, then the attention-head verdict. With no options it runs the
    paper's zoo (and pruned-head variants) for roberta-base on CPU, both backends, batch sizes 1 and 8, length 128.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kdbench.clock import check_device
    from kdbench.io import check_writable
    from kdbench.profile import QUICK, ProfileConfig, plan, run_profile
    from kdbench.render import breakdown_tables, head_table, print_all, profile_tables
    from kdbench.verdict import head_claim, head_verdicts

    if runs and select is None:
        select = ""  # only the trained models (the zoo's random-weight teacher stays as the shape reference)
    given = dict(
        students=select,
        backends=_names(backends),
        dtypes=_names(dtypes),
        batch_sizes=_ints("--batch-sizes", batch_sizes),
        seq_lens=_ints("--seq-lens", seq_lens),
        threads=threads,
        warmup_runs=warmup,
        warmup_time_s=warmup_time,
        min_runs=min_runs,
        min_blocks=min_blocks,
        min_time_s=min_time,
        max_time_s=max_time,
    )
    settings = {**(QUICK if quick else {}), **{k: v for k, v in given.items() if v is not None}}
    cfg = ProfileConfig(
        teacher=teacher,
        students_dir=students_dir,
        device=device,
        dtype=dtype,
        seed=seed,
        output=output,
        runs=tuple(runs or ()),
        force=force,
        breakdown=breakdown,
        **settings,
    )
    check_writable(cfg.output)
    check_device(cfg.device)
    p = plan(cfg)  # every user error surfaces here, before the progress display starts
    started = time.perf_counter()
    with Progress(
        TextColumn("[progress.description]{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=p.count * len(cfg.backends) * len(cfg.batch_sizes) * len(cfg.seq_lens))
        result = run_profile(cfg, lambda desc, advance: bar.update(task, description=desc, advance=advance), resolved=p)
    result.save(cfg.output)
    lines = [] if result.smoke else head_verdicts(result, cfg.seed)
    print_all(
        console,
        *profile_tables(result, cfg.seed),
        *([head_table(lines)] if lines else []),
        *breakdown_tables(result),
    )
    for ln in lines:
        console.print(
            f"  {ln.student} ({ln.grid_key[1]}, {ln.grid_key[0]}, batch {ln.grid_key[3]}): "
            f"[bold]{ln.outcome}[/] - {ln.reason}",
            soft_wrap=True,
            highlight=False,
        )
    console.print(f"[bold]Head claim:[/] {head_claim(lines, result.smoke)}", soft_wrap=True)
    worst = max(result.cells, key=lambda c: c.stats.cv)
    console.print(
        f"{len(result.cells)} cells in {time.perf_counter() - started:.0f} s; largest CV "
        f"{worst.stats.cv:.1%} ({worst.student}, {worst.backend}, batch {worst.batch_size}); "
        f"results: {cfg.output}"
    )


TaskOpt = Annotated[str, typer.Option(help="GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Local GLUE copy: <dir>/<task>/<split>.parquet or the classic glue_data/ TSV folders. Default: the hub."
    ),
]


def _defaults():
    """The configuration dataclasses' defaults: the CLI's defaults and its help texts come from them alone."""
    from dataclasses import MISSING, fields

    from kdbench.distill import DistillConfig, TrainConfig

    return {f.name: f.default for c in (TrainConfig, DistillConfig) for f in fields(c) if f.default is not MISSING}


# the defaults shown in --help (read from the dataclasses without importing torch: distill imports it lazily)
D = _defaults()

LrOpt = Annotated[float | None, typer.Option(help=f"Adam learning rate. Default: {D['learning_rate']}.")]
EpochsOpt = Annotated[float | None, typer.Option(help=f"Training epochs. Default: {D['epochs']:g}.")]
BatchOpt = Annotated[int | None, typer.Option(help=f"Sequences per training step. Default: {D['batch_size']}.")]
SeqOpt = Annotated[
    int | None,
    typer.Option(help=f"Maximum tokens per sequence (longer inputs are truncated). Default: {D['max_seq_len']}."),
]
MaxTrainOpt = Annotated[int | None, typer.Option(help="Use only the first N training rows. Default: all.")]
MaxEvalOpt = Annotated[int | None, typer.Option(help="Use only the first N evaluation rows. Default: all.")]
SeedOpt = Annotated[
    int | None, typer.Option(help=f"Seed: CPU runs with the same seed repeat exactly. Default: {D['seed']}.")
]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu or cuda (bf16 autocast on cuda). Default: cpu.")]
TRAIN_OPTIONS = (
    "learning_rate",
    "epochs",
    "batch_size",
    "max_seq_len",
    "max_train_samples",
    "max_eval_samples",
    "seed",
    "device",
)


def _given(values: dict) -> dict:
    """The options a user typed (typer gives None for the others)."""
    return {k: v for k, v in values.items() if v is not None}


def _train(given: dict):
    from kdbench.distill import TrainConfig

    return TrainConfig(**{k: v for k, v in given.items() if k in TRAIN_OPTIONS})


@app.command()
@user_errors
def finetune(
    task: TaskOpt,
    teacher: Annotated[str, typer.Option(help="Pretrained teacher: hub id or local model folder.")] = DEFAULT_TEACHER,
    data_dir: DataDirOpt = None,
    learning_rate: LrOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    max_seq_len: SeqOpt = None,
    max_train_samples: MaxTrainOpt = None,
    max_eval_samples: MaxEvalOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Fine-tune the teacher on a GLUE task and cache it (keyed by teacher, task, data and hyper-parameters)."""
    given = _given(locals())  # first: only the options are local yet
    from kdbench.distill import finetune as run_finetune

    folder = run_finetune(teacher, task, _train(given), data_dir, log=console.print)
    console.print(f"fine-tuned teacher: {folder}")


@app.command()
@user_errors
def distill(
    task: Annotated[
        str | None, typer.Option(help="GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli.")
    ] = None,
    student: Annotated[str | None, typer.Option(help="Student name from the zoo (see `kdbench students`).")] = None,
    teacher: Annotated[
        str | None, typer.Option(help=f"Pretrained teacher: hub id or local model folder. Default: {DEFAULT_TEACHER}.")
    ] = None,
    teacher_checkpoint: Annotated[
        str | None, typer.Option(help="An already fine-tuned teacher folder (skips fine-tuning).")
    ] = None,
    students_dir: StudentsDirOpt = None,
    data_dir: DataDirOpt = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Run folder. Default: runs/<task>/<student>-<teacher>-s<seed>.")
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            help="teacher: copy mapped layers and embeddings where shapes allow; slice: also give narrower tensors "
            "the teacher's leading slice (hidden-reduced students start from the teacher's first dimensions); "
            f"random. Default: {D['init']}."
        ),
    ] = None,
    alpha_hard: Annotated[
        float | None, typer.Option(help=f"Weight of the label cross-entropy. Default: {D['alpha_hard']}.")
    ] = None,
    alpha_soft: Annotated[
        float | None, typer.Option(help=f"Weight of the soft (teacher logits) loss. Default: {D['alpha_soft']}.")
    ] = None,
    alpha_feature: Annotated[
        float | None, typer.Option(help=f"Weight of the hidden-state loss. Default: {D['alpha_feature']}.")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help=f"Soft-loss temperature. Default: {D['temperature']}.")
    ] = None,
    feature_loss: Annotated[str | None, typer.Option(help=f"mse or cosine. Default: {D['feature_loss']}.")] = None,
    learning_rate: LrOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    max_seq_len: SeqOpt = None,
    max_train_samples: MaxTrainOpt = None,
    max_eval_samples: MaxEvalOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the interrupted run in --output-dir from its last checkpoint. Options not given are taken "
            "from the run; one that differs from its recorded recipe is refused.",
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a kdbench run folder (never a folder kdbench did not write).")
    ] = False,
    time_limit: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Stop cleanly after this much wall time (90s, 45m, 2h): training saves a checkpoint and stops, and "
            "--resume continues it (a batch job's wall time, a lent machine's call).",
        ),
    ] = None,
) -> None:
    """Distil a student from a fine-tuned teacher (fine-tuning the teacher first unless cached).

    The recipe of "What is Lost in Knowledge Distillation?": 0.33 x label cross-entropy + 0.33 x KL to the teacher at
    temperature 2 (x T^2) + 0.33 x MSE between mapped hidden states; first and last layers tied, the rest spread
    uniformly; Adam at 5e-5, 10 epochs, batch 12, length 128. Writes the student (save_pretrained), metrics.json,
    config.json and the layer map into the run folder. Every input is checked before anything is written.
    """
    given = _given({k: v for k, v in locals().items() if k not in ("resume", "overwrite", "time_limit")})  # options
    from rich.table import Table

    from kdbench.distill import DistillConfig, resumed_config
    from kdbench.distill import distill as run_distill

    if resume:
        if output_dir is None:
            raise KdbenchError("--resume needs --output-dir: the run folder to continue")
        if overwrite:
            raise KdbenchError("--resume and --overwrite exclude each other")
        cfg = resumed_config(output_dir, {k: v for k, v in given.items() if k != "output_dir"})
    else:
        for name in ("task", "student"):
            if name not in given:
                raise KdbenchError(f"--{name} is required (or --resume with the --output-dir of an interrupted run)")
        cfg = DistillConfig(
            **{k: v for k, v in given.items() if k not in TRAIN_OPTIONS}, train=_train(given), overwrite=overwrite
        )
    from kdbench.distill import is_main

    deadline = time.time() + parse_duration("--time-limit", time_limit) if time_limit else None
    doc = run_distill(cfg, log=console.print if is_main() else (lambda *_: None), deadline=deadline)
    if not is_main():
        return  # one summary per launch: the writing process prints it
    table = Table(title=f"{doc['task']}: {doc['student']} distilled from {doc['teacher']}")
    for col in ("model", *next(iter(doc["metrics"].values())).keys()):
        table.add_column(col)
    for split, metrics in doc["metrics"].items():
        teacher_m = doc["teacher_metrics"]["metrics"][split]
        table.add_row(f"teacher ({split})", *(f"{v:.4f}" for v in teacher_m.values()))
        table.add_row(f"{doc['student']} ({split})", *(f"{v:.4f}" for v in metrics.values()))
    console.print(table)
    share = doc["share_of_teacher"]
    console.print(
        f"{doc['metric']}: student {doc['score']:.4f}, teacher {doc['teacher_score']:.4f}"
        + (f" ({share:.1%} of the teacher)" if share is not None else "")
        + f"; training {doc['wall_s']:.0f} s; run folder {cfg.run_dir()}"
    )


@app.command()
@user_errors
def compare(
    baseline: Annotated[
        Path, typer.Argument(help="Baseline: a profile result, a pytest-benchmark JSON, or a folder of them.")
    ],
    current: Annotated[Path, typer.Argument(help="Current results, of the same kind.")],
    stat: Annotated[str, typer.Option(help="Statistic compared: min, p50, mean, p90.")] = "p50",
    absolute: Annotated[
        bool,
        typer.Option(
            "--absolute",
            help="Compare absolute times instead of each student's latency relative to the teacher of the same run.",
        ),
    ] = False,
    max_slowdown: Annotated[str, typer.Option(help="Allowed slowdown before a change can count, e.g. 10%.")] = "10%",
    threshold: Annotated[
        list[str] | None, typer.Option(help="Per-student allowance, STUDENT=PERCENT; repeatable.")
    ] = None,
    allow_partial: Annotated[
        bool, typer.Option("--allow-partial", help="Compare the common cells when the grids differ.")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the comparison as JSON.")] = None,
) -> None:
    """Fail (exit 1) when a student got slower than allowed, beyond run-to-run noise; exit 0 otherwise.

    Ratio mode (the default, for CI) compares each student's latency relative to the teacher measured in the same
    run, so a slower or busier machine does not fail the check. A change is a regression only when it exceeds the
    allowed slowdown and its 95 % bootstrap interval lies wholly above "no change". Exit status 2: the inputs cannot
    be compared (unknown files, no common cells, different grids without --allow-partial).
    """
    from rich.table import Table

    from kdbench.compare import compare as run_compare
    from kdbench.compare import parse_overrides, parse_percent, read_results
    from kdbench.io import atomic_write_json

    limit = parse_percent(max_slowdown)
    overrides = parse_overrides(threshold or [])
    b_kind, b_cells = read_results(baseline)
    c_kind, c_cells = read_results(current)
    if b_kind != c_kind:
        raise KdbenchError(f"cannot compare {b_kind} results ({baseline}) with {c_kind} results ({current})")
    rows = run_compare(b_cells, c_cells, stat, not absolute, limit, overrides, allow_partial)
    mode = "relative to the teacher" if not absolute else "absolute, ms"
    table = Table(title=f"{stat} {mode}: {baseline} -> {current}")
    for col in ("student", "cell", "baseline", "current", "change", "95% CI", "allowed", "verdict"):
        table.add_column(col, justify="left" if col in ("student", "cell", "verdict") else "right")
    scale = 1.0 if not absolute else 1e3
    colour = {"regression": "red", "improvement": "green", "inside noise": "yellow", "ok": "white"}
    for r in rows:
        table.add_row(
            r.student,
            " ".join(map(str, r.grid)),
            f"{r.baseline * scale:.3f}",
            f"{r.current * scale:.3f}",
            f"{r.change - 1:+.1%}",
            f"[{r.low - 1:+.1%}, {r.high - 1:+.1%}]",
            f"{r.threshold:.0%}",
            f"[{colour[r.verdict]}]{r.verdict}[/]",
        )
    console.print(table)
    if json_out:
        atomic_write_json(
            json_out,
            {
                "schema": "kdbench.compare",
                "schema_version": 1,
                "stat": stat,
                "ratio": not absolute,
                "rows": [r.to_dict() for r in rows],
            },
        )
    bad = [r for r in rows if r.verdict == "regression"]
    if bad:
        console.print(
            f"[bold red]{len(bad)} regression(s):[/] "
            + ", ".join(f"{r.student} {' '.join(map(str, r.grid))} {r.change - 1:+.1%}" for r in bad),
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(f"no regression in {len(rows)} cells (allowed slowdown {limit:.0%}, beyond noise)")


RunDirArg = Annotated[Path, typer.Argument(help="A run folder written by `kdbench distill`.")]


@app.command()
@user_errors
def export(
    run_dir: RunDirArg,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
    optimize: Annotated[
        str | None, typer.Option(help="Also write an ONNX Runtime-optimised variant: O1, O2 or O3.")
    ] = None,
    quantize: Annotated[str | None, typer.Option(help="Also write a dynamically quantised variant: int8.")] = None,
    parity_samples: Annotated[int, typer.Option(help="Evaluation examples compared against PyTorch.")] = 256,
) -> None:
    """Export a distilled student to ONNX (RUN_DIR/onnx/) with a parity check against PyTorch for every variant.

    fp32 must agree with PyTorch on every argmax with logits within 1e-4; int8 on at least 95 % of them. A variant
    that fails is reported loudly (exit 1) and refused by `evaluate` unless --force.
    """
    from kdbench.export import ExportConfig, export_run

    report = export_run(ExportConfig(run_dir, opset, optimize, quantize, parity_samples), log=console.print)
    failed = [name for name, entry in report.items() if not entry["passed"]]
    if failed:
        err_console.print(f"[bold red]parity FAILED[/] for {', '.join(failed)}: see {run_dir}/onnx/parity.json")
        raise typer.Exit(1)


@app.command()
@user_errors
def evaluate(
    run_dir: RunDirArg,
    backend: Annotated[str, typer.Option(help="torch or onnxruntime.")] = "onnxruntime",
    variant: Annotated[
        str,
        typer.Option(
            help="onnxruntime: the exported variant (fp32, O1, O2, O3, int8); torch: the precision the student runs "
            "in (fp32, bf16, fp16), so its score at the deployed precision sits beside fp32's."
        ),
    ] = "fp32",
    force: Annotated[bool, typer.Option("--force", help="Use a variant whose parity check failed.")] = False,
    max_eval_samples: MaxEvalOpt = None,
) -> None:
    """Measure the task's official metrics for the run's student on a backend; saved to RUN_DIR/eval/."""
    from kdbench.export import evaluate_run

    doc = evaluate_run(run_dir, backend, variant, force, max_eval_samples)
    for split, metrics in doc["metrics"].items():
        console.print(
            f"{doc['task']} {split} on {backend} ({variant}): " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
            highlight=False,
        )
    if "loss_vs_fp32" in doc:
        console.print(
            f"{variant} loses {doc['loss_vs_fp32'] * 100:+.2f} points of {doc['metric']} against fp32 on {backend}",
            highlight=False,
        )


@app.command()
@user_errors
def report(
    inputs: Annotated[list[Path], typer.Argument(help="Profile result files, run folders, or folders holding them.")],
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Where REPORT.md, report.json and the plot go.")
    ] = Path("reports"),
    allow_mixed: Annotated[
        bool, typer.Option("--allow-mixed", help="Report profile results measured on different grids together.")
    ] = False,
) -> None:
    """Join accuracy with speed per task and across tasks, mark the Pareto frontier, and judge the paper's claims."""
    from rich.table import Table

    from kdbench.report import write_report

    doc = write_report(list(inputs), output_dir, allow_mixed)
    table = Table(title="Students across tasks (macro average)")
    for col in ("student", "score", "share of teacher", "speed-up, PyTorch", "speed-up, ONNX", "tasks"):
        table.add_column(col)
    for student, v in sorted(doc["macro"].items(), key=lambda kv: (-len(kv[1]["tasks"]), -(kv[1]["macro_share"] or 0))):
        table.add_row(
            student,
            f"{v['macro_score']:.4f}",
            f"{v['macro_share']:.1%}" if v["macro_share"] is not None else "-",
            f"{v['torch_speedup']:.2f}x" if v["torch_speedup"] else "-",
            f"{v['best_onnx_speedup']:.2f}x ({v['best_onnx']})" if v["best_onnx"] else "-",
            ", ".join(v["tasks"]),
        )
    console.print(table)
    for c in doc["claims"]:
        console.print(
            f"[bold]{c['verdict'].upper()}[/]: {c['claim']} - {c['evidence']}", soft_wrap=True, highlight=False
        )
    console.print(f"written: {output_dir}/REPORT.md, report.json, accuracy_vs_latency.png")


@app.command()
@user_errors
def study(
    study_file: Annotated[
        Path,
        typer.Argument(
            help="Study file (YAML or TOML): teacher, tasks, students, seeds, sweeps, teacher and student "
            "budgets, export and profile settings, notes (README: `kdbench study`; reports/minilm-glue/study.yaml)."
        ),
    ],
    teacher: Annotated[str | None, typer.Option(help="Override the study's teacher (e.g. a local folder).")] = None,
    data_dir: DataDirOpt = None,
    cell: Annotated[str | None, typer.Option(help="Run only this cell (see --list): one job of a job array.")] = None,
    list_cells: Annotated[bool, typer.Option("--list", help="List the cells and whether each is done.")] = False,
    jobs: Annotated[
        int,
        typer.Option(
            help="Cells run at once in worker processes, each when the cells it needs are done (a distillation waits "
            "for its teacher's fine-tune). One GPU trains several small students at once; on CPU the cores are "
            "shared out. Each cell's output goes to study-log/<cell>.log. The profile always times alone.",
        ),
    ] = 1,
    executor: Annotated[
        str,
        typer.Option(
            help="local: cells run here (--jobs at once); ray: every cell becomes a Ray task with its resource "
            "request, started once the cells it needs are done, retried if its worker dies (a distillation resumes "
            "from its checkpoint). Both write the same completion files, so either can resume the other's study.",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="With --executor ray: the cluster to join (e.g. auto, or ray://head:10001); default: a new local Ray "
            "instance. Every node must see the study folder (a shared filesystem)."
        ),
    ] = None,
    cell_resources: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KIND=cpu:N,gpu:M",
            help="With --executor ray: what a kind of cell (finetune, distill, export, evaluate) asks for, e.g. "
            "distill=cpu:2,gpu:0.25 to pack four small trainings on a GPU. Default: 1 CPU, and 1 GPU for trainings "
            "when the study trains on cuda. Repeatable.",
        ),
    ] = None,
    report_only: Annotated[
        bool,
        typer.Option("--report", help="Run nothing: write the report from the runs finished so far."),
    ] = False,
    profile_finished: Annotated[
        bool,
        typer.Option(
            "--profile-finished",
            help="Train nothing: time the runs finished so far (the study's profile settings; on a quiet machine), "
            "then write the report, so a stopped study's claims get their speeds. The full profile is redone once "
            "every run exists.",
        ),
    ] = False,
    time_limit: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Stop cleanly after this much wall time (90s, 45m, 2h; a bare number is seconds): no cell starts "
            "later, and trainings in flight save a checkpoint and stop. The report shows what finished; rerun the "
            "same command to continue.",
        ),
    ] = None,
) -> None:
    """Run a whole study: every cell not yet complete, with progress and time left, then the report.

    Cells are independent commands, so a killed study reruns from where it stopped, and `--cell ID` lets several
    machines (or a cluster's job array) share one study.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from kdbench.registry import suggest
    from kdbench.study import EXECUTORS, cells, load_study, run_study

    s = load_study(study_file, teacher, data_dir)
    deadline = time.time() + parse_duration("--time-limit", time_limit) if time_limit else None
    if jobs < 1:
        raise KdbenchError(f"--jobs must be at least 1, got {jobs}")
    resources = parse_resources(cell_resources or [])
    if executor not in EXECUTORS:
        raise KdbenchError(f"--executor is {executor!r}{suggest(executor, EXECUTORS)}; allowed: {', '.join(EXECUTORS)}")
    if cell:  # check the cell's name before the progress display starts
        every = cells(s)
        if cell not in {c.id for c in every}:
            raise KdbenchError(f"unknown cell {cell!r}{suggest(cell, [c.id for c in every])}; list them with --list")
    if report_only or profile_finished:
        from kdbench.study import profile_finished as profile_runs
        from kdbench.study import write_study_report

        if profile_finished and profile_runs(s) is None:
            raise KdbenchError(f"{s.output_dir}: nothing to time (the study has no profile: block, or no finished run)")
        if not write_study_report(s):
            raise KdbenchError(f"{s.output_dir} holds no finished run yet; nothing to report")
        console.print(f"report: {s.output_dir / 'REPORT.md'}")
        return
    if list_cells:
        for c in cells(s):
            console.print(f"{'done   ' if c.done() else 'pending'} {c.id}", highlight=False)
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[eta]}"),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(s.name, total=None, eta="")

        def progress(cell_id: str, done: int, total: int, left: float | None) -> None:
            eta = f"~{left / 60:.0f} min left" if left is not None else ""
            bar.update(task, description=cell_id, completed=done, total=total, eta=eta)

        ran = run_study(s, cell, progress, jobs, deadline, executor, address, resources)
    if cell:  # one job of an array writes no report (many run at once); the report is its own step
        console.print(f"{s.name}: ran {len(ran)} cell(s); write the report with: kdbench study {study_file} --report")
    else:
        console.print(f"{s.name}: ran {len(ran)} cell(s); report: {s.output_dir / 'REPORT.md'}")
    left = sum(not c.done() for c in cells(s))
    if left and deadline is not None and time.time() >= deadline:
        console.print(f"stopped at the time limit with {left} cell(s) left; rerun the same command to continue")
    console.print((s.output_dir / "REPORT.md").read_text() if (s.output_dir / "REPORT.md").is_file() else "")


@app.command(name="env")
@user_errors
def env_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the environment block as JSON.")] = False,
) -> None:
    """What a bug report needs: Python, CPU and its ISA features, torch (CUDA, cuDNN, CPU kernels), GPU and driver,
    ONNX Runtime's installed build(s) and providers, library versions and the git commit - the block every result
    file embeds. Warns when two ONNX Runtime builds are installed or none."""
    import json

    from kdbench import env, ort

    doc = env.collect()
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        gpu = doc["gpu"]
        rows = [
            ("python", f"{doc['python']} on {doc['platform']}"),
            ("cpu", f"{doc['cpu']}, {doc['cores']} cores"),
            ("cpu features", ", ".join(doc["cpu_features"]) or "none of the listed ones"),
            (
                "torch",
                f"{doc['versions'].get('torch')} (CUDA {doc['torch_build'].get('cuda')}, cuDNN "
                f"{doc['torch_build'].get('cudnn')}, CPU kernels {doc['torch_build'].get('cpu_capability')})",
            ),
            (
                "gpu",
                f"{gpu.get('name')} (driver {gpu.get('driver')}, {gpu.get('memory_gib')} GiB)"
                if gpu["available"]
                else "none visible to torch",
            ),
            ("onnxruntime", ", ".join(f"{k} {v}" for k, v in doc["onnxruntime"]["distributions"].items()) or "none"),
            ("ort providers", ", ".join(doc["onnxruntime"]["providers"]) or "-"),
            ("libraries", ", ".join(f"{k} {v}" for k, v in doc["versions"].items())),
            ("kdbench", f"{doc['kdbench']} (commit {doc['git_commit']})"),
        ]
        for key, value in rows:
            console.print(f"{key:>14}: {value}", highlight=False, soft_wrap=True)
    if len(ort.installed()) != 1:
        try:
            ort.check("cpu")
        except KdbenchError as exc:
            err_console.print(f"warning: {exc}", markup=False, soft_wrap=True)


def parse_duration(option: str, text: str) -> float:
    """Seconds in '90', '90s', '45m' or '2h'."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise KdbenchError(f"{option} is {text!r}; expected a duration such as 90s, 45m or 2h") from None
    if not seconds > 0:
        raise KdbenchError(f"{option} must be positive, got {text!r}")
    return seconds


def parse_resources(items: list[str]) -> dict[str, dict[str, float]]:
    """['distill=cpu:2,gpu:0.5'] -> {'distill': {'num_cpus': 2.0, 'num_gpus': 0.5}}."""
    kinds = ("finetune", "distill", "export", "evaluate")
    out: dict[str, dict[str, float]] = {}
    for item in items:
        kind, sep, spec = item.partition("=")
        if not sep or kind not in kinds:
            raise KdbenchError(
                f"--cell-resources takes KIND=cpu:N,gpu:M with KIND one of {', '.join(kinds)}; got {item!r}"
            )
        for part in spec.split(","):
            name, _, value = part.partition(":")
            try:
                amount = float(value)
            except ValueError:
                amount = -1.0
            if name not in ("cpu", "gpu") or not amount >= 0:
                raise KdbenchError(f"--cell-resources: {part!r} is not cpu:N or gpu:M with N, M at least 0")
            out.setdefault(kind, {})[f"num_{name}s"] = amount
    return out


def main() -> None:
    """Console-script entry point."""
    app(prog_name="kdbench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
