"""Video conditions for training and the robustness benchmark: shapes, ranges, seeds, and a real JPEG encoder."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path
from PIL import Image

from fervid.models.expression_weights import ExpressionConfig, save_weights
from fervid.train.data import load_dataset
from fervid.train.degrade import BY_NAME, DEGRADATIONS, jpeg_luma, random_degradations
from fervid.types import EMOTIONS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "robustness.py"


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    """32 real FER+ validation faces as a (32, 1, 48, 48) batch in [0, 1]."""
    data = load_dataset(shared_path("data/ferplus/FER2013Valid.zip"))
    return torch.from_numpy(data.images[:32]).float().unsqueeze(1) / 255.0


@pytest.mark.parametrize("name", [d.name for d in DEGRADATIONS])
def test_each_condition_keeps_the_shape_and_range_changes_the_face_and_is_seeded(faces: torch.Tensor, name: str):
    apply = BY_NAME[name].apply
    out = apply(faces, torch.Generator().manual_seed(1))
    assert out.shape == faces.shape and out.dtype == faces.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(out, (out * 255).round() / 255)  # stored as 8 bits, as a camera would
    assert float((out - faces).abs().mean()) > 0.005  # it does something to a real face
    assert torch.equal(out, apply(faces, torch.Generator().manual_seed(1)))


def test_low_light_is_dark_and_noisy(faces: torch.Tensor) -> None:
    out = BY_NAME["low_light"].apply(faces, torch.Generator().manual_seed(0))
    ratio = out.mean(dim=(1, 2, 3)) / faces.mean(dim=(1, 2, 3))
    assert bool(((ratio > 0.2) & (ratio < 0.45)).all())
    scaled = faces * ratio.view(-1, 1, 1, 1)
    assert float((out - scaled).std()) > 1 / 255  # noise on top of the scaling


def test_the_tensor_jpeg_loses_what_a_real_encoder_loses(faces: torch.Tensor) -> None:
    """Training's batched JPEG (DCT quantisation) against Pillow's encoder at the same quality."""
    ours = jpeg_luma(faces, quality=20)
    real = []
    for face in (faces[:, 0] * 255).round().to(torch.uint8).numpy():
        buffer = io.BytesIO()
        Image.fromarray(face).save(buffer, format="JPEG", quality=20)
        real.append(np.asarray(Image.open(buffer).convert("L")))
    real_t = torch.from_numpy(np.stack(real)).float().unsqueeze(1) / 255
    assert float((ours - real_t).abs().mean()) < 3 / 255  # a few grey levels apart on average
    assert float((ours - faces).abs().mean()) > 3 * float((ours - real_t).abs().mean())


def test_random_degradations_at_zero_is_the_identity_and_at_one_changes_every_face(faces: torch.Tensor) -> None:
    assert torch.equal(random_degradations(faces, 0.0, torch.Generator().manual_seed(0)), faces)
    out = random_degradations(faces, 1.0, torch.Generator().manual_seed(0))
    assert bool(((out - faces).abs().mean(dim=(1, 2, 3)) > 0.01).all())


def test_robustness_benchmark_smoke(tmp_path: Path) -> None:
    """CI runs the benchmark end to end on a few faces per split (no accuracy bar: the model is random)."""
    shared = shared_path("data").parent
    config = ExpressionConfig(classes=EMOTIONS, widths=(8, 8, 16, 16), photometric="equalize")
    model = tmp_path / "tiny.pt"
    save_weights(model, config.build().eval(), config)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--shared", str(shared), "--models", str(model), "--limit", "24",
         "--json", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ["clean", *(d.name for d in DEGRADATIONS), "mean of conditions"]:
        assert name in done.stdout, name
    assert "on ferplus test (n=24)" in done.stdout and "on fer2013 test (n=24)" in done.stdout
    results = __import__("json").loads((tmp_path / "r.json").read_text())
    assert set(results[str(model)]) == {"ferplus", "fer2013"}
