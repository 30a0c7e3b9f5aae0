"""The faces reliability is fitted and judged on, with what annotate would measure of each.

* :func:`fer_faces`: a FER+ split, each face under a video condition drawn across its whole range
  (:func:`fervid.train.conditions.conditioned`), through the model as ``fervid evaluate`` runs it, with
  the crop measurements annotate takes and the geometry (face size, yaw, roll) the condition gives it;
* :func:`realfaces`: ``../shared/data/realfaces`` (real photos labelled by eye) through ``fervid.annotate``
  as a user runs it, the largest face of each photo.

Both give, with the measurements, each face's ``embedding``: the network's pooled features, which
p_correct's out-of-distribution inputs read (:data:`fervid.reliability.EMBEDDING_FEATURES`).

``scripts/fit_reliability.py`` fits on FER+ validation and realfaces; ``benchmarks/reliability.py`` judges on
FER+ test and the real-footage set, never on what was fitted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fervid.columns import FACE_COLUMN_NAMES
from fervid.models.expression_input import probabilities
from fervid.models.expression_weights import load_expression_model
from fervid.quality import crop_measures, landmark_measures
from fervid.train.conditions import conditioned, dataset_landmarks
from fervid.train.data import EVALUATION_SPLITS, ExpressionData, load_dataset
from fervid.train.predict import normalize


def fer_faces(
    model: str, shared: Path, split: str, seed: int, cache: Path, clean_share: float = 0.2, limit: int | None = None
) -> tuple[np.ndarray, dict, np.ndarray]:
    """FER+ ``split`` faces under conditions: probabilities, measurements (with ``condition``, ``strength``, the
    ``label`` index and the ``embedding``),
    and whether the top label is right. ``cache``: the split's landmarks (measured once). ``limit``: only this many
    faces, drawn at random (a smoke test's subset)."""
    data = load_dataset(shared / EVALUATION_SPLITS["ferplus"][split], split)
    if limit:
        keep = np.sort(np.random.default_rng(seed).permutation(len(data))[:limit])
        data = ExpressionData(data.images[keep], data.targets[keep], data.classes, [data.names[i] for i in keep],
                              data.dataset)  # fmt: skip
    landmarks = dataset_landmarks(data.images, cache)
    geometry = landmark_measures(np.nan_to_num(landmarks))
    faces = conditioned(data.images, geometry["yaw"], geometry["roll"], seed, clean_share)
    # A turned face's yaw as annotate measures it: from the landmarks of the turned picture (where found)
    turned = np.flatnonzero(faces.condition == "turn")
    seen = landmark_measures(np.nan_to_num(dataset_landmarks(faces.images[turned], cache.with_name(
        f"{cache.stem}_turned_seed{seed}.npz"))))  # fmt: skip
    found = np.isfinite(seen["yaw"]) & (seen["face_px"] > 0)
    faces.yaw[turned[found]] = seen["yaw"][found]
    faces.roll[turned[found]] = seen["roll"][found]
    probs, embedding = probs_and_embedding(model, faces.images)
    cfg = load_expression_model(model, verify=False).config
    measures = crop_measures(torch.from_numpy(faces.images).float().unsqueeze(1))
    measures |= {"face_px": faces.face_px, "yaw": faces.yaw, "roll": faces.roll, "embedding": embedding}
    labels = model_labels(np.asarray(data.classes)[data.labels], cfg.classes)
    extra = {"condition": faces.condition, "strength": faces.strength, "label": labels}
    known = labels >= 0  # all faces were conditioned and measured, so the landmark caches stay those of the split
    measures = {k: np.asarray(v)[known] for k, v in {**measures, **extra}.items()}
    return probs[known], measures, probs[known].argmax(axis=1) == labels[known]


def model_labels(names: np.ndarray, model_classes: tuple[str, ...]) -> np.ndarray:
    """Each face's label (a class name) as an index of the model's classes; -1 where the model lacks the class.

    Faces of a class the model cannot name (FER+'s contempt for the seven-class ``fer2013``) are left out of
    fitting and sweeping its reliability, as ``fervid evaluate`` cannot score a class the model lacks: the model's
    accuracy there says nothing about whether it still reads the faces it can name.
    """
    index = {name: i for i, name in enumerate(model_classes)}
    return np.array([index.get(str(name), -1) for name in names], dtype=np.int64)


def probs_and_embedding(model: str, images: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities and pooled (penultimate) features of uint8 (n, H, W) faces, from one forward pass
    as the classifier runs it (``forward_with_features``)."""
    loaded = load_expression_model(model, verify=False)
    net, cfg = loaded.model, loaded.config
    net.eval()
    probs, features = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            logits, pooled = net.forward_with_features(normalize(torch.from_numpy(images[i : i + batch]), cfg))
            probs.append(probabilities(logits, cfg))
            features.append(pooled.float())
    if not probs:
        return np.zeros((0, len(cfg.classes)), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(probs).numpy(), torch.cat(features).numpy()


def realfaces_embedding(model: str, root: Path, faces: pd.DataFrame) -> np.ndarray:
    """The pooled features of the faces-table rows ``faces`` (photos under ``root``), cropped as annotate crops
    them (from the row's box and landmarks)."""
    from fervid.classify import ExpressionClassifier
    from fervid.io.images import read_image
    from fervid.types import Detections

    classifier = ExpressionClassifier(model)
    landmarks = faces[[f"lm{i}_{a}" for i in range(1, 6) for a in "xy"]].to_numpy(np.float32).reshape(-1, 5, 2)
    boxes = faces[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
    out = []
    for i, path in enumerate(faces["path"]):
        image = torch.from_numpy(read_image(root / path))[None]
        crops = classifier.crops(image, [Detections(boxes[i : i + 1], np.ones(1), landmarks[i : i + 1])])
        features = classifier.outputs(crops, embedding=True)[1]
        assert features is not None  # asked for with embedding=True
        out.append(features)
    return np.concatenate(out)


def realfaces(model: str, shared: Path) -> tuple[np.ndarray, dict, np.ndarray, np.ndarray]:
    """The realfaces photos through fervid.annotate: probabilities, measurements, correct, and each face's identity."""
    import fervid

    root = shared / "data" / "realfaces"
    labels = pd.read_csv(root / "labels.csv")
    rows = []
    for label_dir in sorted((root / "images").iterdir()):
        result = fervid.annotate(label_dir, model=model, min_p_correct=0.0, identity=False, video=False,
                                 report=False, plots=False)  # fmt: skip
        table = result.faces
        faces = table.assign(area=(table["x2"] - table["x1"]) * (table["y2"] - table["y1"]))
        largest = faces.sort_values("area", ascending=False).drop_duplicates("file")
        largest["path"] = "images/" + label_dir.name + "/" + largest["file"]
        rows.append(largest)
        classes = result.classes
    faces = pd.concat(rows).merge(labels[["path", "label", "identity"]], on="path")
    faces = faces[model_labels(faces["label"].to_numpy(), tuple(classes)) >= 0]  # classes it can name (model_labels)
    probs = faces[[f"p_{c}" for c in classes]].to_numpy(np.float64)
    measures = {c: faces[c].to_numpy(np.float64) for c in FACE_COLUMN_NAMES if c in faces}
    measures["embedding"] = realfaces_embedding(model, root, faces)
    measures["label"] = np.array([list(classes).index(c) for c in faces["label"]])  # the class index, as FER's
    correct = np.asarray(classes, dtype=object)[probs.argmax(axis=1)] == faces["label"].to_numpy()
    return probs, measures, correct, faces["identity"].to_numpy()


#: Share of faces, most trusted first, whose accuracy :func:`judge` reports (issue 30's 70 %).
COVERAGE = 0.7


def judge(p_correct: np.ndarray, top: np.ndarray, correct: np.ndarray, trusted: np.ndarray) -> dict:
    """How well ``p_correct`` says which labels are right, beside the top probability: accuracy, AURC of both
    (and their ratio), accuracy of the :data:`COVERAGE` most trusted by each, ECE of both, and the share the
    threshold keeps (``trusted``) with its accuracy. ``benchmarks/reliability.py`` and ``fervid evaluate``."""
    from fervid.reliability import expected_calibration_error, risk_coverage

    correct = np.asarray(correct, dtype=np.float64)
    _, _, aurc = risk_coverage(p_correct, correct)
    _, _, baseline = risk_coverage(top, correct)
    keep = int(round(COVERAGE * len(correct)))
    return {
        "n": int(len(correct)), "accuracy": float(correct.mean()), "aurc_p_correct": aurc, "aurc_top": baseline,
        "aurc_ratio": aurc / baseline if baseline > 0 else float("nan"),
        "accuracy_top70_p_correct": float(correct[np.argsort(-p_correct, kind="stable")[:keep]].mean()),
        "accuracy_top70_top": float(correct[np.argsort(-top, kind="stable")[:keep]].mean()),
        "ece_p_correct": expected_calibration_error(p_correct, correct),
        "ece_top": expected_calibration_error(top, correct), "trusted_share": float(trusted.mean()),
        "accuracy_trusted": float(correct[trusted].mean()) if trusted.any() else None,
    }  # fmt: skip


#: ``--min-p-correct`` values whose coverage and accuracy :func:`by_threshold` reports: off, the default, stricter.
THRESHOLDS = (0.0, 0.5, 0.7, 0.9)


def kept_faces(p_correct: np.ndarray, readable: np.ndarray, threshold: float) -> np.ndarray:
    """(n,) bool: the faces a conclusion rests on at ``--min-p-correct threshold``, by the tables' own rule
    (:func:`fervid.io.tables.trusted`: readable with ``p_correct`` at or above it; 0 keeps every face)."""
    from fervid.io.tables import trusted

    return trusted(pd.DataFrame({"readable": np.asarray(readable, dtype=bool), "p_correct": p_correct}), threshold)


def by_threshold(
    p_correct: np.ndarray, readable: np.ndarray, correct: np.ndarray, thresholds: tuple[float, ...] = THRESHOLDS
) -> list[dict]:
    """At each ``--min-p-correct``: the share of faces a conclusion keeps (``coverage``) and how many of those are
    right, by the rule the tables apply (:func:`fervid.io.tables.trusted`: 0 keeps every face), so a reader sees
    what the default costs and buys."""
    correct = np.asarray(correct, dtype=np.float64)
    out = []
    for threshold in thresholds:
        kept = kept_faces(p_correct, readable, threshold)
        out.append({"threshold": float(threshold), "coverage": float(kept.mean()) if len(kept) else 0.0,
                    "accuracy": float(correct[kept].mean()) if kept.any() else None})  # fmt: skip
    return out


def dataset_reliability(model: str, images: np.ndarray, probs: np.ndarray, correct: np.ndarray) -> dict | None:
    """How the model's reliability file does on a labelled split (``fervid evaluate``): :func:`judge`'s figures
    and the threshold, or None without a reliability file.

    The faces are dataset crops, so the measurements come from the crop as annotate takes them, with FER's
    framing for the geometry (eye distance :data:`~fervid.train.conditions.FER_EYE_PX`, yaw and roll 0: the
    split's own head poses would need the detector, which ``benchmarks/reliability.py`` runs).
    """
    from fervid.classify import reliability_of
    from fervid.train.conditions import FER_EYE_PX

    reliability = reliability_of(model, required=False)
    if reliability is None:
        return None
    measures = crop_measures(torch.from_numpy(images).float().unsqueeze(1))
    n = len(images)
    measures |= {"face_px": np.full(n, FER_EYE_PX), "yaw": np.zeros(n), "roll": np.zeros(n)}
    if reliability.needs_embedding:  # the pooled features of the model's own pass over the split
        measures["embedding"] = probs_and_embedding(model, images)[1]
    p = reliability.p_correct(probs, measures)
    trusted = kept_faces(p, reliability.readable(measures), reliability.default_threshold)
    return {**judge(p, probs.max(axis=1), correct, trusted), "threshold": reliability.default_threshold}
