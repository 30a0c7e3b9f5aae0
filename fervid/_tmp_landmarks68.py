"""TEMPORARY glue until ``fervid/landmarks68.py`` (branch ``landmarks``) lands on main; then delete this module.

The same interface that module will have: :func:`dlib_boxes` (a RetinaFace box and its five points -> the box
framing dlib's 68-point predictor was trained on) and :func:`landmarks68` (all faces of a batch of frames in
one :meth:`fervid.models.shape_predictor.ShapePredictor.predict` call). The framing here is a first
measurement (81 faces of ../shared/media: dlib's frontal detector box against the five RetinaFace points:
centred 0.05 eye-to-mouth distances above the eye-mouth midpoint, 2.36 of them wide), not the port's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fervid.models.shape_predictor import ShapePredictor
from fervid.types import Detections


def dlib_boxes(boxes: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
    """(n, 4) dlib boxes (left, top, right, bottom) for RetinaFace boxes (n, 4) and five points (n, 5, 2)."""
    points = np.asarray(landmarks5, dtype=np.float64).reshape(-1, 5, 2)
    eyes, mouth = points[:, :2].mean(axis=1), points[:, 3:].mean(axis=1)
    em = np.linalg.norm(mouth - eyes, axis=1)
    centre = (eyes + mouth) / 2 + np.stack([np.zeros_like(em), -0.05 * em], axis=1)
    half = 1.18 * em
    return np.concatenate([centre - half[:, None], centre + half[:, None]], axis=1)


def landmarks68(
    predictor: ShapePredictor, frames: Sequence[np.ndarray], detections: Sequence[Detections]
) -> list[np.ndarray]:
    """(n_i, 68, 2) float32 points (x, y, in frame pixels) for each frame's faces, all faces in one pass."""
    counts = [len(d) for d in detections]
    if sum(counts) == 0:
        return [np.zeros((0, 68, 2), np.float32) for _ in detections]
    boxes = dlib_boxes(np.concatenate([d.xyxy for d in detections]), np.concatenate([d.landmarks for d in detections]))
    points = predictor.predict(frames, boxes, np.repeat(np.arange(len(counts)), counts))
    return np.split(np.asarray(points, dtype=np.float32), np.cumsum(counts)[:-1])
