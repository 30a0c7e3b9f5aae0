"""fervid's import structure: no import cycles between its modules, no private names reached across modules.

Imports are read with ``ast`` rather than by importing, so every import counts: module level, inside a function,
and under ``if TYPE_CHECKING:``. A cycle hidden in a function import is still a cycle at run time, and one behind
TYPE_CHECKING still means two modules that cannot be understood (or moved) one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fervid"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``from ... import`` names, relative imports included."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """fervid modules that ``module`` imports anywhere in its file.

    ``from fervid.x import y`` counts as an import of ``fervid.x.y`` when that is a module, else of ``fervid.x``.
    A package's own ``__init__`` is not counted as a dependency of its submodules' ``from fervid.pkg.sub import``
    (Python runs it, but it is not what the code depends on, and it would make every package a cycle).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, path.name == "__init__.py")
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    found.add(sub)
                elif target in known:
                    found.add(target)
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imported_modules(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Every simple cycle, as the path from its smallest module round to just before it comes back.

    A plain depth-first search from each module through larger modules only, so each cycle is found once; fervid's
    graph is small and nearly acyclic, so this stays fast.
    """
    found: set[tuple[str, ...]] = set()

    def walk(start: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == start:
                found.add(tuple(path))
            elif nxt > start and nxt not in path:
                walk(start, [*path, nxt])

    for start in sorted(graph):
        walk(start, [start])
    return found


def test_cycle_finder_sees_two_and_three_file_cycles() -> None:
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"e"}, "e": {"c", "b"}, "f": {"a"}}
    assert _cycles(graph) == {("a", "b"), ("c", "d", "e"), ("b", "c", "d", "e")}
    assert _cycles({"a": {"b"}, "b": set()}) == set()


def test_function_level_and_type_checking_imports_count(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from fervid.a import A\n"
        "def f():\n    from fervid import b\n    import fervid.c\n"
    )
    known = {"fervid.a", "fervid.b", "fervid.c"}
    assert _imported_modules("fervid.m", source, known) == known


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, f"import cycle(s) among fervid's modules (each from its first module round): {sorted(cycles)}"


# --- no private names across modules -------------------------------------------------------------------------------

SCANNED = ("fervid", "benchmarks", "scripts")  # tests may reach into a module they test; shipped code may not


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_uses(path: Path, modules: set[str]) -> list[str]:
    """``from fervid.x import _name`` and ``x._name`` (``x`` a fervid module) in one file, as readable strings."""
    module = _module_name(path) if path.is_relative_to(PACKAGE) else ""
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases: dict[str, str] = {}  # local name -> the fervid module it is bound to
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:  # `import fervid.a` binds `fervid`; `import fervid.a as fa` binds `fa`
                    top = alias.name.split(".")[0]
                    aliases[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, path.name == "__init__.py")
            if target not in modules:
                continue
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
                elif _private(alias.name) and target != module:
                    found.append(f"line {node.lineno}: from {target} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = _dotted(node.value, aliases)
            if owner in modules and owner != module:
                found.append(f"line {node.lineno}: {owner}.{node.attr}")
    return sorted(found)


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The module an expression such as ``engine`` or ``fervid.io.video`` names, through the file's imports."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def test_private_use_finder(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import fervid.a\nimport fervid.a as fa\nfrom fervid import b\nfrom fervid.a import _x, y, __version__\n"
        "fervid.a._p; fa._q; b._r; b.s; fa.__doc__; obj._t\n"
    )
    modules = {"fervid", "fervid.a", "fervid.b"}
    assert _private_uses(source, modules) == [
        "line 4: from fervid.a import _x",
        "line 5: fervid.a._p",
        "line 5: fervid.a._q",
        "line 5: fervid.b._r",
    ]


def test_no_private_names_used_across_modules() -> None:
    modules = set(_modules())
    found = {
        str(path.relative_to(ROOT)): uses
        for folder in SCANNED
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (uses := _private_uses(path, modules))
    }
    assert not found, f"private names used from another module (make them public, or keep the use inside): {found}"
