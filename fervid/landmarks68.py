"""68-point landmarks for fervid's faces: RetinaFace faces placed in dlib's framing, then dlib's cascade.

dlib's shape predictor was trained on the boxes of dlib's HOG face detector: square, tight
from the brows to the chin. RetinaFace's boxes are taller (they hold the forehead), so they
are first mapped to that framing (:func:`dlib_boxes`), with constants measured on real
faces by ``scripts/fit_landmark_framing.py`` (see :data:`FRAMING`), and the cascade
(:class:`~fervid.models.shape_predictor.ShapePredictor`) then runs on all faces of a batch
of frames at once (:func:`landmarks68`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fervid.models.shape_predictor import ShapePredictor
from fervid.types import Detections

#: Where a framing's centre is measured from.
REFERENCES = ("box", "landmarks")
#: The face size a framing scales with.
SCALES = ("box", "eye_mouth", "landmarks")


@dataclass(frozen=True)
class Framing:
    """dlib's box from a RetinaFace face: ``centre = point + (offset_x, offset_y) * s``, ``side = side * s``.

    ``reference``: ``"box"`` (the RetinaFace box's centre) or ``"landmarks"`` (the mean of
    its five points). ``scale`` (``s``): ``"box"`` (the mean of the box's width and height),
    ``"eye_mouth"`` (from the eyes' midpoint to the mouth corners' midpoint) or
    ``"landmarks"`` (the root mean square distance of the five points from their mean).
    The result is dlib's ``left, top, right, bottom`` (right - left = side).
    """

    reference: str
    scale: str
    offset_x: float
    offset_y: float
    side: float

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise ValueError(f"unknown framing reference {self.reference!r}; choose from {', '.join(REFERENCES)}")
        if self.scale not in SCALES:
            raise ValueError(f"unknown framing scale {self.scale!r}; choose from {', '.join(SCALES)}")
        if not self.side > 0:
            raise ValueError(f"framing side must be > 0, got {self.side}")

    def reference_and_scale(self, boxes: np.ndarray, landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 2) reference points and (n,) face scales of RetinaFace faces."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        points = np.asarray(landmarks5, np.float64).reshape(-1, 5, 2)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 if self.reference == "box" else points.mean(axis=1)
        if self.scale == "box":
            size = ((boxes[:, 2] - boxes[:, 0]) + (boxes[:, 3] - boxes[:, 1])) / 2
        elif self.scale == "eye_mouth":
            size = np.linalg.norm(points[:, 3:5].mean(axis=1) - points[:, 0:2].mean(axis=1), axis=1)
        else:
            size = np.sqrt(((points - points.mean(axis=1, keepdims=True)) ** 2).sum(axis=2).mean(axis=1))
        return centre, size


#: Measured by ``scripts/fit_landmark_framing.py``: least squares over 226 faces that dlib's
#: detector (upsampled once) and RetinaFace (det_size 640) both found, on 145 real photos and
#: clip frames of ../shared/media. Of the six framings it tries (centre from the box or the
#: five points, scale from the box, eyes-to-mouth or the five points' spread), this one left
#: the smallest landmark error on held-out sources: per face, 1.16 px mean (90th percentile
#: 2.18 px), 0.021 of the inter-ocular distance (p90 0.036), against dlib's detector and
#: predictor end to end. RetinaFace's boxes used as they are: 3.2 px. See docs/behaviour.md.
FRAMING = Framing(reference="landmarks", scale="landmarks", offset_x=-0.0343, offset_y=-0.0615, side=3.7279)


def dlib_boxes(boxes: np.ndarray, landmarks5: np.ndarray, framing: Framing = FRAMING) -> np.ndarray:
    """(n, 4) float64 dlib boxes (left, top, right, bottom) for RetinaFace boxes (n, 4) and five points (n, 5, 2)."""
    centre, size = framing.reference_and_scale(boxes, landmarks5)
    centre = centre + np.array([framing.offset_x, framing.offset_y]) * size[:, None]
    half = framing.side * size[:, None] / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def landmarks68(
    predictor: ShapePredictor, frames: Sequence[np.ndarray], detections: Sequence[Detections]
) -> list[np.ndarray]:
    """(n_i, 68, 2) float32 points (x, y, in frame pixels) for each frame's faces, all faces in one pass.

    The dlib boxes are rounded to whole pixels, as dlib's own rectangles are. Why: the cascade compares pixels
    it picks through the box, so a box that moves by a thousandth of a pixel (float rounding between batch
    sizes) can pick a neighbouring pixel and move the points by a pixel; rounded, the box moves only when it
    crosses half a pixel. On WolfgangLanger_Pexels.mp4, 3 of 72 faces differed between the fast and the plain
    path without it.
    """
    if len(frames) != len(detections):
        raise ValueError(f"{len(frames)} frames but {len(detections)} Detections")
    counts = [len(d) for d in detections]
    boxes = np.concatenate([d.xyxy for d in detections]).reshape(-1, 4) if detections else np.zeros((0, 4))
    points5 = np.concatenate([d.landmarks for d in detections]).reshape(-1, 5, 2) if detections else np.zeros((0, 5, 2))
    index = np.repeat(np.arange(len(detections)), counts)
    points = np.asarray(predictor.predict(frames, np.round(dlib_boxes(boxes, points5)), index), dtype=np.float32)
    return np.split(points, np.cumsum(counts)[:-1]) if detections else []


__all__ = ["FRAMING", "REFERENCES", "SCALES", "Framing", "dlib_boxes", "landmarks68"]
