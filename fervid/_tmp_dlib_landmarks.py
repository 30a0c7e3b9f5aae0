"""TEMPORARY stand-in for the 68-point landmark port (branch ``landmarks``); delete when it lands on main.

Same interface as ``fervid.models.shape_predictor`` / ``fervid.landmarks68`` will have:
``load_shape_predictor(path=None)``, ``ShapePredictor.predict(images, boxes, image_index)``,
``dlib_boxes(boxes, landmarks5)``, ``landmarks68(predictor, frames, detections)``; backed by
dlib-bin's ``shape_predictor``. The box mapping is a rough first measurement (81 faces of
../shared/media: dlib's detector box against the five RetinaFace points), not the port's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fervid.types import Detections


class ShapePredictorError(ValueError):
    """The .dat file is missing or unreadable."""


class ShapePredictor:
    def __init__(self, path: Path) -> None:
        import dlib

        self.path = path
        try:
            self._predictor = dlib.shape_predictor(str(path))
        except RuntimeError as error:
            raise ShapePredictorError(f"{path}: not a dlib shape predictor ({error})") from None

    def predict(self, images: Sequence[np.ndarray], boxes: np.ndarray, image_index: np.ndarray) -> np.ndarray:
        import dlib

        out = np.zeros((len(boxes), 68, 2), dtype=np.float32)
        for row, (box, i) in enumerate(zip(np.asarray(boxes, dtype=np.float64), image_index)):
            rect = dlib.rectangle(*(int(round(v)) for v in box))
            shape = self._predictor(images[int(i)], rect)
            out[row] = [(p.x, p.y) for p in shape.parts()]
        return out


def default_path() -> Path:
    import face_recognition_models

    return Path(face_recognition_models.__file__).parent / "models" / "shape_predictor_68_face_landmarks.dat"


def load_shape_predictor(path: str | Path | None = None) -> ShapePredictor:
    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise ShapePredictorError(f"{path}: no such file")
    return ShapePredictor(path)


def dlib_boxes(boxes: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks5, dtype=np.float64).reshape(-1, 5, 2)
    eyes, mouth = points[:, :2].mean(axis=1), points[:, 3:].mean(axis=1)
    em = np.linalg.norm(mouth - eyes, axis=1)
    centre = (eyes + mouth) / 2 + np.stack([np.zeros_like(em), -0.05 * em], axis=1)
    half = 1.18 * em
    return np.concatenate([centre - half[:, None], centre + half[:, None]], axis=1).astype(np.float32)


def landmarks68(predictor: ShapePredictor, frames: Sequence[np.ndarray], detections: Sequence[Detections]) -> list:
    counts = [len(d) for d in detections]
    if sum(counts) == 0:
        return [np.zeros((0, 68, 2), np.float32) for _ in detections]
    boxes = dlib_boxes(np.concatenate([d.xyxy for d in detections]), np.concatenate([d.landmarks for d in detections]))
    points = predictor.predict(frames, boxes, np.repeat(np.arange(len(counts)), counts))
    return np.split(points, np.cumsum(counts)[:-1])
