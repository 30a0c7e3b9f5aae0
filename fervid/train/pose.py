"""Head pose of the training faces, and loss weights that stop pose from standing in for the expression.

Why: in FER the faces seen side-on are nearly all angry or neutral (stock photos of people
shouting in profile), and hardly any are happy. Of FER+ validation's faces turned past a
head-turn of 1.0 (below), 8 are angry, 7 neutral and none happy. A network trained on that learns
"profile means angry or neutral", and on video reads a laughing person seen side-on as
neutral (Hamilton frame 240). Pose-balanced weights make the class mix in each pose bin equal
to the training set's overall mix: every sample of class ``c`` in bin ``b`` weighs
``p(c) / p(c | b)`` (an importance weight). Within a bin the weights average to 1, so each bin keeps
its share of the loss; what changes is that the few happy profiles weigh more and the many
angry ones less. Pose then carries no information about the label in the weighted loss, and
the network has to read the expression.

The head turn is measured with our own detector's landmarks, as ``benchmarks/alignment.py``
does: ``|nose x - eyes' mid x| / eye distance`` (0 frontal, about 0.3 a clear three-quarter
view, above 1 a near profile). It takes minutes for a training set on a CPU, so it is cached
beside the weights, keyed by a hash of the images.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fervid.io.atomic import atomic_path

#: Head-turn bin edges: frontal and slightly turned below 0.3, three-quarter 0.3-0.8, profile
#: above 0.8; faces the detector does not find (turned away, occluded) make a bin of their own.
TURN_EDGES: tuple[float, ...] = (0.3, 0.8)
BIN_NAMES: tuple[str, ...] = ("frontal", "three-quarter", "profile", "no face found")


def head_turn(landmarks: np.ndarray) -> np.ndarray:
    """Per face, ``|nose x - eyes' mid x| / eye distance`` from (N, 5, 2) five-point landmarks (NaN stays NaN)."""
    eyes_mid = (landmarks[:, 0] + landmarks[:, 1]) / 2
    eye_distance = np.linalg.norm(landmarks[:, 1] - landmarks[:, 0], axis=1)
    return np.abs(landmarks[:, 2, 0] - eyes_mid[:, 0]) / np.maximum(eye_distance, 1e-3)


def pose_bins(turn: np.ndarray, edges: tuple[float, ...] = TURN_EDGES) -> np.ndarray:
    """Bin index per face: ``0 .. len(edges)`` by head turn, ``len(edges) + 1`` where no face was found (NaN)."""
    turn = np.asarray(turn, dtype=np.float64)
    bins = np.digitize(np.nan_to_num(turn, nan=0.0), edges)
    return np.where(np.isnan(turn), len(edges) + 1, bins).astype(np.int64)


def measure_head_turns(
    images: np.ndarray, device: str = "cpu", on_batch: Callable[[int], None] | None = None, batch_size: int = 64
) -> np.ndarray:
    """Head turn of each (N, H, W) uint8 training face, NaN where our detector finds none at score 0.9."""
    from fervid.detect import FaceDetector
    from fervid.train.template import detect_dataset_faces

    detector = FaceDetector(det_size=None, score_threshold=0.9, device=device)
    landmarks, _ = detect_dataset_faces(images, detector, batch_size, on_batch)
    return head_turn(landmarks).astype(np.float32)


def images_digest(images: np.ndarray) -> str:
    """SHA-256 of the images' shape and bytes: what a cached measurement belongs to."""
    digest = hashlib.sha256(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()


def cached_head_turns(
    images: np.ndarray, cache: Path, measure: Callable[[np.ndarray], np.ndarray] = measure_head_turns
) -> np.ndarray:
    """``measure(images)``, read from ``cache`` (.npz) when it holds these very images, else measured and saved
    (also when the cache cannot be read: it is only a cache)."""
    digest = images_digest(images)
    if cache.exists():
        try:
            with np.load(cache) as stored:
                if str(stored["digest"]) == digest:
                    return stored["turns"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # an unreadable cache is measured again and overwritten
    turns = measure(images)
    with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, digest=np.array(digest), turns=turns)
    return turns


def pose_class_weights(
    targets: np.ndarray, bins: np.ndarray, n_bins: int, prior_strength: float = 50.0, cap: float = 4.0
) -> np.ndarray:
    """(n_bins, K) weights ``p(c) / p(c | b)``, clipped to ``[1 / cap, cap]``.

    ``targets`` (N, K) are the labelled rows' distributions (one-hot or votes) and ``bins`` their
    pose bins. ``p(c | b)`` is shrunk towards ``p(c)`` by ``prior_strength`` pseudo-samples, so a
    sparse bin is not reweighted on a handful of faces, and the clip bounds how much any face can
    count. Bins without faces get weight 1.
    """
    targets = np.asarray(targets, dtype=np.float64)
    prior = targets.sum(axis=0) / max(len(targets), 1)
    weights = np.ones((n_bins, targets.shape[1]))
    for b in range(n_bins):
        members = targets[bins == b]
        if len(members) == 0:
            continue
        conditional = (members.sum(axis=0) + prior_strength * prior) / (len(members) + prior_strength)
        ratio = np.where(conditional > 0, prior / np.maximum(conditional, 1e-12), 1.0)
        weights[b] = np.clip(ratio, 1.0 / cap, cap)
    return weights.astype(np.float32)
