"""The by-eye behaviour sets in ``tests/data/behaviour`` parse, use the documented bins, and match RetinaFace.

Later tests score head pose and blinks against these labels by matching each labelled box to a
detected face; :func:`test_boxes_match_a_detection` checks that this match exists, so a failure
there means the labels (or the detector's defaults) moved, not the behaviour measures.
See ``tests/data/behaviour/README.md`` for how the sets were made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED

from fervid.geometry import box_iou_np

DATA = Path(__file__).resolve().parent / "data" / "behaviour"
POSE = DATA / "head_pose.csv"
BLINKS = DATA / "blinks.csv"
INSPECTED = DATA / "blinks_inspected.csv"
YAW_BINS = {"left_profile", "left_three_quarter", "frontal", "right_three_quarter", "right_profile"}
PITCH_BINS = {"up", "level", "down", ""}
BOX = ["x1", "y1", "x2", "y2"]
#: A labelled box counts as matched when a detection on its frame overlaps it this much.
MIN_IOU = 0.5
_PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


def load_pose() -> pd.DataFrame:
    return pd.read_csv(POSE, dtype={"clip": str, "yaw_bin": str, "pitch_bin": str, "note": str}, keep_default_na=False)


def test_pose_set_parses_with_known_bins() -> None:
    pose = load_pose()
    assert list(pose.columns) == ["clip", "frame", "time_s", *BOX, "yaw_bin", "pitch_bin", "note"]
    assert len(pose) >= 40
    assert set(pose["yaw_bin"]) <= YAW_BINS
    assert set(pose["pitch_bin"]) <= PITCH_BINS
    assert (pose["frame"] >= 0).all() and (pose["x2"] > pose["x1"]).all() and (pose["y2"] > pose["y1"]).all()
    assert not pose.duplicated(["clip", "frame", *BOX]).any()
    # Every yaw bin is represented: a pose estimate can't pass by answering "frontal".
    assert set(pose["yaw_bin"]) == YAW_BINS


def test_pose_set_holds_the_hamilton_profile() -> None:
    """Issue 32 names the curly-haired man of Hamilton's second shot: a profile that must never read frontal."""
    pose = load_pose()
    shot2 = pose[(pose["clip"] == "face_recognition/short_hamilton_clip.mp4") & pose["note"].str.contains("curly")]
    assert len(shot2) >= 1
    assert (shot2["yaw_bin"] == "left_profile").all()


def load_blinks() -> pd.DataFrame:
    return pd.read_csv(BLINKS, dtype={"clip": str, "note": str}, keep_default_na=False)


def test_blink_set_parses() -> None:
    blinks = load_blinks()
    assert list(blinks.columns) == ["clip", *BOX, "onset_frame", "end_frame", "note"]
    assert (blinks["onset_frame"] >= 0).all()
    assert (blinks["end_frame"] > blinks["onset_frame"]).all()
    assert (blinks["x2"] > blinks["x1"]).all() and (blinks["y2"] > blinks["y1"]).all()
    assert blinks["clip"].nunique() >= 2


def test_every_blink_lies_in_a_fully_inspected_range() -> None:
    """A false-positive count is only fair inside ranges where every blink was labelled; each label must sit in one."""
    blinks, inspected = load_blinks(), pd.read_csv(INSPECTED, dtype={"clip": str, "face": str})
    assert list(inspected.columns) == ["clip", "first_frame", "last_frame", "face"]
    assert (inspected["last_frame"] > inspected["first_frame"]).all()
    for row in blinks.itertuples():
        ranges = inspected[inspected["clip"] == row.clip]
        inside = (ranges["first_frame"] <= row.onset_frame) & (row.end_frame <= ranges["last_frame"])
        assert inside.any(), f"{row.clip} blink at {row.onset_frame} is outside the inspected ranges"


@pytest.mark.xfail(
    strict=True,
    reason="issue 32 asks for >= 15 blinks; the clips in ../shared/media hold 7 clear independent ones "
    "(6 in WolfgangLanger_Pexels.mp4, 1 in single_face.mp4; 9 rows, 2 of them re-encoded repeats; see "
    "tests/data/behaviour/README.md). Remove this mark once more real footage is labelled.",
)
def test_blink_set_reaches_the_issues_size() -> None:
    blinks = load_blinks()
    independent = blinks[~blinks["note"].str.contains("not an independent blink")]
    assert len(independent) >= 15


def test_the_docs_count_the_blinks_as_the_data_does() -> None:
    """docs/behaviour-measures.md, the data README and the xfail state the blinks as blinks.csv has them."""
    blinks = load_blinks()
    labelled, independent = len(blinks), int((~blinks["note"].str.contains("not an independent blink")).sum())
    assert (labelled, independent) == (9, 7)  # the figures the texts below state
    docs = " ".join((DATA.parents[2] / "docs" / "behaviour-measures.md").read_text().split())
    assert f"({labelled} labelled onsets, {independent} independent blinks," in docs
    readme = " ".join((DATA / "README.md").read_text().split())
    assert f"**{labelled} rows, {independent} independent blinks" in readme
    xfail = test_blink_set_reaches_the_issues_size.pytestmark[0].kwargs["reason"]
    assert f"hold {independent} clear independent ones" in xfail and f"{labelled} rows" in xfail


def _frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """Decoded RGB frames of ``path`` at the wanted 0-based indices, the way fervid indexes them."""
    from fervid.io.images import read_image
    from fervid.io.video import VideoReader

    if path.suffix.lower() in _PHOTO_SUFFIXES:
        return {0: read_image(path)}
    out: dict[int, np.ndarray] = {}
    with VideoReader(path) as reader:
        for frame in reader:
            if frame.index in wanted:
                out[frame.index] = frame.image
            if len(out) == len(wanted):
                break
    return out


def _unmatched(labels: pd.DataFrame, frame_column: str) -> list[str]:
    """Labelled boxes with no detection of IoU >= MIN_IOU on their frame (annotate's detector defaults)."""
    from fervid.detect import FaceDetector
    from fervid.options import DetectionOptions

    opts = DetectionOptions()
    detector = FaceDetector(
        opts.detector_weights, "cpu", det_size=opts.det_size, score_threshold=opts.det_threshold, min_face=opts.min_face
    )
    missing = []
    for clip, rows in labels.groupby("clip"):
        path = SHARED / "media" / clip
        if not path.exists():
            pytest.skip(f"needs ../shared/media/{clip} (real media are not on this machine)")
        frames = _frames(path, set(rows[frame_column]))
        for row in rows.itertuples():
            detections = detector.detect([frames[getattr(row, frame_column)]])[0]
            box = np.array([[row.x1, row.y1, row.x2, row.y2]], dtype=np.float64)
            best = box_iou_np(box, detections.xyxy.astype(np.float64)).max() if len(detections) else 0.0
            if best < MIN_IOU:
                missing.append(f"{clip} frame {getattr(row, frame_column)}: best IoU {best:.2f}")
    return missing


@pytest.mark.slow  # one RetinaFace pass per labelled face: about a minute on two shared CPU cores
def test_pose_boxes_match_a_detection() -> None:
    if not (SHARED / "media").exists():
        pytest.skip("needs ../shared/media (real media are not on this machine)")
    assert _unmatched(load_pose(), "frame") == []


@pytest.mark.slow  # one RetinaFace pass per labelled blink onset
def test_blink_boxes_match_a_detection() -> None:
    if not (SHARED / "media").exists():
        pytest.skip("needs ../shared/media (real media are not on this machine)")
    assert _unmatched(load_blinks(), "onset_frame") == []
