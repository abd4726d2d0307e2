"""The typer application every command registers on, the console, and the edge where errors become one line.

User errors (KdbenchError) become one line on stderr and exit status 2; usage errors too; Ctrl-C is status 130.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from kdbench.core.errors import ConfigError, KdbenchError


class OneLineErrors(TyperGroup):
    """Usage errors (an unknown option or command, a missing or malformed value) as one line and status 2, like
    every other user error, instead of a usage box. Only typer's public exceptions are caught: TyperException is the
    base of every usage error typer raises (typer 0.29 and later carry their own click)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        _started[0] = time.perf_counter()
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


def quiet_libraries() -> None:
    """Hide the progress bars datasets draws for every tokenisation (kdbench shows its own for long work, and a
    command that fails must print one line, not a bar before it); download bars of the hub stay."""
    import os

    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # for datasets when it is imported later
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()


def user_errors(fn):
    """Turn KdbenchError into one clear line and exit status 2; Ctrl-C into status 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        quiet_libraries()
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


_started = [time.perf_counter()]  # when the current command started: OneLineErrors.main sets it on every call


def started() -> float:
    """`time.perf_counter()` when the current command started (`profile --budget` counts from it)."""
    return _started[0]


# settings whose option is not simply --<setting with dashes>
FLAGS = {
    "min_time_s": "--min-time",
    "max_time_s": "--max-time",
    "warmup_runs": "--warmup",
    "warmup_time_s": "--warmup-time",
    "budget_s": "--budget",
}


def flag(setting: str) -> str:
    """The command-line option of a configuration setting (library errors name settings, users type options)."""
    return FLAGS.get(setting, "--" + setting.replace("_", "-"))


@contextlib.contextmanager
def progress_bar(description: str, eta: bool = False):
    """A transient progress bar on stderr for long work; yields `update(description, completed, total, left_s)`:
    with `eta` it shows the time left (seconds, None while unknown), else the time elapsed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    last = TextColumn("{task.fields[eta]}") if eta else TimeElapsedColumn()
    with Progress(
        TextColumn("[progress.description]{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        last,
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None, eta="")

        def update(text: str, completed: int | None = None, total: int | None = None, left: float | None = None):
            fields = {"eta": f"~{left / 60:.0f} min left" if left is not None else ""}
            bar.update(task, description=text, completed=completed, total=total, **fields)

        update.advance = lambda text, n: bar.update(task, description=text, advance=n)
        yield update
