"""One input preparation for training, evaluation and annotate, read from the weight file's config."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path
from PIL import Image, ImageOps

from fervid.classify import ExpressionClassifier
from fervid.models.errors import WeightsError
from fervid.models.expression_input import equalize, prepare, standardize
from fervid.models.expression_weights import FORMAT, ExpressionConfig, load_expression_model, save_weights
from fervid.train.augment import AugmentConfig
from fervid.train.data import load_dataset
from fervid.train.joint import TrainingSet
from fervid.train.predict import predict_probs
from fervid.train.trainer import Head, TrainConfig, train
from fervid.types import EMOTIONS

NO_AUGMENT = AugmentConfig(max_rotation_deg=0, scale_range=(1, 1), max_shift=0, flip_p=0, brightness=0, contrast=0,
                           erase_p=0, degrade_p=0)  # fmt: skip


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return load_dataset(shared_path("data/ferplus/FER2013Valid.zip")).images[:64]


def test_equalize_matches_pillow_and_ignores_monotone_tone_changes(faces: np.ndarray) -> None:
    x = torch.from_numpy(faces).float().unsqueeze(1)
    ours = equalize(x)[:, 0].numpy()
    pil = np.stack([np.asarray(ImageOps.equalize(Image.fromarray(f))) for f in faces]) / 255.0
    assert np.abs(ours - pil).mean() < 0.02
    darker = (255 * (x / 255) ** 2.2 * 0.5).round()  # a dim, crushed-shadow version of the same faces
    assert float((equalize(darker) - equalize(x)).abs().mean()) < 0.05
    assert float((x / 255 - darker / 255).abs().mean()) > 0.25


def test_standardize_and_constant_crops() -> None:
    x = torch.rand(4, 1, 48, 48) * 255
    z = standardize(x)
    assert torch.allclose(z.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5)
    flat = torch.full((1, 1, 48, 48), 77.0)
    assert torch.isfinite(standardize(flat)).all() and torch.isfinite(equalize(flat)).all()


@pytest.mark.parametrize("method", ["none", "standardize", "equalize"])
def test_annotate_and_evaluation_prepare_a_face_identically(faces: np.ndarray, method: str, tmp_path: Path) -> None:
    """The classifier (annotate) and predict_probs (evaluate, training's validation) give the same probabilities."""
    torch.manual_seed(0)
    config = ExpressionConfig(classes=EMOTIONS, widths=(8, 8, 16, 16), photometric=method, mean=0.4, std=0.3,
                              temperature=1.7)  # fmt: skip
    save_weights(tmp_path / "m.pt", config.build().eval(), config)
    classifier = ExpressionClassifier(tmp_path / "m.pt", "cpu")
    crops = torch.from_numpy(faces).float().unsqueeze(1)
    with torch.inference_mode():
        annotate, _ = classifier.outputs(crops)
    loaded = load_expression_model(tmp_path / "m.pt")
    net, cfg = loaded.model, loaded.config
    evaluate = predict_probs(net, cfg, faces, "cpu")
    np.testing.assert_allclose(annotate, evaluate, atol=1e-5)
    cooler = predict_probs(net, replace(cfg, temperature=1.0), faces, "cpu")
    assert cooler.max(axis=1).mean() > evaluate.max(axis=1).mean()  # the temperature is applied


def test_training_feeds_the_network_what_the_weight_file_says(monkeypatch, tmp_path: Path) -> None:
    """Every training batch goes through prepare() with the config the saved model carries."""
    data = load_dataset(shared_path("data/ferplus/FER2013Valid.zip"))
    small = type(data)(data.images[:64], data.targets[:64], data.classes, data.names[:64])
    seen: list[ExpressionConfig] = []
    import fervid.train.trainer as trainer

    def spy(crops: torch.Tensor, config: ExpressionConfig) -> torch.Tensor:
        seen.append(config)
        return prepare(crops, config)

    monkeypatch.setattr(trainer, "prepare", spy)
    training = TrainingSet.single("m", small)
    cfg = TrainConfig(epochs=1, batch_size=32, widths=(8, 8, 16, 16), photometric="equalize", augment=NO_AUGMENT)
    train(training, [Head(training.label_sets[0], small, tmp_path / "m.pt")], cfg, torch.device("cpu"))
    saved = load_expression_model(tmp_path / "m.pt").config
    assert len(seen) == 2 and saved.photometric == "equalize" and saved.alignment == "box"
    for used in seen:
        assert (used.photometric, used.mean, used.std, used.input_size) == (
            saved.photometric, saved.mean, saved.std, saved.input_size)  # fmt: skip
    assert saved.mean == pytest.approx(0.5, abs=0.02) and saved.std == pytest.approx(0.29, abs=0.02)
    assert saved.temperature > 0


def test_alignment_is_stored_with_the_model_and_old_files_keep_theirs(tmp_path: Path) -> None:
    """Training records how annotate must frame faces; a file from before the field keeps the landmark alignment."""
    data = load_dataset(shared_path("data/ferplus/FER2013Valid.zip"))
    small = type(data)(data.images[:32], data.targets[:32], data.classes, data.names[:32])
    training = TrainingSet.single("m", small)
    cfg = TrainConfig(epochs=1, batch_size=32, widths=(8, 8, 16, 16), alignment="landmarks", augment=NO_AUGMENT)
    train(training, [Head(training.label_sets[0], small, tmp_path / "m.pt")], cfg, torch.device("cpu"))
    assert load_expression_model(tmp_path / "m.pt").config.alignment == "landmarks"

    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    raw = json.loads(payload["config"])
    del raw["alignment"]
    torch.save({**payload, "config": json.dumps(raw)}, tmp_path / "old.pt")
    assert ExpressionClassifier(tmp_path / "old.pt").config.alignment == "landmarks"

    raw["alignment"] = "eyes"
    torch.save({"format": FORMAT, "config": json.dumps(raw), "state_dict": payload["state_dict"]}, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="bad.pt: unreadable model config .*unknown alignment 'eyes'"):
        load_expression_model(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="unknown alignment 'eyes'"):
        TrainConfig(alignment="eyes")
