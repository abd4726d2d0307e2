"""Profile results: one schema-versioned JSON document, raw samples kept, statistics derived on load."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kdbench.core.errors import KdbenchError
from kdbench.core.io import atomic_write_json, read_json
from kdbench.measure.stats import LatencyStats

SCHEMA = "kdbench.profile"
SCHEMA_VERSION = 3  # 3: each cell records the round of every sample and how many sequential looks its comparison
# had (speed-ups pair rounds); 2: the measuring block of every sample; cells may carry first_call_s and warmup_s
READABLE_VERSIONS = (1, 2, 3)


def teacher_of(student: str) -> str:
    """The reference teacher of a student: "<task>/teacher" for trained run students ("rte/6L"), else "teacher"."""
    task, sep, _ = student.rpartition("/")
    return f"{task}/teacher" if sep else "teacher"


@dataclass(frozen=True)
class Cell:
    """One measured point of the grid: a student on a backend, device, dtype, batch size and sequence length."""

    student: str
    backend: str  # "torch" or "onnxruntime"
    device: str  # "cpu" or "cuda"
    dtype: str  # "fp32", "fp16", "bf16"
    batch_size: int  # sequences per call
    seq_len: int  # tokens per sequence
    threads: int  # intra-op threads
    attn_impl: str  # attention implementation (torch) or execution provider (onnxruntime)
    samples: tuple[float, ...]  # seconds per call, warm-up excluded
    warmup_runs: int = 0
    peak_memory_mb: float | None = None
    memory_kind: str = ""  # what peak_memory_mb measured: process_peak_rss or cuda_weights_plus_peak_activations
    blocks: tuple[int, ...] = ()  # the measuring block of each sample (empty in version 1 files)
    first_call_s: float | None = None  # seconds of the first untimed call (torch-compile compiles in it); None: unknown
    warmup_s: float | None = None  # seconds of all untimed warm-up calls before timing started; None: not kept
    rounds: tuple[int, ...] = ()  # the rotation round of each sample (version 3): speed-ups pair rounds
    looks: int = 0  # sequential looks at this cell's comparison with its teacher (0: none; see stats.look_alpha)

    @property
    def stats(self) -> LatencyStats:
        return LatencyStats.from_samples(self.samples)

    @property
    def sequences_per_s(self) -> float:
        """Sustained throughput: sequences processed over the total measured time."""
        return self.batch_size * len(self.samples) / sum(self.samples)

    @property
    def tokens_per_s(self) -> float:
        return self.sequences_per_s * self.seq_len

    def grid_key(self) -> tuple:
        """Where this cell sits in the grid, without the student."""
        return (self.device, self.backend, self.dtype, self.batch_size, self.seq_len)

    def key(self) -> tuple:
        return (self.student, *self.grid_key())

    def to_dict(self) -> dict:
        return {
            "student": self.student,
            "backend": self.backend,
            "device": self.device,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "threads": self.threads,
            "attn_impl": self.attn_impl,
            "warmup_runs": self.warmup_runs,
            "peak_memory_mb": self.peak_memory_mb,
            "memory_kind": self.memory_kind,
            "stats_s": self.stats.to_dict(),
            "sequences_per_s": self.sequences_per_s,
            "tokens_per_s": self.tokens_per_s,
            "samples_s": list(self.samples),
            "blocks": list(self.blocks),
            "first_call_s": self.first_call_s,
            "warmup_s": self.warmup_s,
            "rounds": list(self.rounds),
            "looks": self.looks,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Cell:
        """Rebuild from a dict; derived fields (stats, throughput) are recomputed from the samples."""
        samples = tuple(float(s) for s in d["samples_s"])
        if not samples:
            raise KdbenchError(f"cell {d.get('student')}/{d.get('backend')} has no samples")
        blocks = tuple(int(b) for b in d.get("blocks") or ())
        if blocks and len(blocks) != len(samples):
            raise KdbenchError(
                f"cell {d.get('student')}/{d.get('backend')} has {len(blocks)} block ids for {len(samples)} samples"
            )
        rounds = tuple(int(r) for r in d.get("rounds") or ())
        if rounds and len(rounds) != len(samples):
            raise KdbenchError(
                f"cell {d.get('student')}/{d.get('backend')} has {len(rounds)} round ids for {len(samples)} samples"
            )
        return cls(
            d["student"],
            d["backend"],
            d["device"],
            d["dtype"],
            int(d["batch_size"]),
            int(d["seq_len"]),
            int(d["threads"]),
            d["attn_impl"],
            samples,
            int(d.get("warmup_runs", 0)),
            d.get("peak_memory_mb"),
            d.get("memory_kind", ""),
            blocks,
            _seconds(d.get("first_call_s")),
            _seconds(d.get("warmup_s")),
            rounds,
            int(d.get("looks") or 0),
        )


def _seconds(value) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class ProfileResult:
    """Everything one `kdbench profile` run measured, with the environment and settings it ran under."""

    environment: dict
    settings: dict  # the grid and measuring rules
    teacher: dict  # name, model_type and shape
    students: dict[str, dict]  # name -> shape, parameters, flops per sequence by length
    cells: tuple[Cell, ...]
    skipped: tuple[dict, ...] = ()  # cells not measured, with the reason
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    breakdown: dict = field(default_factory=dict)  # --breakdown: model -> seconds and FLOPs per operator group

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created": self.created,
            "environment": self.environment,
            "settings": self.settings,
            "teacher": self.teacher,
            "students": self.students,
            "skipped": list(self.skipped),
            "cells": [c.to_dict() for c in self.cells],
            "breakdown": self.breakdown,
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "result") -> ProfileResult:
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise KdbenchError(f'{source} is not a kdbench profile result (no "schema": "{SCHEMA}")')
        if d.get("schema_version") not in READABLE_VERSIONS:
            raise KdbenchError(
                f"{source} has schema version {d.get('schema_version')!r}; this kdbench reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        try:
            cells = tuple(Cell.from_dict(c) for c in d["cells"])
            return cls(
                d["environment"],
                d["settings"],
                d["teacher"],
                d["students"],
                cells,
                tuple(d.get("skipped", ())),
                d["created"],
                d.get("breakdown") or {},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KdbenchError(f"{source} is a damaged kdbench profile result ({type(exc).__name__}: {exc})") from None

    @classmethod
    def from_json(cls, path: Path) -> ProfileResult:
        return cls.from_dict(read_json(path), str(path))

    def save(self, path: Path) -> None:
        """Write atomically: the file is either the old complete one or this complete one."""
        atomic_write_json(path, self.to_dict())

    def cell(self, student: str, grid_key: tuple) -> Cell | None:
        """The cell of `student` at `grid_key`, if measured."""
        for c in self.cells:
            if c.student == student and c.grid_key() == grid_key:
                return c
        return None

    def reference(self, cell: Cell) -> Cell | None:
        """The teacher cell a cell's speed-up is measured against: the same grid point (for a trained student, its
        own fine-tuned teacher); for an ONNX variant the teacher has not got, the teacher's fp32 ONNX cell."""
        name = teacher_of(cell.student)
        key = cell.grid_key()
        return self.cell(name, key) or self.cell(name, (key[0], key[1].split(":")[0], *key[2:]))

    def speedup(self, cell: Cell, seed: int = 0):
        """The cell's speed-up over its reference teacher cell (None without one), with its interval."""
        from kdbench.measure.stats import common_rounds, paired_speedup, speedup_interval

        ref = self.reference(cell)
        if ref is None:
            return None
        # version 3: rounds pair up - unless the two were timed apart (a run's ONNX variant against the teacher's
        # plain ONNX Runtime cell), when their blocks are independent observations, as in version 2
        if common_rounds(ref, cell) >= 2:
            return paired_speedup(ref, cell, cell.looks)
        return speedup_interval(
            ref.samples, cell.samples, seed, baseline_blocks=ref.blocks or None, candidate_blocks=cell.blocks or None
        )

    @property
    def smoke(self) -> bool:
        """A smoke run (`kdbench profile --quick`): its tables are shown, its verdicts never."""
        return bool(self.settings.get("smoke"))

    def grid_keys(self) -> list[tuple]:
        """Distinct (device, backend, dtype, batch, seq) points, in measuring order."""
        return list(dict.fromkeys(c.grid_key() for c in self.cells))
