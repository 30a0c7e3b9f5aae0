"""Shared test fixtures: where the real media and datasets live, and how to skip without them."""

from __future__ import annotations

import importlib
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(relative: str) -> Path:
    """Path of a file under ../shared, or skip the test with the reason when it is missing."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"needs ../shared/{relative} (real media/data are not on this machine)")
    return path


def load_script(name: str) -> ModuleType:
    """A script of ``scripts/`` imported as a module (scripts are not a package), for its functions' tests."""
    folder = str(Path(__file__).resolve().parents[1] / "scripts")
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(folder)


def ferplus_validation_subset(folder: Path, count: int) -> Path:
    """The first ``count`` images of the real FER+ validation split, in Microsoft's layout, as a zip in ``folder``
    (skips without ../shared): a training or evaluation run small enough for a test."""
    source = shared_path("data/ferplus/FER2013Valid.zip")
    target = folder / "FER2013Valid.zip"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        pngs = sorted(n for n in zin.namelist() if n.endswith(".png"))[:count]
        for name in [*pngs, "FER2013Valid/label.csv"]:
            zout.writestr(name, zin.read(name))
    return target


@pytest.fixture
def shared() -> type:
    """Give tests `shared("media/x.mp4")` -> Path, skipping when absent."""
    return shared_path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the slow tests (a wheel installed in a new venv)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests run only with --slow (CI and README's test command pass it; plain `pytest` stays fast)."""
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
