"""The engine's behaviour step: 68 landmarks for all faces of a batch of frames, then the measures from them.

Runs after classification (:class:`fervid.engine.Engine`), so the classifier's ``readable`` and ``p_correct``
have already been computed from the five-point ``yaw`` and ``roll`` they were fitted on; this step then
replaces those two columns' values with the better estimate (:func:`fervid.behaviour.pose.choose_pose`) and
adds ``pitch``, ``pose_source``, ``eye_open_l``, ``eye_open_r``, ``mouth_open`` and ``valence``. The 68 points
themselves stay in ``Detections.data["landmarks68"]`` for ``--landmarks`` (not a table column).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fervid.behaviour.eyes import eye_and_mouth
from fervid.behaviour.pose import choose_pose, fit_pose, nose_side
from fervid.behaviour.valence import valence
from fervid.landmarks68 import landmarks68
from fervid.models.weights_info import WeightsInfo
from fervid.quality import landmark_measures
from fervid.types import Detections, Predictions

#: The per-face values :meth:`BehaviourStage.measure` adds or replaces (faces-table columns).
DATA_COLUMNS: tuple[str, ...] = ("yaw", "pitch", "roll", "pose_source", "eye_open_l", "eye_open_r", "mouth_open",
                                 "valence")  # fmt: skip
#: Where the 68 points go in ``Detections.data`` ((n, 68, 2) float32, frame pixels).
POINTS_KEY = "landmarks68"


class BehaviourStage:
    """Landmarks and measures for every face of a batch, in one predictor call (see the module docstring)."""

    data_columns = DATA_COLUMNS

    def __init__(self, predictor: Any, weights: WeightsInfo) -> None:
        self.predictor = predictor
        #: The predictor's provenance (run.json's ``models.landmarks``).
        self.weights = weights

    def measure(self, images: Sequence[np.ndarray], detections: Sequence[Detections],
                predictions: Sequence[Predictions]) -> None:  # fmt: skip
        """Fill each frame's ``Detections.data`` with :data:`DATA_COLUMNS` and the 68 points, in place."""
        points = landmarks68(self.predictor, images, detections)
        for image, dets, preds, pts in zip(images, detections, predictions, points):
            dets.data.update(measures(pts, dets, preds, (image.shape[1], image.shape[0])))


def measures(points: np.ndarray, dets: Detections, preds: Predictions, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """One frame's behaviour measures from its faces' 68 points (n, 68, 2), detections and probabilities."""
    n = len(dets)
    points = np.asarray(points, dtype=np.float32).reshape(n, 68, 2)
    five = landmark_measures(dets.landmarks)  # the five-point angles (the classifier's, recomputed: cheap)
    side = nose_side(dets.xyxy, dets.landmarks)
    pose = choose_pose(fit_pose(points, np.tile(size, (n, 1))), five["yaw"], five["roll"], side)
    eyes = eye_and_mouth(points)
    fitted = pose["pose_source"] == "68"  # the points are the cascade's guess elsewhere: no eye or mouth value
    out = {**pose, **{key: np.where(fitted, value, np.nan).astype(np.float32) for key, value in eyes.items()}}
    out["valence"] = valence(preds.probs, preds.classes)
    out[POINTS_KEY] = points
    return out
