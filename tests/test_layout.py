"""The layout shows the architecture: folders in layers, each importing only from its own layer and the ones below,
and no import circle between modules (imports inside functions count: they run too).

    python3 -m pytest tests/test_layout.py -q      # the check
    python3 tests/test_layout.py                   # the layers and every module's imports, bottom to top
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kdbench"

# bottom to top; folders on one floor do not import each other
LAYERS = (
    ("core",),
    ("zoo", "tasks"),
    ("results",),
    ("engines",),
    ("measure",),
    ("deploy",),
    ("train",),
    ("judge",),
    ("study",),
    ("recommend",),
    ("cli",),
)
FLOOR = {folder: i for i, folders in enumerate(LAYERS) for folder in folders}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The kdbench modules `path` imports anywhere in it (`from kdbench.x import y` counts kdbench.x.y when y is a
    module, else kdbench.x)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("kdbench"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("kdbench")}
    return out & known


def graph() -> dict[str, set[str]]:
    found = modules()
    return {m: imports(p, set(found)) - {m} for m, p in found.items()}


def folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in FLOOR) else None


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports from a lower floor to a higher one, or between two folders of one floor."""
    bad = []
    for a, targets in edges.items():
        for b in targets:
            fa, fb = folder(a), folder(b)
            if fa and fb and fa != fb and FLOOR[fb] >= FLOOR[fa]:
                bad.append(f"{a} -> {b}")
    return sorted(bad)


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_folder_has_a_floor_and_says_what_lives_there():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders == set(FLOOR)
    for name in folders:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "import" in doc.lower(), f"kdbench/{name}/__init__.py: say what lives there and what it imports"


def test_no_import_runs_from_a_lower_floor_to_a_higher_one():
    assert upward(graph()) == []


def test_no_import_circle():
    assert circles(graph()) == []


def test_the_checks_find_an_upward_import_and_a_circle():
    edges = {"kdbench.core.io": {"kdbench.study.spec"}, "kdbench.study.spec": {"kdbench.core.io"}}
    assert upward(edges) == ["kdbench.core.io -> kdbench.study.spec"]
    assert circles(edges) == [["kdbench.core.io", "kdbench.study.spec"]]


if __name__ == "__main__":
    edges = graph()
    for i, names in enumerate(LAYERS):
        print(f"floor {i + 1}: {', '.join(names)}")
        for m in sorted(m for m in edges if folder(m) in names):
            inside = sorted(t.removeprefix("kdbench.") for t in edges[m])
            print(f"    {m.removeprefix('kdbench.')}: {', '.join(inside) or '-'}")
    print("upward imports:", upward(edges) or "none")
    print("circles:", circles(edges) or "none")
