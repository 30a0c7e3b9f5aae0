"""CI smoke test: ``benchmarks/scale.py`` runs a tiny batch locally and through Ray and prints its table.

No timing assertions (CI machines are shared and noisy): only that both runs finished, gave the
same tables, and the table has its rows and the overhead column.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path

from fervid.models.expression_weights import ExpressionConfig, save_weights
from fervid.types import EMOTIONS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"


def test_scale_script_prints_the_table(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="needs Ray: pip install 'fervid[ray]' (the test extra brings it)")
    video = shared_path("media/pyfeat/single_face.mp4")
    config = ExpressionConfig(classes=EMOTIONS, widths=(24, 48, 96, 192))
    save_weights(tmp_path / "model.pt", config.build().eval(), config)  # the shipped weights may be training
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(video), "--copies", "2", "--seconds", "0.2", "--device", "cpu",
         "--model", str(tmp_path / "model.pt")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    for text in ("local (one process)", "ray (local instance)", "overhead/input", "same tables: yes", "2 x single"):
        assert text in out, out
