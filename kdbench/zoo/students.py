"""The student zoo: declarative TOML files in `students/`, resolved against a teacher's shape.

A student file says how each dimension relates to the teacher. Every size takes one of:
  * an integer         -> an absolute number             (`layers = 3`)
  * a float or "a/b"   -> a fraction of the teacher's     (`layers = 0.5`, `heads = "1/3"`)
`ffn` also takes "Nx" (N times the student's own hidden size); `head_dim = "teacher"` keeps the teacher's head width
so that fewer heads really shrink the attention projections (pruned heads).

Rounding rules (so one zoo fits any teacher): layers and heads round half up (at least 1); a hidden size given as a
fraction rounds to the nearest multiple of the head count (ties up), so every head has a whole width (an absent hidden
size is the teacher's, exactly); an FFN size given as a fraction or multiple rounds half up.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from kdbench.core.errors import KdbenchError
from kdbench.core.names import suggest
from kdbench.zoo.teacher import TeacherShape

GROUPS = ("paper", "heads", "pruned", "custom")
FIELDS = ("name", "description", "group", "layers", "heads", "hidden", "ffn", "head_dim")
TEACHER_NAME = "teacher"


Size = int | Fraction  # int: absolute; Fraction: relative to the teacher (or to hidden for ffn "Nx")


@dataclass(frozen=True)
class StudentSpec:
    """One student file, parsed and checked but not yet applied to a teacher."""

    name: str  # what users type in --students
    description: str  # one line shown in tables
    group: str  # one of GROUPS; `--students paper` selects a whole group
    layers: Size  # transformer blocks
    heads: Size  # attention heads per block
    hidden: Size | None  # model width; None: the teacher's, exactly
    ffn: Size | None  # FFN inner width; None: keep the teacher's FFN/hidden ratio
    ffn_times_hidden: bool  # True when ffn was written "Nx" (a multiple of the student's hidden size)
    head_dim: int | str | None  # None: hidden/heads; "teacher": the teacher's head width; int: absolute
    source: str = ""  # the file it came from, for error messages

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise KdbenchError(f"{self.source}: field 'group' is {self.group!r}; allowed: {', '.join(GROUPS)}")


@dataclass(frozen=True)
class StudentShape:
    """A student (or the teacher) with every size resolved to an absolute number."""

    name: str
    description: str
    group: str
    layers: int  # transformer blocks
    heads: int  # attention heads per block
    head_dim: int  # width of one head
    hidden: int  # model width
    ffn: int  # FFN inner width
    config_heads: int = field(default=0)  # heads in the transformers config before pruning (0: same as heads)

    @property
    def attn_dim(self) -> int:
        """Width of the Q/K/V projections: heads x head_dim (equals hidden unless heads were pruned)."""
        return self.heads * self.head_dim

    @property
    def pruned(self) -> bool:
        """True when the attention projections are narrower than the hidden size."""
        return self.attn_dim != self.hidden

    def key(self) -> str:
        """A string that identifies the architecture (not the name): used for caches."""
        return f"L{self.layers}-H{self.heads}x{self.head_dim}-D{self.hidden}-F{self.ffn}"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "group": self.group,
            "layers": self.layers,
            "heads": self.heads,
            "head_dim": self.head_dim,
            "hidden": self.hidden,
            "ffn": self.ffn,
            "pruned": self.pruned,
        }


def teacher_as_student(t: TeacherShape) -> StudentShape:
    """The teacher in the same form as a student, so it is profiled by the same code."""
    return StudentShape(
        TEACHER_NAME, f"the teacher ({t.name})", "teacher", t.layers, t.heads, t.head_dim, t.hidden, t.ffn, t.heads
    )


# ----------------------------------------------------------------------------------------------------------- parsing
def _parse_size(value, fld: str, source: str, allow_times: bool = False) -> tuple[Size, bool]:
    """Parse one size field; return (size, written_as_Nx)."""
    allowed = 'a positive integer, a fraction of the teacher (0.5 or "1/2")' + (', or "Nx"' if allow_times else "")
    bad = KdbenchError(f"{source}: field {fld!r} is {value!r}; allowed: {allowed}")
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int):
        if value <= 0:
            raise KdbenchError(f"{source}: field {fld!r} is {value}; sizes must be positive")
        return value, False
    if isinstance(value, float):
        frac = Fraction(value).limit_denominator(10_000)
    elif isinstance(value, str):
        text = value.strip()
        if allow_times and text.lower().endswith("x"):
            try:
                frac = Fraction(text[:-1])
            except (ValueError, ZeroDivisionError):
                raise bad from None
            if frac <= 0:
                raise KdbenchError(f"{source}: field {fld!r} is {value!r}; the multiple must be positive")
            return frac, True
        try:
            frac = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise bad from None
    else:
        raise bad
    if frac <= 0:
        raise KdbenchError(f"{source}: field {fld!r} is {value!r}; sizes must be positive")
    if frac > 1:
        raise KdbenchError(f"{source}: field {fld!r} is {value!r}; a fraction of the teacher must be at most 1")
    return frac, False


def parse_spec(data: dict, source: str, default_name: str) -> StudentSpec:
    """Check a student file's table and turn it into a StudentSpec."""
    for key in data:
        if key not in FIELDS:
            raise KdbenchError(f"{source}: unknown field {key!r}{suggest(key, FIELDS)}; allowed: {', '.join(FIELDS)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip() or name == TEACHER_NAME or "," in name:
        raise KdbenchError(f"{source}: field 'name' is {name!r}; give a non-empty name without commas, not 'teacher'")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise KdbenchError(f"{source}: field 'description' must be a string")
    sizes = {f: _parse_size(data.get(f, 1.0), f, source)[0] for f in ("layers", "heads")}
    sizes["hidden"] = _parse_size(data["hidden"], "hidden", source)[0] if "hidden" in data else None
    ffn, times = (None, False) if "ffn" not in data else _parse_size(data["ffn"], "ffn", source, allow_times=True)
    head_dim = data.get("head_dim")
    if (
        head_dim is not None
        and head_dim != "teacher"
        and not (isinstance(head_dim, int) and not isinstance(head_dim, bool) and head_dim > 0)
    ):
        raise KdbenchError(f"{source}: field 'head_dim' is {head_dim!r}; allowed: a positive integer or \"teacher\"")
    return StudentSpec(
        name=name,
        description=description,
        group=data.get("group", "custom"),
        ffn=ffn,
        ffn_times_hidden=times,
        head_dim=head_dim,
        source=source,
        **sizes,
    )


def load_spec(path: Path) -> StudentSpec:
    """Read and check one student file."""
    from kdbench.core.io import read_text

    text = read_text(path, "student file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KdbenchError(f"{path}: not valid TOML ({exc})") from None
    return parse_spec(data, str(path), path.stem)


# -------------------------------------------------------------------------------------------------------- resolving
def _round_half_up(x: Fraction | float) -> int:
    return math.floor(Fraction(x) + Fraction(1, 2))


def _absolute(size: Size, teacher_value: int) -> int:
    return size if isinstance(size, int) else max(1, _round_half_up(size * teacher_value))


def resolve(spec: StudentSpec, t: TeacherShape) -> StudentShape:
    """Apply a student file to a teacher, checking that the teacher can host it."""
    src = spec.source or spec.name
    layers = _absolute(spec.layers, t.layers)
    if layers > t.layers:
        raise KdbenchError(f"{src}: 'layers' resolves to {layers}, more than the teacher's {t.layers}")
    heads = _absolute(spec.heads, t.heads)
    if spec.hidden is None:
        hidden = t.hidden
    elif isinstance(spec.hidden, int):
        hidden = spec.hidden
    else:  # a fraction: round to the nearest multiple of the head count so every head has a whole width
        unit = heads if spec.head_dim is None else 1
        hidden = max(unit, _round_half_up(spec.hidden * t.hidden / unit) * unit)
    if spec.head_dim is None:
        if hidden % heads:
            raise KdbenchError(
                f"{src}: {heads} heads do not divide hidden size {hidden}; choose heads that divide it "
                f"({', '.join(str(d) for d in range(1, hidden + 1) if hidden % d == 0 and d <= 64)}) "
                "or set head_dim"
            )
        head_dim = hidden // heads
    else:
        head_dim = t.head_dim if spec.head_dim == "teacher" else int(spec.head_dim)
    config_heads = heads
    if heads * head_dim != hidden:  # pruned heads: built with hidden/head_dim heads, then cut to `heads`
        if hidden % head_dim:
            raise KdbenchError(f"{src}: head_dim {head_dim} does not divide hidden size {hidden}")
        config_heads = hidden // head_dim
        if heads > config_heads:
            raise KdbenchError(f"{src}: {heads} heads of width {head_dim} exceed hidden size {hidden}")
    if spec.ffn is None:
        ffn = _round_half_up(Fraction(t.ffn, t.hidden) * hidden)
    elif spec.ffn_times_hidden:
        ffn = max(1, _round_half_up(spec.ffn * hidden))
    else:
        ffn = _absolute(spec.ffn, t.ffn)
    return StudentShape(spec.name, spec.description, spec.group, layers, heads, head_dim, hidden, ffn, config_heads)


# -------------------------------------------------------------------------------------------------------------- zoo
def default_students_dir() -> Path:
    """The zoo shipped with kdbench: `students/` of a source checkout, else the copy bundled in the wheel."""
    here = Path(__file__).resolve().parent  # kdbench/zoo
    for candidate in (here.parents[1] / "students", here / "students"):
        if candidate.is_dir():
            return candidate
    raise KdbenchError("kdbench's student zoo is missing from this install; pass --students-dir")


def load_zoo(directory: Path | None = None) -> dict[str, StudentSpec]:
    """Every student file in `directory`, by name. Any bad file stops the load with its path in the message."""
    directory = Path(directory) if directory is not None else default_students_dir()
    if directory.is_file():
        raise KdbenchError(f"students folder {directory} is a file; pass the folder that holds the .toml files")
    if not directory.is_dir():
        raise KdbenchError(f"students folder {directory} does not exist")
    zoo: dict[str, StudentSpec] = {}
    for path in sorted(directory.glob("*.toml")):
        spec = load_spec(path)
        if spec.name in zoo:
            raise KdbenchError(f"{path}: student name {spec.name!r} is also used by {zoo[spec.name].source}")
        zoo[spec.name] = spec
    if not zoo:
        raise KdbenchError(f"students folder {directory} holds no *.toml student files")
    return dict(sorted(zoo.items(), key=lambda kv: (GROUPS.index(kv[1].group), _natural(kv[0]))))


def _natural(name: str) -> tuple:
    """Sort '3L' before '384D' and '6L' before '9L': digits compare as numbers."""
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.findall(r"\d+|\D+", name))


def lookup_student(zoo: dict[str, StudentSpec], name: str) -> StudentSpec:
    """One student by name, with a 'did you mean' on typos."""
    if name in zoo:
        return zoo[name]
    raise KdbenchError(f"unknown student {name!r}{suggest(name, zoo)}; choose from: {', '.join(zoo)}")


def select(zoo: dict[str, StudentSpec], selection: str) -> list[StudentSpec]:
    """Pick students by comma-separated names and groups ('paper', 'heads', 'pruned', 'custom', 'all')."""
    chosen: list[StudentSpec] = []
    if not selection.strip():
        return chosen  # none chosen (a profile of trained runs only)
    for token in (s.strip() for s in selection.split(",")):
        if not token:
            raise KdbenchError(f"the student list {selection!r} has an empty item; separate names by single commas")
        if token == TEACHER_NAME:
            continue
        if token == "all":
            picked = list(zoo.values())
        elif token in GROUPS:
            picked = [s for s in zoo.values() if s.group == token]
        elif token in zoo:
            picked = [zoo[token]]
        else:
            choices = sorted(zoo) + list(GROUPS) + ["all"]
            raise KdbenchError(f"unknown student {token!r}{suggest(token, choices)}; choose from: {', '.join(choices)}")
        chosen += [s for s in picked if s not in chosen]
    return chosen
