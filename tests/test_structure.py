"""Size limits for fervid's code (issue 35): no function over 80 lines, no class over 150.

A function or class is measured from its ``def``/``class`` line to its last line, docstring and comments included
(decorators not), as ``ast`` gives them. A nested function counts towards the one that holds it and is measured on
its own too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fervid"
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 150


def _too_long(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line kind name (n lines, limit m)`` for each function over 80 lines and each class over 150 in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            limit, kind = MAX_FUNCTION_LINES, "function"
        elif isinstance(node, ast.ClassDef):
            limit, kind = MAX_CLASS_LINES, "class"
        else:
            continue
        lines = (node.end_lineno or node.lineno) - node.lineno + 1
        if lines > limit:
            found.append(f"{path.relative_to(root)}:{node.lineno} {kind} {node.name} ({lines} lines, limit {limit})")
    return found


def test_functions_over_80_lines_and_classes_over_150_are_found(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(80))  # with its def line: 81 lines
    source.write_text(f"def short():\n    pass\n\n\n@decorated\ndef long():\n{body}\n")
    assert _too_long(source, tmp_path) == ["m.py:6 function long (81 lines, limit 80)"]
    source.write_text(f"def at_the_limit():\n{body[body.index(chr(10)) + 1 :]}\n")
    assert _too_long(source, tmp_path) == []
    methods = "\n".join(f"    def m{i}(self):\n        return {i}\n" for i in range(50))  # 149 lines + the class line
    source.write_text(f"class AtTheLimit:\n{methods}")
    assert _too_long(source, tmp_path) == []
    source.write_text(f'class Big:\n    """One line more."""\n{methods}')
    assert _too_long(source, tmp_path) == ["m.py:1 class Big (151 lines, limit 150)"]


def test_no_function_over_80_lines_and_no_class_over_150() -> None:
    found = [entry for path in sorted(PACKAGE.rglob("*.py")) for entry in _too_long(path)]
    assert not found, "split these (helpers with one job each):\n" + "\n".join(found)
