"""`kdbench compare`: a regression gate over two sets of results that holds on noisy machines.

Both kdbench profile results and pytest-benchmark JSON files are read into one form: a measured *cell* with its raw
samples (or, for pytest-benchmark files saved without `--benchmark-save-data`, its summary statistics).

Ratio mode (the default, for CI) compares each student's latency *relative to the teacher measured in the same run*,
so a slower or busier machine, which slows teacher and students alike, does not fail the check. Absolute mode compares
the times themselves. Either way a change is a regression only when it exceeds the threshold **and** its 95 %
bootstrap interval lies wholly above "no change" - i.e. it is outside the noise the samples show.

Each side may hold several runs (a folder of result files). Then a cell's value is the median over runs, and the
interval is drawn from a mixture: a random run, then a bootstrap of that run's samples - so run-to-run noise (a
process that lands on a slower core, a different memory layout), which the samples of one run cannot show, widens it.
A baseline of several runs is what makes a gate quiet on a shared machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdbench.core.errors import KdbenchError
from kdbench.core.io import read_json
from kdbench.measure.result import SCHEMA as PROFILE_SCHEMA
from kdbench.measure.result import ProfileResult
from kdbench.zoo.students import TEACHER_NAME

STATS = ("min", "p50", "mean", "p90")
RESAMPLES = 2000


@dataclass(frozen=True)
class Measured:
    """One cell's timings, whatever file it came from."""

    student: str
    grid: tuple  # everything but the student: (device, backend, dtype, batch, seq) or a benchmark group
    run: str = ""  # the file it came from: ratio mode pairs a student with the teacher of the same run
    samples: tuple[float, ...] = ()  # raw per-call seconds, when the file kept them
    summary: dict = field(default_factory=dict)  # min/p50/mean/p90/std when only statistics were saved

    def stat(self, name: str, samples=None) -> float:
        x = self.samples if samples is None else samples
        if len(x):
            return float(
                {"min": np.min, "p50": np.median, "mean": np.mean, "p90": lambda a: np.percentile(a, 90)}[name](x)
            )
        if name not in self.summary:
            raise KdbenchError(f"{self.student}: statistic {name!r} is not in the file; use --stat p50 or mean")
        return float(self.summary[name])

    @property
    def cv(self) -> float:
        if len(self.samples) > 1:
            return float(np.std(self.samples, ddof=1) / np.mean(self.samples))
        return float(self.summary.get("std", 0.0) / self.summary["mean"]) if self.summary.get("mean") else 0.0


# --------------------------------------------------------------------------------------------------------- reading
def _from_profile(doc: dict, source: str) -> dict[tuple, Measured]:
    result = ProfileResult.from_dict(doc, source)
    return {c.key(): Measured(c.student, c.grid_key(), source, c.samples) for c in result.cells}


def _from_pytest_benchmark(doc: dict, source: str) -> dict[tuple, Measured]:
    out = {}
    for b in doc["benchmarks"]:
        if not isinstance(b, dict) or not isinstance(b.get("stats") or {}, dict):
            raise KdbenchError(f"{source}: every entry of 'benchmarks' must be an object with 'stats', got {b!r:.60}")
        info = b.get("extra_info") or {}
        stats = b.get("stats") or {}
        student = info.get("student", b.get("name"))
        grid = tuple(info.get("grid", [])) or (b.get("group") or "",)
        data = tuple(float(x) for x in stats.get("data", ()) or ())
        summary = {
            "min": stats.get("min"),
            "p50": stats.get("median"),
            "mean": stats.get("mean"),
            "std": stats.get("stddev"),
        }
        if not data and summary["mean"] is None:
            raise KdbenchError(f"{source}: benchmark {b.get('name')!r} has neither data nor stats")
        out[(student, *grid)] = Measured(
            student, grid, source, data, {k: v for k, v in summary.items() if v is not None}
        )
    return out


Runs = dict[tuple, list[Measured]]  # cell key -> one Measured per run (file)


def _guarded(reader, doc: dict, path: Path) -> dict[tuple, Measured]:
    """A reader's result, with any malformed field turned into one line naming the file."""
    try:
        return reader(doc, str(path))
    except KdbenchError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise KdbenchError(f"{path}: malformed result file ({type(exc).__name__}: {str(exc)[:120]})") from None


def read_results(path: Path) -> tuple[str, Runs]:
    """(kind, cells) from a result file, or from every *.json in a folder (each file one run, all of one kind)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise KdbenchError(f"{path} holds no *.json result files")
    elif path.exists():
        files = [path]
    else:
        raise KdbenchError(f"no such file or folder: {path}")
    kinds, cells = set(), {}
    for f in files:
        doc = read_json(f)
        if isinstance(doc, dict) and doc.get("schema") == PROFILE_SCHEMA:
            kinds.add("kdbench")
            found = _guarded(_from_profile, doc, f)
        elif isinstance(doc, dict) and isinstance(doc.get("benchmarks"), list) and "machine_info" in doc:
            kinds.add("pytest-benchmark")
            found = _guarded(_from_pytest_benchmark, doc, f)
        elif isinstance(doc, dict) and str(doc.get("schema", "")).startswith("kdbench."):
            raise KdbenchError(f"{f} is a {doc['schema']} file, not profile results")
        else:
            raise KdbenchError(f"{f} is neither a kdbench profile result nor a pytest-benchmark JSON file")
        for key, m in found.items():
            cells.setdefault(key, []).append(m)
    if len(kinds) > 1:
        raise KdbenchError(f"{path} mixes kdbench and pytest-benchmark results; compare them separately")
    return kinds.pop(), cells


# ------------------------------------------------------------------------------------------------------ comparing
def parse_percent(text: str, option: str = "--max-slowdown") -> float:
    """'10%', '10' or '0.1' -> 0.10."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", str(text))
    if not m:
        raise KdbenchError(f"{option} takes a percentage such as 10% or 0.1, got {text!r}")
    value = float(m.group(1))
    value = value / 100 if m.group(2) or value >= 1 else value
    if not 0 < value < 10:
        raise KdbenchError(f"{option} must be a positive percentage, got {text!r}")
    return value


def parse_overrides(items: list[str]) -> dict[str, float]:
    """['3L=20%', ...] -> {'3L': 0.2}."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise KdbenchError(f"--threshold takes STUDENT=PERCENT (e.g. 3L=20%), got {item!r}")
        out[name.strip()] = parse_percent(value, f"--threshold {name.strip()}")
    return out


@dataclass(frozen=True)
class Row:
    """One compared cell."""

    student: str
    grid: tuple
    baseline: float  # the statistic (ratio mode: student / teacher)
    current: float
    change: float  # current / baseline: > 1 is slower
    low: float  # 95 % interval of the change
    high: float
    threshold: float
    verdict: str  # "regression", "improvement", "ok", "inside noise"

    def to_dict(self) -> dict:
        return {
            k: getattr(self, k)
            for k in ("student", "grid", "baseline", "current", "change", "low", "high", "threshold", "verdict")
        }


def _draws(m: Measured, stat: str, rng, n: int) -> np.ndarray:
    """Bootstrap draws of the statistic; from summary statistics, a normal approximation of its spread."""
    if len(m.samples) > 1:
        x = np.asarray(m.samples)
        resampled = rng.choice(x, size=(n, x.size), replace=True)
        fn = {"min": np.min, "p50": np.median, "mean": np.mean, "p90": lambda a, axis: np.percentile(a, 90, axis)}[stat]
        return fn(resampled, axis=1)
    centre = m.stat(stat)
    rounds = max(2, int(m.summary.get("rounds", 10)))
    return centre * (1 + rng.standard_normal(n) * m.cv / np.sqrt(rounds))


def _verdict(change: float, low: float, high: float, threshold: float) -> str:
    if change > 1 + threshold:
        return "regression" if low > 1 else "inside noise"
    if change < 1 / (1 + threshold) and high < 1:
        return "improvement"
    return "ok"


def _side(runs: list[Measured], cells: Runs, stat: str, ratio: bool, rng, side: str) -> tuple[float, np.ndarray]:
    """(value, draws) of one side of a cell: the median over runs, and mixture-bootstrap draws."""
    values, draws = [], []
    for m in runs:
        d, v = _draws(m, stat, rng, RESAMPLES), m.stat(stat)
        if ratio:
            ref = _reference(cells, m, side)
            d, v = d / _draws(ref, stat, rng, RESAMPLES), v / ref.stat(stat)
        values.append(v)
        draws.append(d)
    pick = rng.integers(len(runs), size=RESAMPLES)  # a random run, then that run's own bootstrap draw
    return float(np.median(values)), np.stack(draws)[pick, np.arange(RESAMPLES)]


def compare(
    baseline: Runs,
    current: Runs,
    stat: str = "p50",
    ratio: bool = True,
    max_slowdown: float = 0.10,
    overrides: dict[str, float] | None = None,
    allow_partial: bool = False,
    seed: int = 0,
) -> list[Row]:
    """Compare every common cell; raises KdbenchError when the inputs cannot be compared."""
    if stat not in STATS:
        raise KdbenchError(f"--stat is {stat!r}; allowed: {', '.join(STATS)}")
    overrides = overrides or {}
    common = [k for k in baseline if k in current]
    only = sorted({str(k) for k in baseline.keys() ^ current.keys()})
    if not common:
        raise KdbenchError("the two result sets share no cell (student and grid point); nothing to compare")
    if only and not allow_partial:
        raise KdbenchError(
            f"the grids differ ({len(only)} cells in only one of them, e.g. {only[0]}); pass "
            "--allow-partial to compare the common cells"
        )
    unknown = set(overrides) - {k[0] for k in common}
    if unknown:
        raise KdbenchError(f"--threshold names student(s) not in both results: {', '.join(sorted(unknown))}")
    rng = np.random.default_rng(seed)
    rows = []
    for key in common:
        student, grid = key[0], key[1:]
        if ratio and student == TEACHER_NAME:
            continue  # the reference itself: its ratio is 1 by definition
        bv, bd = _side(baseline[key], baseline, stat, ratio, rng, "baseline")
        cv, cd = _side(current[key], current, stat, ratio, rng, "current")
        low, high = np.quantile(cd / bd, [0.025, 0.975])
        thr = overrides.get(student, max_slowdown)
        rows.append(
            Row(
                student,
                grid,
                bv,
                cv,
                cv / bv,
                float(low),
                float(high),
                thr,
                _verdict(cv / bv, float(low), float(high), thr),
            )
        )
    if not rows:
        raise KdbenchError("ratio mode needs students besides the teacher; nothing to compare")
    return rows


def _reference(cells: Runs, m: Measured, side: str) -> Measured:
    """The teacher measured at the same grid point in the same run as `m`."""
    for ref in cells.get((TEACHER_NAME, *m.grid), []):
        if ref.run == m.run:
            return ref
    raise KdbenchError(
        f"ratio mode: {m.run} ({side}) has no teacher measured at {m.grid}; profile the teacher too or pass --absolute"
    )
