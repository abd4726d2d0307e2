"""Options several commands share, and the parsing of option values (lists, durations, resources).

The defaults shown in --help come from the configuration dataclasses alone (read without importing torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdbench.core.errors import KdbenchError
from kdbench.zoo.teacher import DEFAULT_TEACHER


def parse_ints(option: str, text: str | None) -> tuple[int, ...] | None:
    """'1,8' -> (1, 8); an empty item ('1,,8') or a non-integer is refused (None: the option was not given)."""
    items = _items(option, text, "integers, e.g. 1,8")
    if items is None:
        return None
    try:
        return tuple(int(v) for v in items)
    except ValueError:
        raise KdbenchError(f"{option} takes comma-separated integers, e.g. 1,8; got {text!r}") from None


def parse_names(text: str | None, option: str = "the list") -> tuple[str, ...] | None:
    """'torch, onnxruntime' -> ('torch', 'onnxruntime'); an empty item is refused (None: the option was not given)."""
    return _items(option, text, "names, e.g. torch,onnxruntime")


def _items(option: str, text: str | None, expected: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(v.strip() for v in text.split(","))
    if not all(items):
        raise KdbenchError(f"{option} has an empty item in {text!r}; it takes comma-separated {expected}")
    return items


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


TASK_HELP = (
    "Task: a name (the shipped GLUE tasks cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli, or a task in "
    "--tasks-dir) or the path of a task file (TOML: data files or a hub dataset, text and label columns, labels, "
    "metrics; README: Tasks)."
)
TaskOpt = Annotated[str, typer.Option(help=TASK_HELP)]
TasksDirOpt = Annotated[
    Path | None, typer.Option(help="Folder of task .toml files (default: the shipped tasks in tasks/).")
]


def task_arg(text: str | None) -> str | None:
    """A --task value as recorded: a task file's absolute path (a run resumed elsewhere still finds it), or the
    name as typed."""
    if text is None:
        return None
    path = Path(text).expanduser()
    return str(path.resolve()) if path.is_file() else text


DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Local GLUE copy: <dir>/<task>/<split>.parquet or the classic glue_data/ TSV folders. Default: the hub."
    ),
]


def config_defaults():
    """The configuration dataclasses' defaults: the CLI's defaults and its help texts come from them alone."""
    from dataclasses import MISSING, fields

    from kdbench.train.config import DistillConfig, TrainConfig

    return {f.name: f.default for c in (TrainConfig, DistillConfig) for f in fields(c) if f.default is not MISSING}


# the defaults shown in --help (read from the dataclasses without importing torch: distill imports it lazily)
D = config_defaults()


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


def given_options(values: dict) -> dict:
    """The options a user typed (typer gives None for the others)."""
    return {k: v for k, v in values.items() if v is not None}


def train_settings(given: dict):
    from kdbench.train.config import TrainConfig

    return TrainConfig(**{k: v for k, v in given.items() if k in TRAIN_OPTIONS})


RunDirArg = Annotated[Path, typer.Argument(help="A run folder written by `kdbench distill`.")]


def parse_duration(option: str, text: str, zero: bool = False) -> float:
    """Seconds in '90', '90s', '45m' or '2h' (and 0 when `zero` allows it)."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise KdbenchError(f"{option} is {text!r}; expected a duration such as 90s, 45m or 2h") from None
    if not (seconds >= 0 if zero else seconds > 0):
        raise KdbenchError(f"{option} must be {'0 or more' if zero else 'positive'}, got {text!r}")
    if seconds == float("inf"):
        raise KdbenchError(f"{option} must be finite, got {text!r}")
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
