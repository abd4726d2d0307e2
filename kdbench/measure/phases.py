"""The two phases of a profile. Phase one (Profiler.group): each group of models, each cell to its minimum, in
interleaved rounds. Phase two (Profiler.decide, with a budget): the comparisons a verdict rests on that are still
undecided, measured on (adapt) with sequential looks until decided or the budget is spent."""

from __future__ import annotations

from dataclasses import dataclass, field

from kdbench.core import faults
from kdbench.measure.clock import (
    BLOCK_S,
    Clock,
    Rotation,
    Target,
    measure_interleaved,
    round_seconds,
    warm_up,
)
from kdbench.measure.config import ProfileConfig
from kdbench.measure.models import Plan, Progress, make_inputs, open_group, release
from kdbench.measure.result import Cell


@dataclass
class _Measured:
    """One cell's measurements so far (samples, their blocks and rounds), and its first memory and warm-up."""

    memory: tuple
    warm: tuple
    engine: str = ""
    samples: list = field(default_factory=list)
    blocks: list = field(default_factory=list)
    rounds: list = field(default_factory=list)


@dataclass
class _Cells:
    """What has been measured so far, by (model, engine label, dtype, batch, length): samples, blocks and rounds
    accumulate (a teacher timed beside several groups keeps one cell, a comparison measured on in the deciding phase
    too), memory and warm-up are the first measurement's."""

    found: dict = field(default_factory=dict)
    looks: dict = field(default_factory=dict)

    def add(self, key: tuple, target: Target, memory, warm, engine: str, start: int = 0) -> None:
        """Add `target`'s samples from index `start` on (the ones before were added already)."""
        m = self.found.setdefault(key, _Measured(memory, warm))
        m.engine = engine
        m.samples += target.samples[start:]
        m.blocks += target.blocks[start:]
        m.rounds += target.rounds[start:]

    def resumed(self, key: tuple, target: Target) -> int:
        """Give `target` the samples of its cell so far (its comparison goes on from them); how many it holds."""
        m = self.found[key]
        target.samples, target.blocks, target.rounds = list(m.samples), list(m.blocks), list(m.rounds)
        target.spent = float(sum(m.samples))
        return len(target.samples)

    def cells(self, cfg: ProfileConfig) -> list[Cell]:
        out = []
        for (name, label, dtype, batch, seq), m in self.found.items():
            (mem, kind), (first, warm) = m.memory, m.warm
            out.append(
                Cell(
                    name, label, cfg.device, dtype, batch, seq, cfg.threads, m.engine, tuple(m.samples),
                    cfg.warmup_runs, mem, kind, tuple(m.blocks), first, warm, tuple(m.rounds),
                    self.looks.get((name, label, dtype, batch, seq), 0),
                )
            )  # fmt: skip
        return out


def warm_targets(cfg: ProfileConfig, sessions: dict, arrays: dict, clock: Clock, progress: Progress) -> dict:
    """Warm every session up at one (batch, seq) point and take its memory; name -> (Target, memory, warm-up)."""
    out = {}
    for name, session in sessions.items():
        inputs = session.prepare(arrays)
        progress(f"warming up {name}", 0)
        warm = warm_up(
            lambda s=session, x=inputs: s.run(x), session.synchronize, clock, cfg.warmup_runs, cfg.warmup_time_s
        )
        memory = session.memory(inputs)  # after warm-up: caches and workspaces exist, as in serving
        target = Target(name, lambda s=session, x=inputs: s.run(x), session.synchronize, min_blocks=cfg.min_blocks)
        out[name] = (target, memory, warm)
    return out


def adapt(
    teacher: Target, students: dict, looks: dict, rotation: Rotation, clock: Clock, until: float, progress
) -> None:
    """Measure undecided comparisons on: while one of `students` is undecided against `teacher` and time is left
    before `until`, time the teacher and the undecided students only, in rounds, and look again (stats.next_look) -
    each look spending its share of the error (`looks` counts them), so the interval where it stops is valid however
    it stopped."""
    from kdbench.measure.comparisons import decided
    from kdbench.measure.stats import common_rounds, next_look, paired_speedup

    def interval(name: str):
        return paired_speedup(teacher, students[name], looks[name])

    open_ = [n for n in students if not decided(interval(n))]
    while open_:
        common = common_rounds(teacher, students[open_[0]])
        rounds = next_look(common) - common
        needed = rounds * round_seconds([teacher, *(students[n] for n in open_)]) * 1.2  # 20 %: loop and jitter
        if clock.now() + needed > until:
            return
        progress(f"deciding {', '.join(open_)} against {teacher.name} ({common} rounds)", 0)
        measure_interleaved(
            [teacher, *(students[n] for n in open_)], clock, 0, 0.0, float("inf"), BLOCK_S, rotation=rotation,
            rounds=rounds,
        )  # fmt: skip
        for n in open_:
            looks[n] += 1
        open_ = [n for n in open_ if not decided(interval(n))]


@dataclass
class Profiler:
    """The state one profile carries from group to group: what was measured, the rotation's round numbers, the
    teachers' eager models (built once per engine and precision), and what opening a group cost per engine."""

    cfg: ProfileConfig
    p: Plan
    clock: Clock
    progress: Progress
    vocab: int
    measured: _Cells = field(default_factory=_Cells)
    rotation: Rotation = field(default_factory=Rotation)
    teachers: dict = field(default_factory=dict)
    opening_s: dict = field(default_factory=dict)  # (engine, dtype) -> most seconds a group took to open

    def group(self, backend, dtype: str, names: list[str]) -> None:
        """Phase one for one group on one engine: open its sessions, give every cell its minimum at every grid
        point; the sessions close on return."""
        cfg, progress = self.cfg, self.progress
        opened = self.clock.now()
        by_label = open_group(self.p, cfg, backend, dtype, names, self.teachers, progress)  # every session built here
        key = (backend.name, dtype)
        self.opening_s[key] = max(self.opening_s.get(key, 0.0), self.clock.now() - opened)
        for label, sessions in by_label.items():
            counted = label == backend.name  # a trained run's ONNX variants are extra cells, not the grid's
            for seq in cfg.seq_lens:
                for batch in cfg.batch_sizes:
                    point = (dtype, batch, seq)
                    arrays = make_inputs(self.vocab, batch, seq, cfg.seed)
                    warmed = warm_targets(cfg, sessions, arrays, self.clock, progress)
                    measure_interleaved(
                        [t for t, _, _ in warmed.values()], self.clock, cfg.min_runs, cfg.min_time_s,
                        cfg.max_time_s, BLOCK_S, rotation=self.rotation,
                        on_block=lambda t: progress(f"timing {t.name} ({len(t.samples)} runs)", 0),
                    )  # fmt: skip
                    # a teacher timed beside several groups is one cell: the progress bar counts it once
                    fresh = [n for n in warmed if (n, label, *point) not in self.measured.found]
                    for n, (target, memory, warm) in warmed.items():
                        self.measured.add((n, label, *point), target, memory, warm, sessions[n].engine)
                    progress(f"{label} {dtype} b={batch} n={seq} done", len(fresh) if counted else 0)
                    faults.point("profile")

    def undecided(self, engines: list, groups: list) -> list[tuple]:
        """(backend, dtype, teacher, {point: [students]}) for each engine and precision and each teacher with a
        comparison still undecided after phase one, the one likeliest to be decided soonest first. This is every
        verdict comparison's first look (stats.look_alpha: it spends the first share of the error)."""
        from kdbench.measure.comparisons import decided, rounds_to_decide
        from kdbench.measure.stats import paired_speedup

        verdicts: dict[str, list[str]] = {}
        for names, verdict in groups:
            verdicts.setdefault(names[0], []).extend(verdict)
        out = []
        for backend, dtype in engines:
            for teacher, students in verdicts.items():
                points, need = {}, 0
                for batch in self.cfg.batch_sizes:
                    for seq in self.cfg.seq_lens:
                        key = (backend.name, dtype, batch, seq)
                        ref = self.measured.found.get((teacher, *key))
                        for n in students:
                            if ref is None or (n, *key) not in self.measured.found:
                                continue
                            self.measured.looks[(n, *key)] = 1
                            speed = paired_speedup(ref, self.measured.found[(n, *key)], 1)
                            if not decided(speed):
                                points.setdefault((dtype, batch, seq), []).append(n)
                                need += rounds_to_decide(speed) or 10**6
                if points:
                    out.append((need, len(out), (backend, dtype, teacher, points)))
        return [item for _, _, item in sorted(out)]

    def look_s(self, label: str, point: tuple, teacher: str, students: list) -> float:
        """What one grid point's undecided comparisons cost before they can decide anything again: warming the
        teacher and the students up (as long as it took in phase one) and their next look."""
        from kdbench.measure.stats import common_rounds, next_look

        cells = [self.measured.found[(n, label, *point)] for n in (teacher, *students)]
        common = common_rounds(cells[0], cells[1])
        warm = sum(m.warm[1] for m in cells)
        return warm + (next_look(common) - common) * round_seconds(cells) * 1.2  # 20 %: loop and jitter

    def first_look_s(self, backend, dtype: str, teacher: str, points: dict) -> float:
        """What reopening an engine's undecided comparisons costs before they can decide anything: opening its models
        (as a group took in phase one) and the first point's warm-up and next look."""
        point, students = next(iter(points.items()))
        return self.opening_s.get((backend.name, dtype), 0.0) + self.look_s(backend.name, point, teacher, students)

    def decide(self, engines: list, groups: list, until: float) -> None:
        """Phase two: the undecided comparisons, engine by engine (an equal share of the time left each; what one
        does not use passes to the next, and one whose share cannot pay for reopening and one look is skipped), each
        reopening only the teacher and its undecided students."""
        pending = self.undecided(engines, groups)
        for k, (backend, dtype, teacher, points) in enumerate(pending):
            share_end = self.clock.now() + (until - self.clock.now()) / (len(pending) - k)
            if share_end - self.clock.now() < self.first_look_s(backend, dtype, teacher, points):
                continue
            names = [teacher, *dict.fromkeys(n for ns in points.values() for n in ns)]
            sessions = open_group(self.p, self.cfg, backend, dtype, names, {}, self.progress)[backend.name]
            for j, (point, students) in enumerate(points.items()):
                point_end = self.clock.now() + (share_end - self.clock.now()) / (len(points) - j)
                if point_end - self.clock.now() < self.look_s(backend.name, point, teacher, students):
                    continue  # its share cannot pay for a warm-up and one look: left undecided, on budget
                self.decide_point(backend.name, sessions, point, teacher, students, point_end)
            del sessions
            release(self.cfg)

    def decide_point(self, label: str, sessions: dict, point: tuple, teacher: str, students: list, until: float):
        """Warm the teacher and its undecided students up again and measure on from their samples so far."""
        _, batch, seq = point
        chosen = {n: sessions[n] for n in (teacher, *students)}
        warmed = warm_targets(self.cfg, chosen, make_inputs(self.vocab, batch, seq, self.cfg.seed), self.clock,
                               self.progress)  # fmt: skip
        starts = {n: self.measured.resumed((n, label, *point), t) for n, (t, _, _) in warmed.items()}
        looks = {n: self.measured.looks[(n, label, *point)] for n in students}
        targets = {n: t for n, (t, _, _) in warmed.items()}
        adapt(targets[teacher], {n: targets[n] for n in students}, looks, self.rotation, self.clock, until,
              self.progress)  # fmt: skip
        for n, (target, memory, warm) in warmed.items():
            self.measured.add((n, label, *point), target, memory, warm, chosen[n].engine, starts[n])
        self.measured.looks.update({(n, label, *point): k for n, k in looks.items()})
