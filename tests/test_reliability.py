"""readable and p_correct: the limits, the logistic model, its fit, its file, and the measures that judge it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fervid.models.errors import WeightsError
from fervid.reliability import (
    FORMAT,
    ReliabilityModel,
    expected_calibration_error,
    fit_logistic,
    load_reliability,
    reliability_path,
    risk_coverage,
    save_reliability,
)


def _measures(n: int, **values: float) -> dict[str, np.ndarray]:
    base = {"face_px": 30.0, "sharpness": 200.0, "brightness": 120.0, "contrast": 50.0, "yaw": 0.0, "roll": 0.0}
    return {k: np.full(n, values.get(k, v), dtype=np.float32) for k, v in base.items()}


def _model(**changes) -> ReliabilityModel:
    fields = {"model_sha256": "ab" * 32, "minimum": {"face_px": 4.0, "sharpness": 5.0, "contrast": 3.0},
              "maximum": {"abs_yaw": 60.0}, "features": ("top", "log_sharpness"), "mean": (0.5, 3.0),
              "scale": (0.2, 1.0), "coef": (2.0, 0.5), "intercept": 0.3}  # fmt: skip
    return ReliabilityModel(**{**fields, **changes})


@pytest.mark.parametrize(
    ("values", "readable"),
    [({}, True), ({"face_px": 3.0}, False), ({"sharpness": 4.9}, False), ({"contrast": 2.0}, False),
     ({"yaw": -61.0}, False), ({"yaw": 59.0}, True), ({"sharpness": float("nan")}, False)],
)  # fmt: skip
def test_a_face_is_readable_when_every_measurement_is_inside_its_limits(values: dict, readable: bool) -> None:
    assert _model().readable(_measures(1, **values)).tolist() == [readable]


def test_p_correct_is_the_logistic_of_the_standardised_features() -> None:
    probs = np.array([[0.9, 0.1], [0.5, 0.5]], dtype=np.float32)
    measures = _measures(2, sharpness=np.e**3 - 1)  # log1p(sharpness) = 3, the feature's mean
    z = 2.0 * (np.array([0.9, 0.5]) - 0.5) / 0.2 + 0.3
    np.testing.assert_allclose(_model().p_correct(probs, measures), 1 / (1 + np.exp(-z)), rtol=1e-5)
    assert _model().p_correct(np.zeros((0, 2)), _measures(0)).shape == (0,)


def test_the_fit_recovers_a_known_logistic_relation() -> None:
    rng = np.random.default_rng(0)
    top = rng.uniform(0.5, 1.0, 20000)  # the top probability of two classes
    probs = np.c_[top, 1 - top]
    measures = _measures(len(top))
    truth = 1 / (1 + np.exp(-(8 * (top - 0.7))))
    correct = rng.uniform(size=len(top)) < truth
    fit = fit_logistic(probs, measures, correct, ("top",), l2=0.0)
    model = _model(features=fit.features, mean=fit.mean, scale=fit.scale, coef=fit.coef, intercept=fit.intercept)
    np.testing.assert_allclose(model.p_correct(probs, measures), truth, atol=0.03)


def test_the_fit_weighs_faces_by_their_weights() -> None:
    """Doubling a face's weight is the same as giving it twice."""
    rng = np.random.default_rng(1)
    top = rng.uniform(0.5, 1.0, 400)
    probs, measures = np.c_[top, 1 - top], _measures(400)
    correct = rng.uniform(size=400) < top
    weights = np.where(np.arange(400) < 100, 2.0, 1.0)
    twice = np.r_[np.arange(400), np.arange(100)]
    a = fit_logistic(probs, measures, correct, ("top",), weights=weights)
    b = fit_logistic(probs[twice], {k: v[twice] for k, v in measures.items()}, correct[twice], ("top",))
    assert a.coef[0] * b.scale[0] / a.scale[0] == pytest.approx(b.coef[0], rel=1e-3)


def test_risk_coverage_puts_the_trusted_faces_first_and_aurc_rewards_a_good_order() -> None:
    correct = np.array([1, 1, 1, 0])
    coverage, risk, good = risk_coverage(np.array([0.9, 0.8, 0.7, 0.1]), correct)
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0] and risk.tolist() == [0, 0, 0, 0.25]
    _, _, bad = risk_coverage(np.array([0.1, 0.2, 0.3, 0.9]), correct)
    assert good == pytest.approx(0.0625) and bad > good


def test_ece_is_zero_for_a_calibrated_estimate_and_the_gap_otherwise() -> None:
    correct = np.r_[np.ones(8), np.zeros(2)]
    assert expected_calibration_error(np.full(10, 0.8), correct) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(10, 0.95), correct) == pytest.approx(0.15)


def test_ece_of_p_correct_is_evaluates_measure_with_its_bins() -> None:
    """p_correct's ECE (benchmarks/reliability.py, the card) uses ``fervid evaluate``'s bins: 0.62 and 0.68 share a
    bin of ten (ECE 0.15) but not of ECE_BINS = 15 (ECE 0.53)."""
    from fervid.train.calibrate import ECE_BINS
    from fervid.train.calibrate import expected_calibration_error as evaluate_ece

    confidence = np.r_[np.full(5, 0.62), np.full(5, 0.68)]
    correct = np.r_[np.ones(5), np.zeros(5)]
    assert ECE_BINS == 15
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.5 * 0.38 + 0.5 * 0.68)
    probs = np.c_[confidence, 1 - confidence]  # the top class is 0 throughout; right where the label is 0
    labels = np.where(correct == 1, 0, 1)
    assert expected_calibration_error(confidence, correct) == pytest.approx(evaluate_ece(probs, labels))


def test_the_file_beside_a_model_round_trips(tmp_path: Path) -> None:
    model_path = tmp_path / "default.rule.json"
    assert reliability_path(model_path).name == "default.reliability.json"
    assert reliability_path(tmp_path / "ferplus.pt").name == "ferplus.reliability.json"
    save_reliability(reliability_path(model_path), _model())
    assert load_reliability(model_path, "ab" * 32) == _model()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no reliability model"), ("{not json", "not a readable reliability model"),
     ({"format": "other"}, "not a fervid reliability model"),
     ({"features": ["top", "nonsense"]}, "unknown feature 'nonsense'"),
     ({"coef": [1.0]}, "2 features need 2 means, scales and coefficients"),
     ({"minimum": {"loudness": 3}}, "unknown readable limit 'loudness'"),
     ({"model_sha256": "cd" * 32}, "fitted for another model")],
)  # fmt: skip
def test_a_bad_reliability_file_is_a_one_line_error(tmp_path: Path, content, message: str) -> None:
    model_path = tmp_path / "m.pt"
    path = reliability_path(model_path)
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, dict):
        path.write_text(json.dumps({**_model().to_json(), "format": FORMAT, **content}))
    with pytest.raises(WeightsError, match=message) as error:
        load_reliability(model_path, "ab" * 32)
    assert "\n" not in str(error.value) and str(model_path.stem) in str(error.value)


def test_label_features_mark_the_top_class() -> None:
    model = _model(features=("label:neutral",), mean=(0.0,), scale=(1.0,), coef=(1.0,), intercept=0.0,
                   classes=("happy", "neutral"))  # fmt: skip
    probs = np.array([[0.2, 0.8], [0.7, 0.3]], dtype=np.float32)
    np.testing.assert_allclose(model.design(probs, _measures(2))[:, 0], [1.0, 0.0])
    with pytest.raises(ValueError, match="unknown feature 'label:sad'"):
        _model(features=("label:sad",), mean=(0.0,), scale=(1.0,), coef=(1.0,), classes=("happy", "neutral"))


def test_the_face_size_feature_stops_at_fers_eye_distance() -> None:
    from fervid.reliability import FER_EYE_PX
    from fervid.train.conditions import FER_EYE_PX as measured

    assert abs(FER_EYE_PX - measured) < 0.01
    model = _model(features=("log_face_px",), mean=(0.0,), scale=(1.0,), coef=(1.0,))
    x = model.design(np.full((3, 2), 0.5), {**_measures(3), "face_px": np.array([5.0, 17.45, 80.0])})[:, 0]
    np.testing.assert_allclose(x, np.log([5.0, 17.45, 17.45]))


def test_embedding_features_read_the_pooled_features_against_the_training_faces() -> None:
    from fervid.reliability import embedding_reference

    rng = np.random.default_rng(0)
    centres = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    labels = rng.integers(0, 2, 5000)
    train = centres[labels] + rng.normal(0.0, [1.0, 0.5, 0.1], (5000, 3))  # shared, axis-aligned spread
    reference = embedding_reference(train, labels, classes=2, components=3)
    np.testing.assert_allclose(reference["class_mean"], centres, atol=0.05)
    np.testing.assert_allclose(sorted(reference["variance"], reverse=True), [1.0, 0.25, 0.01], rtol=0.1)
    features = ("log_feature_norm", "class_cosine", "mahalanobis")
    model = _model(features=features, mean=(0.0,) * 3, scale=(1.0,) * 3, coef=(1.0,) * 3, reference=reference,
                   classes=("happy", "sad"))  # fmt: skip
    faces = np.array([[4.0, 0.0, 0.0], [4.0, 0.0, 0.3], [0.0, 8.0, 0.0]])  # at class 0's mean, off it, far out
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8]])
    x = model.design(probs, {**_measures(3), "embedding": faces})
    np.testing.assert_allclose(x[:, 0], np.log(np.linalg.norm(faces, axis=1)))
    assert x[0, 1] == pytest.approx(1.0, abs=1e-3) and x[1, 1] < x[0, 1]  # cosine to the top class's mean
    assert x[0, 2] == pytest.approx(0.0, abs=0.2) and x[1, 2] < -2.0 and x[2, 2] < -7.0  # minus Mahalanobis
    assert model.p_correct(np.zeros((0, 2)), {**_measures(0), "embedding": np.zeros((0, 3))}).shape == (0,)


def test_the_feature_norm_needs_no_reference_but_the_class_scores_do(tmp_path: Path) -> None:
    model = _model(features=("log_feature_norm",), mean=(0.0,), scale=(1.0,), coef=(1.0,))
    assert model.needs_embedding and not _model().needs_embedding
    with pytest.raises(ValueError, match="reference statistics 'class_mean'"):
        _model(features=("class_cosine",), mean=(0.0,), scale=(1.0,), coef=(1.0,))
    save_reliability(reliability_path(tmp_path / "m.pt"), model)
    assert load_reliability(tmp_path / "m.pt", "ab" * 32) == model


@pytest.mark.parametrize(
    ("names", "classes", "expected"),
    [
        (["happy", "contempt", "neutral"], ("angry", "happy", "neutral"), [1, -1, 2]),  # a class the model lacks
        (["contempt"], ("angry", "contempt"), [1]),
        ([], ("angry",), []),
    ],
)
def test_labels_become_the_models_class_indices_and_a_class_it_lacks_is_minus_one(names, classes, expected) -> None:
    from fervid.train.reliability_data import model_labels

    labels = model_labels(np.array(names, dtype=object), classes)
    assert labels.dtype == np.int64 and labels.tolist() == expected
