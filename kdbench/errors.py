"""The one exception type that means "the user asked for something we cannot do".

The CLI turns it into a single line on stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class KdbenchError(Exception):
    """A user error: bad input, missing file, unavailable device. Its message is shown as one line."""


class DeadlineReached(KdbenchError):
    """Training stopped at a wall-clock deadline after saving a checkpoint: rerunning the same command continues it."""
