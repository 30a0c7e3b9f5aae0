"""Which labels to believe: ``readable`` (can this face be read at all?) and ``p_correct`` (is the label right?).

An expression model gives every face a label, and its wrong labels look as confident as its
right ones (the shipped models are wrong mostly by reading a real expression as neutral, at
0.8-0.97). Two per-face answers, fitted for one model and stored beside it as
``<model>.reliability.json``:

* **readable** (bool): every measurement of :mod:`fervid.quality` is inside the limits where the
  model still reads faces. The limits are not chosen by taste: ``benchmarks/readability.py``
  sweeps darkness, blur, smallness and head turn on FER+ validation and puts each limit where
  the model's accuracy collapses (the midpoint between clean accuracy and chance).
* **p_correct** (float): the estimated probability that the label is right, a logistic model
  of the classifier's output (top probability, margin to the second, entropy), the
  measurements and, optionally, the network's pooled (penultimate) features from the same
  forward pass (:data:`EMBEDDING_FEATURES`), fitted by ``scripts/fit_reliability.py`` on FER
  validation under the video conditions and on ``../shared/data/realfaces`` (never on the data
  it is judged on).

The file records the sha256 of the model it was fitted for: a reliability model says nothing
about another model's probabilities, so a mismatch is an error, not a silent guess. Every
problem with the file is a one-line :class:`~fervid.models.errors.WeightsError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fervid.models.errors import WeightsError

#: Eye distance of a face in FER's 48 px framing (fervid.train.conditions.FER_EYE_PX, without importing training).
FER_EYE_PX = 17.45

FORMAT = "fervid-reliability/1"
SUFFIX = ".reliability.json"
#: The measurements a readable limit may name (``abs_yaw``, ``abs_roll``: the size of the turn or tilt).
MEASUREMENTS = ("face_px", "sharpness", "brightness", "contrast", "abs_yaw", "abs_roll")


def _top_two(probs: np.ndarray) -> np.ndarray:
    return -np.sort(-probs, axis=1)[:, :2] if probs.shape[1] >= 2 else np.c_[probs, np.zeros(len(probs))]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(max(2, probs.shape[1]))


#: Inputs ``p_correct`` may use, by name: f(probabilities (n, k), measurements) -> (n,).
FEATURES: dict[str, Callable[[np.ndarray, Mapping[str, np.ndarray]], np.ndarray]] = {
    "top": lambda p, m: _top_two(p)[:, 0],
    # In logit units: near certainty, 0.99 and 0.9999 are far apart, which a linear ``top`` hides.
    "logit_top": lambda p, m: _logit(_top_two(p)[:, 0]),
    "log_ratio": lambda p, m: np.log(np.clip(_top_two(p)[:, 0], 1e-6, 1) / np.clip(_top_two(p)[:, 1], 1e-6, 1)),
    "margin": lambda p, m: _top_two(p)[:, 0] - _top_two(p)[:, 1],
    "entropy": lambda p, m: _entropy(p),
    # Capped at FER's eye distance: the model reads a 48 px crop, so a larger face adds no detail to it.
    "log_face_px": lambda p, m: np.log(np.clip(m["face_px"], 1.0, FER_EYE_PX)),
    "log_sharpness": lambda p, m: np.log1p(np.maximum(m["sharpness"], 0.0)),
    "brightness": lambda p, m: m["brightness"] / 255.0,
    "contrast": lambda p, m: m["contrast"] / 255.0,
    "abs_yaw": lambda p, m: np.abs(m["yaw"]) / 90.0,
    "abs_roll": lambda p, m: np.abs(m["roll"]) / 90.0,
}
#: Inputs read from the network's pooled (penultimate) features, which the classifier passes as ``embedding``
#: (n, D) in the measurements, from the same forward pass as the probabilities: the classic out-of-distribution
#: scores, against the statistics of the model's training faces kept in ``ReliabilityModel.reference``.
EMBEDDING_FEATURES = ("log_feature_norm", "class_cosine", "mahalanobis")
FEATURES.update({name: (lambda key: lambda p, m: np.asarray(m[key], np.float64))(name) for name in EMBEDDING_FEATURES})
#: A feature ``label:<class>`` is 1 where that class is the top label (some labels are wrong more often:
#: the shipped models read real expressions as neutral more than the reverse).
LABEL_FEATURE = "label:"


def measurement(measures: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """A measurement by its limit name (``abs_yaw`` is ``|yaw|``)."""
    if name.startswith("abs_"):
        return np.abs(np.asarray(measures[name[4:]], dtype=np.float64))
    return np.asarray(measures[name], dtype=np.float64)


@dataclass(frozen=True)
class ReliabilityModel:
    """Readable limits and the ``p_correct`` logistic model of one expression model (see the module docstring)."""

    model_sha256: str
    minimum: dict[str, float]  # measurement -> smallest readable value
    maximum: dict[str, float]  # measurement -> largest readable value (abs_yaw)
    features: tuple[str, ...]
    mean: tuple[float, ...]  # feature standardisation
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    default_threshold: float = 0.5
    classes: tuple[str, ...] = ()  # the model's classes, for ``label:<class>`` features
    info: dict[str, Any] = field(default_factory=dict)  # how it was fitted and judged
    #: Statistics of the training faces' pooled features, for :data:`EMBEDDING_FEATURES` (see
    #: :func:`embedding_reference`): ``class_mean`` (K, D); ``components`` (D, C) and ``variance`` (C,).
    reference: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [k for k in (*self.minimum, *self.maximum) if k not in MEASUREMENTS]
        if unknown:
            raise ValueError(f"unknown readable limit {unknown[0]!r}; measurements: {', '.join(MEASUREMENTS)}")
        bad = [f for f in self.features if f not in FEATURES and f.removeprefix(LABEL_FEATURE) not in self.classes]
        if bad:
            labels = ", ".join(LABEL_FEATURE + c for c in self.classes)
            raise ValueError(f"unknown feature {bad[0]!r}; features: {', '.join(FEATURES)}, {labels}")
        wanted = {"class_cosine": ("class_mean",), "mahalanobis": ("class_mean", "components", "variance")}
        missing = [k for f in self.features for k in wanted.get(f, ()) if k not in self.reference]
        if missing:
            raise ValueError(f"the features need reference statistics {missing[0]!r} (fervid.reliability."
                             "embedding_reference)")  # fmt: skip
        n = len(self.features)
        if not len(self.mean) == len(self.scale) == len(self.coef) == n:
            raise ValueError(f"{n} features need {n} means, scales and coefficients, got "
                             f"{len(self.mean)}, {len(self.scale)} and {len(self.coef)}")  # fmt: skip
        if not 0.0 <= self.default_threshold <= 1.0:
            raise ValueError(f"default_threshold must be in [0, 1], got {self.default_threshold}")

    def readable(self, measures: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per face: every measurement inside its limits (NaN measurements count as unreadable)."""
        n = len(next(iter(measures.values()))) if measures else 0
        ok = np.ones(n, dtype=bool)
        for name, low in self.minimum.items():
            ok &= measurement(measures, name) >= low
        for name, high in self.maximum.items():
            ok &= measurement(measures, name) <= high
        return ok

    @property
    def needs_embedding(self) -> bool:
        """Whether ``p_correct`` reads the network's pooled features (``embedding`` in the measurements)."""
        return any(f in EMBEDDING_FEATURES for f in self.features)

    def embedding_measures(self, embedding: np.ndarray, top: np.ndarray) -> dict[str, np.ndarray]:
        """Per face, from its (n, D) pooled features and top class: :data:`EMBEDDING_FEATURES`.

        The feature norm; the cosine similarity to the top class's mean feature; minus the Mahalanobis
        distance to that mean (covariance shared by the classes, in its principal components kept).
        """
        f = np.asarray(embedding, dtype=np.float64)
        norm = np.linalg.norm(f, axis=1)
        out = {"log_feature_norm": np.log(np.maximum(norm, 1e-12))}
        if "class_mean" not in self.reference:
            return out
        centre = np.asarray(self.reference["class_mean"], dtype=np.float64)[top]
        out["class_cosine"] = (f * centre).sum(axis=1) / np.maximum(norm * np.linalg.norm(centre, axis=1), 1e-12)
        if "components" in self.reference:
            d = (f - centre) @ np.asarray(self.reference["components"]) / np.sqrt(self.reference["variance"])
            out["mahalanobis"] = -np.sqrt((d**2).sum(axis=1))
        return out

    def design(self, probs: np.ndarray, measures: Mapping[str, np.ndarray]) -> np.ndarray:
        """The standardised (n, features) matrix ``p_correct`` is a logistic function of."""
        probs = np.asarray(probs, dtype=np.float64)
        if len(probs) == 0:
            return np.zeros((0, len(self.features)))
        top = probs.argmax(axis=1)
        if self.needs_embedding:
            measures = {**measures, **self.embedding_measures(measures["embedding"], top)}
        columns = [
            FEATURES[name](probs, measures) if name in FEATURES
            else (top == self.classes.index(name.removeprefix(LABEL_FEATURE))).astype(np.float64)
            for name in self.features
        ]  # fmt: skip
        x = np.stack(columns, axis=1).astype(np.float64)
        return (x - np.asarray(self.mean)) / np.asarray(self.scale)

    def p_correct(self, probs: np.ndarray, measures: Mapping[str, np.ndarray]) -> np.ndarray:
        """Estimated probability that each face's top label is right."""
        z = self.design(probs, measures) @ np.asarray(self.coef) + self.intercept
        return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}


def reliability_path(model_path: Path) -> Path:
    """``ferplus.pt`` -> ``ferplus.reliability.json``; ``default.rule.json`` -> ``default.reliability.json``."""
    name = model_path.name
    for suffix in (".rule.json", ".pt"):
        if name.endswith(suffix):
            return model_path.with_name(name[: -len(suffix)] + SUFFIX)
    return model_path.with_name(model_path.stem + SUFFIX)


def save_reliability(path: Path, model: ReliabilityModel) -> Path:
    from fervid.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(model.to_json(), indent=1) + "\n")
    return path


def load_reliability(model_path: Path, model_sha256: str) -> ReliabilityModel:
    """The reliability model beside ``model_path``, checked to be fitted for this very model."""
    path = reliability_path(model_path)
    if not path.is_file():
        raise WeightsError(f"{model_path}: no reliability model ({path.name} is missing), so readable and p_correct "
                           "cannot be given; fit one with scripts/fit_reliability.py, or pass --min-p-correct 0 "
                           "to label every face unfiltered")  # fmt: skip
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable reliability model ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a fervid reliability model (expected format {FORMAT})")
    raw.pop("format")
    try:
        model = ReliabilityModel(
            **{**raw, **{k: tuple(raw[k]) for k in ("features", "mean", "scale", "coef", "classes") if k in raw}}
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise WeightsError(f"{path}: unreadable reliability model ({exc})") from None
    if model.model_sha256 != model_sha256:
        raise WeightsError(f"{path}: fitted for another model (sha256 {model.model_sha256[:12]}…, this model "
                           f"{model_sha256[:12]}…); refit it with scripts/fit_reliability.py")  # fmt: skip
    return model


def embedding_reference(embedding: np.ndarray, labels: np.ndarray, classes: int, components: int = 64) -> dict:
    """:attr:`ReliabilityModel.reference` from training faces' (n, D) pooled features and their labels: each
    class's mean feature, and the top ``components`` principal axes and variances of the covariance the classes
    share (Lee et al. 2018's Mahalanobis score; the leading axes keep the file small). A class with no faces
    gets the overall mean."""
    f = np.asarray(embedding, dtype=np.float64)
    labels = np.asarray(labels)
    means = np.stack([f[labels == k].mean(axis=0) if (labels == k).any() else f.mean(axis=0) for k in range(classes)])
    centred = f - means[labels]
    variance, axes = np.linalg.eigh(centred.T @ centred / len(f))
    keep = np.argsort(-variance)[:components]
    return {"class_mean": means.tolist(), "components": axes[:, keep].tolist(),
            "variance": np.maximum(variance[keep], 1e-12).tolist()}  # fmt: skip


@dataclass(frozen=True)
class LogisticFit:
    """What :func:`fit_logistic` returns: standardisation and coefficients of the features, in order."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float


def fit_logistic(
    probs: np.ndarray, measures: Mapping[str, np.ndarray], correct: np.ndarray, features: tuple[str, ...],
    weights: np.ndarray | None = None, l2: float = 1e-3, classes: tuple[str, ...] = (),
    reference: Mapping[str, Any] | None = None,
) -> LogisticFit:  # fmt: skip
    """Fit ``p(correct)`` as a logistic function of ``features`` by weighted, L2-penalised maximum likelihood.

    Features are standardised first (their mean and spread are kept with the coefficients), so
    the penalty treats them alike; the intercept is not penalised. scipy's L-BFGS does the fit.
    """
    from scipy.optimize import minimize

    n = len(features)
    probe = ReliabilityModel("", {}, {}, features, (0.0,) * n, (1.0,) * n, (0.0,) * n, 0.0, classes=classes,
                             reference=dict(reference or {}))  # fmt: skip
    raw = probe.design(probs, measures)
    mean, scale = raw.mean(axis=0), raw.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    x = (raw - mean) / scale
    y = np.asarray(correct, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta[:-1] + theta[-1]
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        nll = -(w * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))).sum()
        grad_z = w * (p - y)
        grad = np.r_[x.T @ grad_z + 2 * l2 * theta[:-1], grad_z.sum()]
        return nll + l2 * float(theta[:-1] @ theta[:-1]), grad

    options = {"gtol": 1e-10, "ftol": 1e-15, "maxiter": 2000}  # the mean loss is small: tight tolerances
    theta = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options=options).x
    return LogisticFit(tuple(features), tuple(map(float, mean)), tuple(map(float, scale)),
                       tuple(map(float, theta[:-1])), float(theta[-1]))  # fmt: skip


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Coverage, risk (error rate among the faces kept) when keeping the most confident first, and the AURC.

    AURC is the mean risk over all coverages (the area under the risk-coverage curve): lower is
    better, and it rewards a confidence that puts the wrong labels last.
    """
    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind="stable")
    errors = 1.0 - np.asarray(correct, dtype=np.float64)[order]
    kept = np.arange(1, len(order) + 1)
    risk = np.cumsum(errors) / kept
    return kept / len(order), risk, float(risk.mean()) if len(risk) else float("nan")


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray) -> float:
    """ECE of a probability-of-correct estimate: the share-weighted gap between it and the hit rate.

    One definition with ``fervid evaluate``'s ECE of the top probability (both are
    :func:`fervid.train.calibrate.calibration_gap`, over :data:`~fervid.train.calibrate.ECE_BINS` equal-width
    bins), so the card's ECE of ``p_correct`` and of the probabilities can be read side by side.
    """
    from fervid.train.calibrate import calibration_gap

    return calibration_gap(confidence, correct)
