"""The `kdbench` command line: a thin shell over the library. Each command imports heavy libraries only when it runs.

User errors (KdbenchError) become one line on stderr and exit status 2; nothing half-written is left behind.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from kdbench.errors import KdbenchError
from kdbench.profile import DEFAULTS  # light: the profile module imports torch only when it runs

app = typer.Typer(
    help="Measure what knowledge distillation loses and what it buys at deployment.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
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
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; no result file was written")
            raise typer.Exit(130) from None

    return wrapper


def _ints(option: str, text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise KdbenchError(f"{option} takes comma-separated integers, e.g. 1,8; got {text!r}") from None


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(v.strip() for v in text.split(",") if v.strip())


TeacherOpt = Annotated[str, typer.Option(help="Teacher: hub id or local model folder (only its config is read). "
                                              "roberta-base is built in and needs no download.")]
StudentsDirOpt = Annotated[Optional[Path], typer.Option(help="Folder of student .toml files (default: the shipped "
                                                             "zoo in students/).")]


@app.command()
@user_errors
def students(
    teacher: TeacherOpt = "roberta-base",
    students_dir: StudentsDirOpt = None,
    select: Annotated[str, typer.Option("--students", help="Names or groups: paper, heads, pruned, custom, all.")] = "all",
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
    teacher: TeacherOpt = "roberta-base",
    select: Annotated[Optional[str], typer.Option("--students", help="Names or groups (paper, heads, pruned, custom, "
                                                   f"all), comma-separated. Default: {DEFAULTS['students']}. The teacher is "
                                                   "always profiled.")] = None,
    students_dir: StudentsDirOpt = None,
    backends: Annotated[Optional[str], typer.Option(help="Comma-separated: torch, onnxruntime. Default: both.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="fp32, or fp16/bf16 on cuda (torch backend).")] = "fp32",
    batch_sizes: Annotated[Optional[str], typer.Option(help=f"Comma-separated batch sizes. Default: {DEFAULTS['batch_sizes']}.")] = None,
    seq_lens: Annotated[Optional[str], typer.Option(help=f"Comma-separated sequence lengths. Default: {DEFAULTS['seq_lens']}.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Intra-op CPU threads. Default: all cores.")] = None,
    warmup: Annotated[Optional[int], typer.Option(help=f"Untimed warm-up calls per cell. Default: {DEFAULTS['warmup_runs']}.")] = None,
    warmup_time: Annotated[Optional[float], typer.Option(help="Seconds of warm-up per cell, at least. "
                                                         f"Default: {DEFAULTS['warmup_time_s']}.")] = None,
    min_runs: Annotated[Optional[int], typer.Option(help=f"Timed calls per cell, at least. Default: {DEFAULTS['min_runs']}.")] = None,
    min_time: Annotated[Optional[float], typer.Option(help="Seconds of timed calls per cell, at least. "
                                                      f"Default: {DEFAULTS['min_time_s']}.")] = None,
    max_time: Annotated[Optional[float], typer.Option(help=f"Seconds of timed calls per cell at most. Default: {DEFAULTS['max_time_s']}.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for random weights, inputs and the bootstrap.")] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Result JSON file (written atomically).")] = Path(
        "reports/profile.json"),
    quick: Annotated[bool, typer.Option("--quick", help="Small smoke grid: 3L, 4AH, 4AH_pruned at batch 1, "
                                                        "length 32, short cells.")] = False,
) -> None:
    """Time the teacher and its students on each backend x device x batch size x sequence length.

    Prints a table per (device, backend) with p50/p90 latency, coefficient of variation, throughput and the speed-up
    over the teacher with a 95 % bootstrap interval, then the attention-head verdict. With no options it runs the
    paper's zoo (and pruned-head variants) for roberta-base on CPU, both backends, batch sizes 1 and 8, length 128.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kdbench.io import check_writable
    from kdbench.profile import QUICK, ProfileConfig, run_profile
    from kdbench.render import head_table, print_all, profile_tables
    from kdbench.verdict import head_claim, head_verdicts

    given = dict(students=select, backends=_names(backends), batch_sizes=_ints("--batch-sizes", batch_sizes),
                 seq_lens=_ints("--seq-lens", seq_lens), threads=threads, warmup_runs=warmup,
                 warmup_time_s=warmup_time, min_runs=min_runs,
                 min_time_s=min_time, max_time_s=max_time)
    settings = {**(QUICK if quick else {}), **{k: v for k, v in given.items() if v is not None}}
    cfg = ProfileConfig(teacher=teacher, students_dir=students_dir, device=device, dtype=dtype, seed=seed,
                        output=output, **settings)
    check_writable(cfg.output)
    total = None
    started = time.perf_counter()
    with Progress(TextColumn("[progress.description]{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("planning", total=total)

        def progress(desc: str, advance: int) -> None:
            bar.update(task, description=desc, advance=advance)

        from kdbench.profile import plan

        n_models = len(plan(cfg).shapes)
        bar.update(task, total=n_models * len(cfg.backends) * len(cfg.batch_sizes) * len(cfg.seq_lens))
        result = run_profile(cfg, progress)
    result.save(cfg.output)
    lines = head_verdicts(result, cfg.seed)
    print_all(console, *profile_tables(result, cfg.seed), head_table(lines))
    for ln in lines:
        console.print(f"  {ln.student} ({ln.grid_key[1]}, {ln.grid_key[0]}, batch {ln.grid_key[3]}): "
                      f"[bold]{ln.outcome}[/] - {ln.reason}", soft_wrap=True, highlight=False)
    console.print(f"[bold]Head claim:[/] {head_claim(lines)}", soft_wrap=True)
    worst = max(result.cells, key=lambda c: c.stats.cv)
    console.print(f"{len(result.cells)} cells in {time.perf_counter() - started:.0f} s; largest CV "
                  f"{worst.stats.cv:.1%} ({worst.student}, {worst.backend}, batch {worst.batch_size}); "
                  f"results: {cfg.output}")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="kdbench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
