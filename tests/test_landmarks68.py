"""RetinaFace faces in dlib's framing, and 68 points per Detections.

The framing constants (:data:`fervid.landmarks68.FRAMING`) were measured by
``scripts/fit_landmark_framing.py``; the real-face test here reruns the end-to-end check on
photos with a bound well above the measured error and well below what RetinaFace's
unmapped boxes give (measured on these photos, 16 faces: 0.015 vs 0.022 of the inter-ocular distance).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import shared_path

from fervid.landmarks68 import FRAMING, Framing, dlib_boxes, landmarks68
from fervid.models.shape_predictor_weights import (
    ShapePredictorWeightsError,
    cached_shape_predictor,
    packaged_shape_predictor_path,
)
from fervid.types import Detections

PHOTOS = (
    "media/pyfeat/single_face.jpg",
    "media/pyfeat/multi_face.jpg",
    "media/pyfeat/happy_black.jpg",
    "media/pyfeat/sad_asian.jpg",
    "media/face_recognition/two_people.jpg",
    "media/facenet_pytorch/multiface.jpg",
    "media/fer/justin.jpg",
)
#: Mean over faces of the per-face mean point distance over the inter-ocular distance.
MAX_IOD_ERROR = 0.019


def face(centre: tuple[float, float], spread: float) -> np.ndarray:
    """Five points whose mean is ``centre`` and root-mean-square spread is ``spread``."""
    unit = np.array([[-1, -1], [1, -1], [0, 0], [-1, 1], [1, 1]], np.float64)
    unit /= np.sqrt((unit**2).sum(axis=1).mean())
    return np.asarray(centre) + spread * unit


@pytest.mark.parametrize(("centre", "spread"), [((100.0, 80.0), 20.0), ((5.0, 300.0), 3.5)])
def test_dlib_boxes_follow_the_framing(centre: tuple[float, float], spread: float) -> None:
    points = face(centre, spread)[None]
    box = dlib_boxes(np.array([[0.0, 0.0, 1.0, 1.0]]), points)[0]
    side = FRAMING.side * spread
    np.testing.assert_allclose(box[2] - box[0], side)
    np.testing.assert_allclose(box[3] - box[1], side)
    np.testing.assert_allclose(
        (box[:2] + box[2:]) / 2, np.array(centre) + [FRAMING.offset_x * spread, FRAMING.offset_y * spread]
    )


def test_dlib_boxes_of_no_faces() -> None:
    assert dlib_boxes(np.zeros((0, 4)), np.zeros((0, 5, 2))).shape == (0, 4)


def test_a_box_framing_uses_the_box() -> None:
    framing = Framing(reference="box", scale="box", offset_x=0.0, offset_y=0.5, side=2.0)
    box = dlib_boxes(np.array([[10.0, 20.0, 30.0, 60.0]]), np.zeros((1, 5, 2)), framing)[0]
    np.testing.assert_allclose(box, [-10.0, 25.0, 50.0, 85.0])  # centre (20, 40) + (0, 15), side 60


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference": "nose"}, "unknown framing reference"),
        ({"scale": "ears"}, "unknown framing scale"),
        ({"side": 0.0}, "> 0"),
    ],
)
def test_bad_framings_are_value_errors(kwargs: dict, message: str) -> None:
    values = {"reference": "box", "scale": "box", "offset_x": 0.0, "offset_y": 0.0, "side": 1.0} | kwargs
    with pytest.raises(ValueError, match=message):
        Framing(**values)


@pytest.fixture(scope="module")
def predictor():
    try:
        return cached_shape_predictor().model
    except ShapePredictorWeightsError as err:
        pytest.skip(str(err))


def test_landmarks68_keeps_frames_apart(predictor) -> None:
    frames = [np.zeros((50, 50, 3), np.uint8), np.full((60, 40, 3), 90, np.uint8)]
    one = Detections(xyxy=[[5, 5, 40, 45]], score=[0.9], landmarks=face((22, 25), 6.0)[None])
    none = Detections(xyxy=np.zeros((0, 4)), score=np.zeros(0), landmarks=np.zeros((0, 5, 2)))
    out = landmarks68(predictor, frames, [none, one])
    assert [o.shape for o in out] == [(0, 68, 2), (1, 68, 2)] and out[1].dtype == np.float32
    assert landmarks68(predictor, [], []) == []
    with pytest.raises(ValueError, match="2 frames but 1 Detections"):
        landmarks68(predictor, frames, [one])


def test_mapped_retinaface_faces_give_dlibs_end_to_end_points(predictor) -> None:
    dlib = pytest.importorskip("dlib", reason="dlib (pip install dlib-bin) is the reference")
    from fervid.detect import FaceDetector
    from fervid.geometry import box_iou_np

    images = [cv2.cvtColor(cv2.imread(str(shared_path(p))), cv2.COLOR_BGR2RGB) for p in PHOTOS]
    detections = FaceDetector(det_size=640).detect(images)
    ours = landmarks68(predictor, images, detections)
    detector, reference = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(packaged_shape_predictor_path()))
    errors = []
    for image, found, points in zip(images, detections, ours):
        for rect in detector(image, 1):
            box = np.array([[rect.left(), rect.top(), rect.right(), rect.bottom()]], np.float64)
            iou = box_iou_np(box, found.xyxy)[0]
            assert iou.size and iou.max() >= 0.3, "RetinaFace finds every face dlib finds here"
            truth = np.array([(p.x, p.y) for p in reference(image, rect).parts()], np.float64)
            distance = np.linalg.norm(points[iou.argmax()] - truth, axis=1).mean()
            errors.append(distance / np.linalg.norm(truth[36] - truth[45]))
    assert len(errors) >= 15
    assert np.mean(errors) <= MAX_IOD_ERROR, f"mean {np.mean(errors):.3f} of the inter-ocular distance"
