"""The framing templates in ``fervid.align`` are what FER's own images measure, not numbers to trust blindly.

The crop tests in test_classify.py check that annotate's crops put a face on the templates; this
checks the templates themselves against the data the shipped models learned from, with the same
detector, on the first 300 FER+ validation images (the constants were fitted on all 3,555).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from fervid.align import FER_BOX_48_CENTRE, FER_BOX_48_SIZE, FER_TEMPLATE_48
from fervid.detect import FaceDetector
from fervid.train.data import load_dataset
from fervid.train.template import detect_dataset_faces, fit_box_template, fit_template


@pytest.fixture(scope="module")
def measured() -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset(shared_path("data/ferplus/FER2013Valid.zip"))
    return detect_dataset_faces(data.images[:300], FaceDetector(det_size=None, score_threshold=0.9))


def test_box_template_is_where_our_detector_finds_fer_faces(measured):
    centre, size = fit_box_template(measured[1])
    assert np.linalg.norm(centre - FER_BOX_48_CENTRE) < 0.5, centre
    assert abs(size / FER_BOX_48_SIZE - 1) < 0.03, size


def test_landmark_template_is_where_our_detector_finds_fer_landmarks(measured):
    assert np.linalg.norm(fit_template(measured[0]) - FER_TEMPLATE_48, axis=1).max() < 0.75
