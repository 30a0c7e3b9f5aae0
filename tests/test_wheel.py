"""The package as a user installs it: a wheel built from the repo, in a new venv outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, timeout: int = 900) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})  # fmt: skip
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_wheel_ships_the_models_and_annotates(tmp_path: Path) -> None:
    clip = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
          str(REPO)], cwd=tmp_path)  # fmt: skip
    wheel = next((tmp_path / "dist").glob("fervid-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", "torch==2.13.0"], cwd=tmp_path)
    _run([python, "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path)
    fervid = str(venv / "bin" / "fervid")
    models = _run([fervid, "models"], cwd=tmp_path)
    assert "ferplus" in models and "fer2013" in models and "none" not in models.split("shipped models")[-1][:20]
    located = _run([python, "-c", "import fervid.models.expression_weights as w; print(w.WEIGHTS_DIR)"], cwd=tmp_path)
    assert str(venv) in located and str(REPO) not in located  # the installed copy, not the checkout
    _run([fervid, "annotate", str(clip), "-o", str(tmp_path / "out"), "--end", "1", "--device", "cpu"], cwd=tmp_path)
    stem = clip.stem
    for name in (f"{stem}.faces.csv", f"{stem}.annotated.mp4", f"{stem}.report.html", f"{stem}.eaf",
                 f"{stem}.run.json"):  # fmt: skip
        assert (tmp_path / "out" / stem / name).stat().st_size > 0, name
