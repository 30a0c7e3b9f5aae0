"""Shot cuts end face tracks: histogram distance separates cuts from motion."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from fervid.io.video import VideoReader
from fervid.shots import ShotCutDetector, colour_histogram
from fervid.track import FaceTracker
from fervid.types import Detections


def test_histogram_is_normalised_per_channel():
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    hist = colour_histogram(image)
    assert hist.shape == (3, 16)
    np.testing.assert_allclose(hist.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("first", "second", "cut"),
    [
        (np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8), False),
        (np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8), True),
        (np.zeros((64, 64, 3), np.uint8), np.zeros((32, 32, 3), np.uint8), False),  # size change: same content
    ],
)
def test_cut_table(first, second, cut):
    detector = ShotCutDetector()
    assert detector.is_cut(first) is False  # the first frame is never a cut
    assert detector.is_cut(second) is cut


def test_cuts_found_on_a_real_clip_and_not_on_a_single_shot():
    """short_hamilton_clip.mp4 has hard cuts at frames 20, 82 and 211; WolfgangLanger has none."""
    cuts = {}
    for name in ("face_recognition/short_hamilton_clip.mp4", "pyfeat/WolfgangLanger_Pexels.mp4"):
        detector = ShotCutDetector()
        with VideoReader(shared_path(f"media/{name}")) as reader:
            cuts[name] = [f.index for f in reader if detector.is_cut(f.image)]
    assert cuts["face_recognition/short_hamilton_clip.mp4"] == [20, 82, 211]
    assert cuts["pyfeat/WolfgangLanger_Pexels.mp4"] == []


def test_tracker_cut_gives_new_ids():
    tracker = FaceTracker(min_hits=1)
    face = Detections(np.array([[10, 10, 50, 50]]), np.array([0.9]), np.zeros((1, 5, 2)))
    assert tracker.update(face, 0.0).track_id.tolist() == [1]
    assert tracker.update(face, 0.04).track_id.tolist() == [1]
    tracker.cut()
    assert tracker.update(face, 0.08).track_id.tolist() == [2]
