"""Nothing undeclared: every third-party module kdbench imports comes from a dependency pyproject.toml declares.

A module imported when a kdbench module is imported must come from a base dependency (a fresh `pip install kdbench`
has only those); one imported inside a function may come from an extra instead (the code path that needs it names
the extra). Modules are mapped to the distributions that provide them with importlib.metadata, as pip installed them.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    return {_norm(re.split(r"[\s<>=!~;\[(]", r.strip(), maxsplit=1)[0]) for r in requirements}


def declared(pyproject_text: str) -> tuple[set[str], set[str]]:
    """(base dependencies, base and every extra) as normalised distribution names."""
    project = tomllib.loads(pyproject_text)["project"]
    base = _names(project.get("dependencies", []))
    extras = _names([r for reqs in project.get("optional-dependencies", {}).values() for r in reqs])
    return base, base | extras


def _import_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def imports(folder: Path, package: str) -> dict[str, tuple[str, bool]]:
    """Third-party top-level modules imported under `folder` (its own modules left out): name -> (a file importing
    it, imported at import time anywhere)."""
    found: dict[str, tuple[str, bool]] = {}
    local = {package} | {p.stem for p in folder.rglob("*.py")} | {p.name for p in folder.rglob("*") if p.is_dir()}

    def visit(node: ast.AST, at_import: bool, where: str) -> None:
        for name in _import_names(node):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in local or top == "__future__":
                continue
            first, before = found.get(top, (where, False))
            found[top] = (where if at_import and not before else first, before or at_import)
        inside = at_import and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inside, where)

    for path in sorted(folder.rglob("*.py")):
        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), True, str(path.relative_to(folder.parent)))
    return found


def undeclared(pyproject_text: str, folder: Path, package: str = "kdbench", lazy_only: bool = False) -> list[str]:
    """One line per imported module no declared distribution provides: base ones for imports at import time, base
    or any extra for imports inside functions (`lazy_only`: every import may come from an extra, as for tests)."""
    base, anywhere = declared(pyproject_text)
    owners = packages_distributions()
    problems = []
    for top, (where, at_import) in sorted(imports(folder, package).items()):
        provided = {_norm(d) for d in owners.get(top, [])}
        allowed = base if at_import and not lazy_only else anywhere
        if not provided:
            problems.append(f"{top} (imported in {where}): no installed distribution provides it")
        elif not provided & allowed:
            kind = "a base dependency" if allowed is base else "a dependency or an extra"
            problems.append(f"{top} (imported in {where}): provided by {', '.join(sorted(provided))}, not {kind}")
    return problems


PYPROJECT = (ROOT / "pyproject.toml").read_text()


def test_every_module_the_package_imports_is_declared():
    assert undeclared(PYPROJECT, ROOT / "kdbench") == []


def test_every_module_the_tests_import_is_declared():
    assert undeclared(PYPROJECT, ROOT / "tests", lazy_only=True) == []


def test_the_check_fails_when_a_dependency_is_deleted():
    """What would have caught the missing click: take one dependency out of pyproject.toml and the check names it."""
    for dependency, module in (("typer", "typer"), ("safetensors", "safetensors"), ("scikit-learn", "sklearn")):
        text = re.sub(rf'^\s*"{dependency}[^"]*",.*\n', "", PYPROJECT, flags=re.MULTILINE)
        assert text != PYPROJECT
        problems = undeclared(text, ROOT / "kdbench")
        assert [p for p in problems if p.startswith(f"{module} ")], problems


def test_an_import_at_import_time_needs_a_base_dependency(tmp_path):
    """ray is an extra: fine inside a function, refused at the top of a module."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "lazy.py").write_text("def f():\n    import ray\n")
    assert undeclared(PYPROJECT, package, "pkg") == []
    (package / "eager.py").write_text("import ray\n")
    assert undeclared(PYPROJECT, package, "pkg") == [
        "ray (imported in pkg/eager.py): provided by ray, not a base dependency"
    ]
