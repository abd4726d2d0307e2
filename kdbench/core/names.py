"""Name lookup with "did you mean" answers, shared by students, tasks, engines and every other named choice."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from kdbench.core.errors import ConfigError, KdbenchError


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f" (did you mean {close[0]!r}?)" if close else ""


def lookup(kind: str, name: str, table: dict):
    """Return table[name], or raise a KdbenchError naming the valid choices and the closest one."""
    if name in table:
        return table[name]
    choices = sorted(table)
    raise KdbenchError(f"unknown {kind} {name!r}{suggest(name, choices)}; choose from: {', '.join(choices)}")


def check_choice(setting: str, value, allowed) -> None:
    """Fail with the setting, the value, the allowed values and a "did you mean" when `value` is not allowed."""
    from kdbench.core.names import suggest

    allowed = tuple(allowed)
    if value not in allowed:
        hint = suggest(str(value), [str(a) for a in allowed])
        raise ConfigError(setting, f"is {value!r}{hint}; allowed: {', '.join(map(str, allowed))}")
