"""`kdbench students` and `kdbench profile`: the zoo for a teacher, and its timing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from kdbench.cli.app import app, console, progress_bar, started, user_errors
from kdbench.cli.options import StudentsDirOpt, TeacherOpt, parse_duration, parse_ints, parse_names
from kdbench.core.errors import KdbenchError
from kdbench.measure.config import DEFAULTS
from kdbench.zoo.teacher import DEFAULT_TEACHER

DEFAULT_BUDGET = "5m"  # the default profile decides its head verdict inside this on a 2-core machine


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
    from kdbench.judge.render import students_table
    from kdbench.measure.profile import ProfileConfig, describe_students, plan

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
            "(fp32), onnxruntime:O2 (ORT's transformer optimisations), onnxruntime:int8 (dynamic quantisation, CPU), "
            "onnxruntime:fp16 (CUDA); on cuda ONNX Runtime runs with IO binding (inputs and outputs on the device). "
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
    budget: Annotated[
        str,
        typer.Option(
            metavar="DURATION",
            help="Time for the whole profile (90s, 5m, 1h). Every cell gets its minimum first; what is left goes to "
            "the comparisons the head verdict rests on (head-reduced students against their teacher), measured in "
            "paired rounds until each is decided or the budget is spent; the summary says what an undecided one "
            "would still need. 0: the minimum only. The minimum of every cell is always measured, however long it "
            "takes. Ignored with --quick.",
        ),
    ] = DEFAULT_BUDGET,
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
    over the teacher with a 95 % interval, then the attention-head verdict. With no options it runs the paper's zoo
    (and pruned-head variants) for roberta-base on CPU, both backends, batch size 1, length 128, in about --budget.
    Only one group of models is open at a time: the teacher and the students compared with it.
    """
    from kdbench.judge.render import print_profile
    from kdbench.measure.profile import configure, plan, run_profile

    cfg = configure(
        quick,
        teacher=teacher,
        students=select if select is not None or not runs else "",  # with --runs: only the trained models
        students_dir=students_dir,
        backends=parse_names(backends, "--backends"),
        device=device,
        dtypes=parse_names(dtypes, "--dtypes"),
        dtype=dtype,
        batch_sizes=parse_ints("--batch-sizes", batch_sizes),
        seq_lens=parse_ints("--seq-lens", seq_lens),
        threads=threads,
        warmup_runs=warmup,
        warmup_time_s=warmup_time,
        min_runs=min_runs,
        min_blocks=min_blocks,
        min_time_s=min_time,
        max_time_s=max_time,
        budget_s=parse_duration("--budget", budget, zero=True) or None,  # 0: the minimum only
        seed=seed,
        output=output,
        runs=tuple(runs or ()),
        force=force,
        breakdown=breakdown,
    )
    p = plan(cfg)  # every user error surfaces here, before the progress display starts
    with progress_bar("starting") as bar:
        bar("starting", 0, p.count * len(cfg.backends) * len(cfg.dtypes) * len(cfg.batch_sizes) * len(cfg.seq_lens))
        result = run_profile(cfg, bar.advance, resolved=p, started=started())
    result.save(cfg.output)
    print_profile(console, result, cfg.seed, time.perf_counter() - started(), cfg.output)
