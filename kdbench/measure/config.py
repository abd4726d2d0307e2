"""What `kdbench profile` measures and how long it measures each cell: ProfileConfig (validated on creation, every
error naming its setting), its defaults as --help shows them, the --quick settings, and `configure`, which the CLI
calls with the options a user typed."""

from __future__ import annotations

import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from kdbench.core.env import DEVICES
from kdbench.core.errors import ConfigError
from kdbench.core.names import check_choice
from kdbench.engines.base import DTYPES
from kdbench.engines.registry import BACKENDS
from kdbench.measure.stats import MIN_BLOCKS, MIN_SAMPLES
from kdbench.zoo.teacher import DEFAULT_TEACHER

DEFAULT_STUDENTS = "paper,pruned"  # the paper's eight and the pruned-head variants the head verdict compares against


@dataclass(frozen=True)
class ProfileConfig:
    """What `kdbench profile` measures and how long it measures each cell."""

    teacher: str = DEFAULT_TEACHER  # hub id or local model folder; only its config is read
    students: str = DEFAULT_STUDENTS  # comma-separated names or groups (paper, heads, pruned, custom, all)
    students_dir: Path | None = None  # folder of student .toml files; None: the shipped zoo
    backends: tuple[str, ...] = ("torch", "onnxruntime")  # inference engines to time
    device: str = "cpu"  # cpu or cuda
    dtypes: tuple[str, ...] = ("fp32",)  # precisions for PyTorch engines (bf16/fp16 on CPU need AMX or AVX512 for it)
    dtype: str | None = None  # one precision (the option's earlier, single form): sets dtypes
    batch_sizes: tuple[int, ...] = (1,)  # sequences per call (the default grid fits in about 5 minutes on 2 cores)
    seq_lens: tuple[int, ...] = (128,)  # tokens per sequence
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)  # intra-op threads on CPU
    warmup_runs: int = 2  # calls before timing starts (excluded from the samples)
    warmup_time_s: float = 0.5  # seconds of warm-up at least: caches, allocator and thread pools settle
    min_runs: int = MIN_SAMPLES  # timed calls at least (fewer: the cell carries no verdict)
    min_blocks: int = MIN_BLOCKS  # separate measuring blocks (~0.25 s each, interleaved) the calls must span at least
    smoke: bool = False  # a smoke run (--quick): tables only, never a verdict
    min_time_s: float = 1.0  # seconds of timed calls at least, per cell
    max_time_s: float = 20.0  # seconds per cell at most, even before min_runs (two samples are always taken)
    seed: int = 0  # seeds the random weights, the token ids and the bootstrap
    output: Path = Path("reports/profile.json")  # where the result file is written
    runs: tuple[
        Path, ...
    ] = ()  # run folders from `kdbench distill`: trained students, their teachers and ONNX variants
    force: bool = False  # also time a run's ONNX variants whose parity check failed (their speed is still real)
    breakdown: bool = False  # also attribute each model's eager PyTorch time to operator groups (first batch, length)
    budget_s: float | None = None  # seconds for the whole profile: the comparisons a verdict rests on are measured
    # beyond the minimum until they are decided or this is spent (None: the minimum only)

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        if self.dtype is not None:
            check_choice("dtype", self.dtype, DTYPES)
            object.__setattr__(self, "dtypes", (self.dtype,))
        if not isinstance(self.dtypes, tuple | list) or not self.dtypes:
            raise ConfigError("dtypes", f"must name at least one of: {', '.join(DTYPES)}")
        for d in self.dtypes:
            check_choice("dtypes", d, DTYPES)
        object.__setattr__(self, "dtypes", tuple(dict.fromkeys(self.dtypes)))
        if not isinstance(self.backends, tuple | list) or not self.backends:
            raise ConfigError("backends", f"must name at least one of: {', '.join(BACKENDS)}")
        for b in self.backends:
            check_choice("backends", b, BACKENDS)
        for name in ("batch_sizes", "seq_lens"):
            values = getattr(self, name)
            if not isinstance(values, tuple | list) or not values or not all(_positive_int(v) for v in values):
                raise ConfigError(name, f"must be positive integers, got {_shown(values)}")
        for name in ("threads", "min_runs", "min_blocks", "warmup_runs", "seed"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be an integer, got {getattr(self, name)!r}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError("seed", f"must be from 0 to 2**32 - 1, got {self.seed}")
        if self.threads < 1:
            raise ConfigError("threads", f"must be at least 1, got {self.threads}")
        if self.min_runs < 2:
            raise ConfigError("min_runs", f"must be at least 2 (a spread needs two samples), got {self.min_runs}")
        if self.min_blocks < 1:
            raise ConfigError("min_blocks", f"must be at least 1, got {self.min_blocks}")
        for name in ("warmup_runs", "warmup_time_s", "min_time_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise ConfigError(name, f"must be a finite number of at least 0, got {value!r}")
        max_time = self.max_time_s
        if isinstance(max_time, bool) or not isinstance(max_time, int | float) or not 0 < max_time < float("inf"):
            raise ConfigError("max_time_s", f"must be positive and finite, got {max_time!r}")
        if max_time < self.min_time_s:
            raise ConfigError(
                "max_time_s",
                f"is {max_time:g} s, less than the --min-time of {self.min_time_s:g} s (raise --max-time too)",
            )
        budget = self.budget_s
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget < float("inf")
        ):
            raise ConfigError("budget_s", f"must be a positive duration, got {budget!r}")
        if not isinstance(self.students, str):
            raise ConfigError("students", f"must be comma-separated names, got {self.students!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["students_dir"] = str(self.students_dir) if self.students_dir else None
        d["output"] = str(self.output)
        d["runs"] = [str(r) for r in self.runs]
        return d


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _shown(values) -> object:
    return list(values) if isinstance(values, tuple | list) else values


def _format(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


DEFAULTS = {f.name: _format(f.default) for f in fields(ProfileConfig) if f.default is not MISSING}  # for --help
QUICK = dict(
    students="3L,4AH,4AH_pruned",
    batch_sizes=(1,),
    seq_lens=(32,),
    warmup_runs=1,
    warmup_time_s=0.3,
    min_runs=5,
    min_blocks=1,
    min_time_s=0.3,
    max_time_s=5.0,
    smoke=True,
)  # --quick: a smoke run in seconds; it prints tables and no verdict


def configure(quick: bool = False, **given) -> ProfileConfig:
    """The configuration of one `kdbench profile`: the options given (None: not given), over the --quick settings
    when `quick`, over the defaults; its output file and device are checked before anything is measured."""
    from kdbench.core.env import check_device
    from kdbench.core.io import check_writable

    given = {k: v for k, v in given.items() if v is not None}
    settings = {**(QUICK if quick else {}), **given}
    if quick and "max_time_s" not in given and settings["min_time_s"] > settings["max_time_s"]:
        raise ConfigError("min_time_s", f"is {settings['min_time_s']:g} s, longer than --quick's --max-time of "
                          f"{settings['max_time_s']:g} s; give --max-time too, or leave --quick out")  # fmt: skip
    cfg = ProfileConfig(**settings)
    check_writable(cfg.output)
    check_device(cfg.device)
    return cfg
