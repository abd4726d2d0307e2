"""The one exception type that means "the user asked for something we cannot do".

The CLI turns it into a single line on stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class KdbenchError(Exception):
    """A user error: bad input, missing file, unavailable device. Its message is shown as one line."""


class DeadlineReached(KdbenchError):
    """Training stopped at a wall-clock deadline after saving a checkpoint: rerunning the same command continues it."""


class ConfigError(KdbenchError):
    """A configuration value out of range, named by its setting (`learning_rate`), not by a command-line flag: the CLI
    shows the flag (`--learning-rate`), a study file its file and field (`study.yaml: train.learning_rate`)."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting} {problem}")
        self.setting = setting  # the dataclass field
        self.problem = problem  # e.g. "must be positive, got -1"
