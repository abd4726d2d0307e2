"""The candidates `kdbench recommend` times, and the rule that shortlists the ones it trains.

Candidates are the student zoo (every group) and a generated space of shapes in the spirit of HAT's: every depth from
one layer to the teacher's, every width that is a whole number of the teacher's heads (heads keep the teacher's head
width), each with a feed-forward of 4x its width. All are written as student files into the recommendation's folder
(data, like the zoo), so the profile and the study read them as they read any student.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from kdbench.zoo.flops import sequence_flops
from kdbench.zoo.students import StudentShape, load_zoo, resolve
from kdbench.zoo.teacher import TeacherShape

GENERATED = "custom"  # the group generated shapes are written with


@dataclass(frozen=True)
class Candidate:
    """A shape that may be recommended."""

    name: str  # its student name (a zoo name, or L<layers>-D<hidden> for a generated shape)
    shape: StudentShape
    zoo: bool  # from the shipped (or given) zoo, not generated
    flops: int  # analytic forward FLOPs per sequence at the timed length: the capacity the shortlist ranks by


def generated_name(layers: int, hidden: int) -> str:
    return f"L{layers}-D{hidden}"


def write_space(folder: Path, zoo_dir: Path | None, teacher: TeacherShape) -> None:
    """The zoo's files and one file per generated shape, into `folder` (made anew: it is the recommendation's own)."""
    from kdbench.core.errors import KdbenchError
    from kdbench.zoo.students import default_students_dir

    source = Path(zoo_dir) if zoo_dir is not None else default_students_dir()
    if source.resolve() == Path(folder).resolve():
        raise KdbenchError(f"--students-dir {source} is the folder recommend writes its candidates into; pass another")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for path in sorted(source.glob("*.toml")):
        shutil.copyfile(path, folder / path.name)
    for layers in range(1, teacher.layers + 1):
        for heads in range(1, teacher.heads + 1):
            hidden = heads * teacher.head_dim
            name = generated_name(layers, hidden)
            (folder / f"{name}.toml").write_text(
                f'name = "{name}"\ndescription = "generated: {layers} layers, {heads} heads of {teacher.head_dim}, '
                f'hidden {hidden}, FFN 4x"\ngroup = "{GENERATED}"\nlayers = {layers}\nheads = {heads}\n'
                f'hidden = {hidden}\nffn = "4x"\n'
            )


def candidates(folder: Path, teacher: TeacherShape, seq_len: int) -> dict[str, Candidate]:
    """Every shape of the space, once: a generated shape the zoo already has (or the teacher's own) is left out."""
    out: dict[str, Candidate] = {}
    seen = {(teacher.layers, teacher.heads, teacher.head_dim, teacher.hidden, teacher.ffn)}
    specs = load_zoo(folder)
    for spec in sorted(specs.values(), key=lambda s: s.group == GENERATED):  # zoo names first
        shape = resolve(spec, teacher)
        key = (shape.layers, shape.heads, shape.head_dim, shape.hidden, shape.ffn)
        if key in seen:
            continue
        seen.add(key)
        out[shape.name] = Candidate(shape.name, shape, spec.group != GENERATED, sequence_flops(shape, seq_len))
    return out


RULE = (
    "Shortlist: among the candidates whose latency interval's upper end is within the budget on some engine, (1) the "
    "zoo student with the most FLOPs, (2) the shallow-wide shape with the most FLOPs (the teacher's width, fewer "
    "layers), (3) the deep-narrow one (the teacher's depth, narrower), then (4) the shapes on the latency frontier "
    "(no fitting shape has more FLOPs and a lower latency) from the most FLOPs down, until the shortlist is full."
)


def shortlist(fits: dict[str, float], pool: dict[str, Candidate], teacher: TeacherShape, k: int) -> list[tuple]:
    """(name, why) of up to `k` candidates to train, by RULE. `fits`: candidate -> the lowest latency upper bound over
    the engines it fits on."""
    fitting = [pool[n] for n in fits]
    by_flops = sorted(fitting, key=lambda c: (-c.flops, fits[c.name], c.name))
    chosen: list[tuple] = []

    def take(found, why: str) -> None:
        if found is not None and len(chosen) < k and found.name not in {n for n, _ in chosen}:
            chosen.append((found.name, why))

    take(next((c for c in by_flops if c.zoo), None), "the zoo student with the most FLOPs that fits")
    take(
        next((c for c in by_flops if not c.zoo and c.shape.hidden == teacher.hidden), None),
        "shallow-wide: the teacher's width, fewer layers",
    )
    take(
        next((c for c in by_flops if not c.zoo and c.shape.layers == teacher.layers), None),
        "deep-narrow: the teacher's depth, narrower",
    )
    frontier = [c for c in by_flops if not any(o.flops > c.flops and fits[o.name] < fits[c.name] for o in fitting)]
    for c in frontier:
        take(c, "on the latency frontier")
    return chosen
