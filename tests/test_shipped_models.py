"""The shipped expression models: integrity, and accuracy on the real test splits against the model card."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import shared_path

from fervid.models.expression_weights import MANIFEST, WEIGHTS_DIR, WeightsError, load_expression_model, shipped_models
from fervid.train.data import EVALUATION_SPLITS, load_dataset
from fervid.train.evaluate import Evaluation, majority_protocol
from fervid.train.predict import predict_probs

METRICS = WEIGHTS_DIR / "metrics.json"
TEST_SPLITS = {name: splits["test"] for name, splits in EVALUATION_SPLITS.items()}
#: The card's dataset names -> EVALUATION_SPLITS keys.
DATASETS = {"FER+": "ferplus", "FER2013": "fer2013"}


def _card_test_splits() -> list[tuple[str, str, str]]:
    """(model, card key, split path) for every shipped model's test figures in the card: each head's own test
    split, a decision rule's first member's, and another dataset's test split scored on the classes it has
    (``fer2013_test``); the heads' own splits are listed even without a card, so the test says why it skips."""
    cases = {(name, "test", rel) for name, rel in TEST_SPLITS.items()}
    card = json.loads(METRICS.read_text()) if METRICS.exists() else {}
    for name, entry in card.items():
        if "test" in entry and entry.get("dataset") in DATASETS:
            cases.add((name, "test", TEST_SPLITS[DATASETS[entry["dataset"]]]))
        for dataset, rel in TEST_SPLITS.items():
            if f"{dataset}_test" in entry:
                cases.add((name, f"{dataset}_test", rel))
    return sorted(cases)


def _card() -> dict:
    if not METRICS.exists():
        pytest.skip("weights/metrics.json (the model card's figures) is not present")
    return json.loads(METRICS.read_text())


def test_every_shipped_model_is_in_the_manifest_and_card():
    card = _card()
    manifest = (WEIGHTS_DIR / MANIFEST).read_text()
    for name in shipped_models():
        assert f"  {name}.pt\n" in manifest or f"  {name}.rule.json\n" in manifest  # a head or a decision rule
        assert name in card


@pytest.mark.parametrize(("name", "key", "split"), _card_test_splits())
def test_test_split_accuracy_matches_the_model_card(name, key, split):
    """Evaluated on the CPU; must reach the card's figure minus 0.5 points."""
    card = _card()
    if name not in shipped_models():
        pytest.skip(f"weights/{name} is not present")
    data = load_dataset(shared_path(split))
    loaded = load_expression_model(name)
    model, cfg = loaded.model, loaded.config
    probs = predict_probs(model, cfg, data.images, "cpu")
    result = Evaluation.from_probs(data.labels, probs, cfg.classes, data.classes)
    figures = card[name][key]
    expected = figures["accuracy"]
    print(f"{name} {key}: accuracy {result.accuracy:.4f} (card {expected:.4f}), macro-F1 {result.macro_f1:.4f}, "
          f"ECE {result.ece:.4f}")  # fmt: skip
    assert result.n == figures["n"]
    assert result.accuracy >= expected - 0.005
    # Calibrated probabilities: the stored temperature is the card's, and it is what makes them calibrated.
    assert cfg.temperature == pytest.approx(figures["temperature"])
    assert result.ece <= figures["ece"] + 0.005
    if key == "test":  # fitted on this dataset's validation split (another dataset's labels may disagree)
        assert figures["ece"] < figures["ece_uncalibrated"]
    majority = majority_protocol(data, probs, cfg.classes)  # FER+: the protocol of published figures
    if majority is not None:
        assert majority.n == card[name][f"{key}_majority"]["n"]
        assert majority.accuracy >= card[name][f"{key}_majority"]["accuracy"] - 0.005


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
        load_expression_model("ferplus")


def test_not_a_weight_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="bad.pt: not a readable weight file"):
        load_expression_model(bad)
