"""The engine's behaviour step: 68 landmarks for all faces of a batch of frames, then the measures from them.

Runs after classification (:class:`fervid.engine.Engine`), so the classifier's ``readable`` and ``p_correct``
have already been computed from the five-point ``yaw`` and ``roll`` they were fitted on; this step then
replaces those two columns' values with the better estimate (:func:`fervid.behaviour.pose.choose_pose`) and
adds ``pitch``, ``pose_source``, ``eye_open_l``, ``eye_open_r``, ``mouth_open`` and ``valence``. The 68 points
themselves stay in ``Detections.data["landmarks68"]`` for ``--landmarks`` (not a table column).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from fervid.behaviour.eyes import eye_and_mouth
from fervid.behaviour.pose import choose_pose, fit_pose, nose_side
from fervid.behaviour.valence import valence
from fervid.landmarks68 import landmarks68
from fervid.models.weights_info import WeightsInfo
from fervid.quality import landmark_measures
from fervid.types import Detections, Predictions

if TYPE_CHECKING:
    from fervid.models.shape_predictor import ShapePredictor

#: The per-face values :meth:`BehaviourStage.measure` adds or replaces (faces-table columns).
DATA_COLUMNS: tuple[str, ...] = ("yaw", "pitch", "roll", "pose_source", "eye_open_l", "eye_open_r", "mouth_open",
                                 "valence")  # fmt: skip
#: Where the 68 points go in ``Detections.data`` ((n, 68, 2) float32, frame pixels).
POINTS_KEY = "landmarks68"


class BehaviourStage:
    """Landmarks and measures for every face of a batch, in one predictor call (see the module docstring)."""

    data_columns = DATA_COLUMNS

    def __init__(self, predictor: ShapePredictor, weights: WeightsInfo) -> None:
        self.predictor = predictor
        #: The predictor's provenance (run.json's ``models.landmarks``).
        self.weights = weights

    def measure(self, images: Sequence[np.ndarray], detections: Sequence[Detections],
                predictions: Sequence[Predictions]) -> None:  # fmt: skip
        """Fill each frame's ``Detections.data`` with :data:`DATA_COLUMNS` and the 68 points, in place.

        All faces of the batch are measured together and the columns then split by frame: per-frame calls
        cost more in array set-up than in arithmetic when frames hold one or two faces.
        """
        if not detections:
            return
        counts = [len(d) for d in detections]
        classes = predictions[0].classes
        columns = measures(
            np.concatenate(landmarks68(self.predictor, images, detections)).reshape(-1, 68, 2),
            np.concatenate([d.xyxy for d in detections]).reshape(-1, 4),
            np.concatenate([d.landmarks for d in detections]).reshape(-1, 5, 2),
            np.concatenate([np.asarray(p.probs).reshape(-1, len(classes)) for p in predictions]),
            classes,
            np.repeat(np.array([(image.shape[1], image.shape[0]) for image in images], np.float64).reshape(-1, 2),
                      counts, axis=0),
        )  # fmt: skip
        ends = np.cumsum(counts, dtype=np.int64)
        for dets, end, n in zip(detections, ends, counts):
            dets.data.update({key: value[end - n : end] for key, value in columns.items()})


def measures(points: np.ndarray, xyxy: np.ndarray, landmarks5: np.ndarray, probs: np.ndarray,
             classes: Sequence[str], sizes: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """Behaviour measures of n faces (from any frames): their 68 points (n, 68, 2), RetinaFace boxes (n, 4) and
    five points (n, 5, 2), probabilities (n, k) over ``classes``, and their frames' (width, height) (n, 2)."""
    n = len(points)
    points = np.asarray(points, dtype=np.float32).reshape(n, 68, 2)
    five = landmark_measures(landmarks5)  # the five-point angles (the classifier's, recomputed: cheap)
    side = nose_side(xyxy, landmarks5)
    pose = choose_pose(fit_pose(points, sizes), five["yaw"], five["roll"], side)
    eyes = eye_and_mouth(points)
    fitted = pose["pose_source"] == "68"  # the points are the cascade's guess elsewhere: no eye or mouth value
    out = {**pose, **{key: np.where(fitted, value, np.nan).astype(np.float32) for key, value in eyes.items()}}
    out["valence"] = valence(probs, classes)
    out[POINTS_KEY] = points
    return out
