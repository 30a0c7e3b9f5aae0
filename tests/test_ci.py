"""CI runs exactly the README's test command (the README says so; a change to one must reach the other)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    ci, readme = ROOT / ".ci" / "run", ROOT / "README.md"
    if not ci.is_file() or not readme.is_file():
        pytest.skip("needs the repository checkout (.ci/run and README.md), not an installed wheel")
    command = ci.read_text().strip().splitlines()[-1]
    assert "ruff check" in command and "mypy" in command and "pytest" in command
    assert command in readme.read_text().splitlines()
