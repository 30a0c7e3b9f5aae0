"""The shipped expression models: integrity, and accuracy on the real test splits against the model card."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import shared_path

from fervid.models.expression_weights import MANIFEST, WEIGHTS_DIR, WeightsError, load_weights, shipped_models
from fervid.train.data import EVALUATION_SPLITS, load_dataset
from fervid.train.evaluate import Evaluation, majority_protocol
from fervid.train.predict import predict_probs

METRICS = WEIGHTS_DIR / "metrics.json"
TEST_SPLITS = {name: splits["test"] for name, splits in EVALUATION_SPLITS.items()}


def _card() -> dict:
    if not METRICS.exists():
        pytest.skip("weights/metrics.json (the model card's figures) is not present")
    return json.loads(METRICS.read_text())


def test_every_shipped_model_is_in_the_manifest_and_card():
    card = _card()
    manifest = (WEIGHTS_DIR / MANIFEST).read_text()
    for name in shipped_models():
        assert f"{name}.pt" in manifest
        assert name in card


@pytest.mark.parametrize("name", sorted(TEST_SPLITS))
def test_test_split_accuracy_matches_the_model_card(name):
    """Evaluated on the CPU; must reach the card's figure minus 0.5 points."""
    card = _card()
    if name not in shipped_models():
        pytest.skip(f"weights/{name}.pt is not present")
    data = load_dataset(shared_path(TEST_SPLITS[name]))
    model, cfg = load_weights(name)
    probs = predict_probs(model, cfg, data.images, "cpu")
    result = Evaluation.from_probs(data.labels, probs, cfg.classes)
    expected = card[name]["test"]["accuracy"]
    print(f"{name}: accuracy {result.accuracy:.4f} (card {expected:.4f}), macro-F1 {result.macro_f1:.4f}, "
          f"ECE {result.ece:.4f}")  # fmt: skip
    assert result.n == card[name]["test"]["n"]
    assert result.accuracy >= expected - 0.005
    # Calibrated probabilities: the stored temperature is the card's, and it is what makes them calibrated.
    assert cfg.temperature == pytest.approx(card[name]["test"]["temperature"])
    assert result.ece <= card[name]["test"]["ece"] + 0.005
    assert card[name]["test"]["ece"] < card[name]["test"]["ece_uncalibrated"]
    majority = majority_protocol(data, probs, cfg.classes)  # FER+: the protocol of published figures
    if majority is not None:
        assert majority.n == card[name]["test_majority"]["n"]
        assert majority.accuracy >= card[name]["test_majority"]["accuracy"] - 0.005


def test_corrupted_weight_file_gives_a_clear_error(tmp_path, monkeypatch):
    if "ferplus" not in shipped_models():
        pytest.skip("weights/ferplus.pt is not present")
    copy = tmp_path / "weights"
    copy.mkdir()
    shutil.copy(WEIGHTS_DIR / "ferplus.pt", copy / "ferplus.pt")
    shutil.copy(WEIGHTS_DIR / MANIFEST, copy / MANIFEST)
    with (copy / "ferplus.pt").open("r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr("fervid.models.expression_weights.WEIGHTS_DIR", copy)
    with pytest.raises(WeightsError, match="sha256 does not match"):
        load_weights("ferplus")


def test_not_a_weight_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="bad.pt: not a readable weight file"):
        load_weights(bad)
