"""The `kdbench` command line: a thin shell over the library, one module per group of commands on the app in `app`
(profile: students, profile; train: finetune, distill; runs: export, evaluate, report, compare; study; recommend;
env), with shared options in `options`. Each command imports heavy libraries only when it runs. Imports any floor
below it; nothing imports cli.
"""

from kdbench.cli import env, profile, recommend, runs, study, train  # noqa: F401  (registers the commands)
from kdbench.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app(prog_name="kdbench")
