"""Issue 32: head pose, eyes, mouth, blinks and valence (fervid.behaviour) on faces where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fervid.behaviour.blinks import MAX_BLINK_S, detect_blinks
from fervid.behaviour.eyes import EYE_L, EYE_R, INNER_LIPS, eye_and_mouth, eye_aspect_ratio
from fervid.behaviour.pose import (
    MAX_FIVE_POINT_YAW,
    MODEL_INDEX,
    MODEL_POINTS,
    angles_of,
    camera_matrix,
    choose_pose,
    fit_pose,
    nose_side,
    rotation_of,
)
from fervid.behaviour.summary import add_behaviour_summary
from fervid.behaviour.valence import add_smoothed_valence, valence
from fervid.smooth import add_smoothed
from fervid.types import EMOTIONS

WIDTH, HEIGHT = 640, 480


def project(yaw: float, pitch: float, roll: float, distance: float = 600.0) -> np.ndarray:
    """(68, 2) landmarks of the mean face turned by these angles, seen by the assumed camera (the points the
    model lacks sit on the model's centroid)."""
    rotated = MODEL_POINTS @ rotation_of(yaw, pitch, roll).T + [0.0, 0.0, distance]
    camera = camera_matrix(WIDTH, HEIGHT)
    image = rotated @ camera.T
    image = image[:, :2] / image[:, 2:]
    points = np.tile(image.mean(axis=0), (68, 1))
    points[MODEL_INDEX] = image
    return points


@pytest.mark.parametrize(
    ("yaw", "pitch", "roll"),
    [(0, 0, 0), (30, 0, 0), (-30, 0, 0), (0, 15, 0), (0, -15, 0), (0, 0, 20), (0, 0, -20), (25, -10, 8),
     (-45, 12, -15), (55, 5, 5)],
)  # fmt: skip
def test_pose_recovers_known_rotations(yaw: float, pitch: float, roll: float) -> None:
    fit = fit_pose(project(yaw, pitch, roll)[None], np.array([[WIDTH, HEIGHT]]))
    assert fit["yaw"][0] == pytest.approx(yaw, abs=0.5)
    assert fit["pitch"][0] == pytest.approx(pitch, abs=0.5)
    assert fit["roll"][0] == pytest.approx(roll, abs=0.5)
    assert fit["error"][0] < 1e-3


def test_pose_signs_follow_the_image() -> None:
    """Positive yaw: the nose tip moves to the image's right; positive pitch: up; positive roll: the eye line
    runs down to the right."""
    nose = int(np.flatnonzero(MODEL_INDEX == 30)[0])
    eye_l, eye_r = (int(np.flatnonzero(np.equal(MODEL_INDEX, i))[0]) for i in (36, 45))

    def nose_from_eyes(points: np.ndarray) -> np.ndarray:
        return points[MODEL_INDEX][nose] - (points[MODEL_INDEX][eye_l] + points[MODEL_INDEX][eye_r]) / 2

    front = nose_from_eyes(project(0, 0, 0))
    assert nose_from_eyes(project(30, 0, 0))[0] > front[0] + 10
    assert nose_from_eyes(project(0, 20, 0))[1] < front[1] - 10
    tilted = project(0, 0, 20)[MODEL_INDEX]
    assert tilted[eye_r, 1] > tilted[eye_l, 1]


@pytest.mark.parametrize("angles", [(0, 0, 0), (40, -20, 10), (-70, 30, -45), (10, 60, 170)])
def test_angles_invert_rotation(angles: tuple[float, float, float]) -> None:
    assert angles_of(rotation_of(*angles)) == pytest.approx(angles, abs=1e-9)


def test_pose_source_rules() -> None:
    """A good fit: the mean of the two yaws, the fit's pitch and roll. A bad fit, a large five-point yaw or a nose at
    the box's edge (profile): the side of the nose, the larger of the two sizes, no pitch; the five-point roll only
    for a rejected fit on a face not turned far (a turned face's hidden eye is the detector's guess)."""
    fit = {"yaw": np.array([10.0, 10.0, 10.0, 10.0, 70.0, -20.0, np.nan, np.nan]),
           "pitch": np.array([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, np.nan, np.nan]),
           "roll": np.array([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, np.nan, np.nan]),
           "error": np.array([0.05, 0.5, 0.05, 0.05, 0.05, 0.05, np.nan, np.nan])}  # fmt: skip
    yaw5 = np.array([12.0, 12.0, MAX_FIVE_POINT_YAW + 20, 30.0, 50.0, 80.0, -30.0, np.nan])
    roll5 = np.array([3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0, np.nan])
    side = np.array([0.05, 0.05, 0.3, 0.45, 0.3, -0.5, -0.25, 0.0])
    pose = choose_pose(fit, yaw5, roll5, side)
    assert list(pose["pose_source"]) == ["68", "5", "5", "5", "5", "5", "5", "none"]
    expected_yaw = [11.0, 12.0, MAX_FIVE_POINT_YAW + 20, np.degrees(np.arcsin(0.9)), 50.0, -90.0, -30.0, np.nan]
    np.testing.assert_allclose(pose["yaw"], expected_yaw, rtol=1e-6)
    np.testing.assert_allclose(pose["roll"], [2.0, 3.0, np.nan, np.nan, np.nan, np.nan, 4.0, np.nan])
    assert pose["pitch"][0] == 5.0 and np.isnan(pose["pitch"][1:]).all()


def test_nose_side() -> None:
    boxes = np.array([[0, 0, 100, 100], [0, 0, 100, 100], [10, 0, 10, 50]], dtype=np.float32)
    landmarks = np.zeros((3, 5, 2), dtype=np.float32)
    landmarks[:, 2, 0] = [50, 5, 10]
    side = nose_side(boxes, landmarks)
    np.testing.assert_allclose(side[:2], [0.0, -0.45])
    assert np.isnan(side[2])


def test_pose_empty() -> None:
    fit = fit_pose(np.zeros((0, 68, 2)), np.zeros((0, 2)))
    assert all(len(v) == 0 for v in fit.values())
    assert len(choose_pose(fit, np.zeros(0), np.zeros(0), np.zeros(0))["pose_source"]) == 0


def _eye(height: float, width: float = 30.0) -> np.ndarray:
    """p1..p6 of an eye as an ellipse-ish hexagon: corners at 0 and ``width``, lids ``height`` apart."""
    h = height / 2
    return np.array([[0, 0], [10, -h], [20, -h], [width, 0], [20, h], [10, h]], dtype=np.float64)


def test_eye_aspect_ratio_known_values() -> None:
    ear = eye_aspect_ratio(np.stack([_eye(9.0), _eye(3.0), _eye(0.0), _eye(9.0, width=0.0)]))
    np.testing.assert_allclose(ear[:3], [0.3, 0.1, 0.0])
    assert np.isnan(ear[3])


def test_eye_aspect_ratio_ignores_size_and_roll() -> None:
    eye = _eye(9.0)
    angle = np.radians(25)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 3.7 * eye @ turn.T + [100, 50]
    np.testing.assert_allclose(eye_aspect_ratio(moved[None]), eye_aspect_ratio(eye[None]))


def _face(eye_height: float, lip_gap: float) -> np.ndarray:
    points = np.zeros((68, 2))
    points[EYE_L] = _eye(eye_height) + [0, 0]
    points[EYE_R] = _eye(eye_height) + [60, 0]  # eye centres 60 px apart
    points[INNER_LIPS[:, 0]] = [[20, 80], [30, 80], [40, 80]]
    points[INNER_LIPS[:, 1]] = [[20, 80 + lip_gap], [30, 80 + lip_gap], [40, 80 + lip_gap]]
    return points


def test_eyes_and_mouth_open_and_closed() -> None:
    out = eye_and_mouth(np.stack([_face(9.0, 0.0), _face(1.5, 30.0)]))
    np.testing.assert_allclose(out["eye_open_l"], [0.3, 0.05], rtol=1e-6)
    np.testing.assert_allclose(out["eye_open_r"], [0.3, 0.05], rtol=1e-6)
    np.testing.assert_allclose(out["mouth_open"], [0.0, 0.5], rtol=1e-6)


def test_valence_formula() -> None:
    classes = EMOTIONS  # angry, disgust, fear, happy, sad, surprise, neutral, contempt
    probs = np.array([
        [0, 0, 0, 1, 0, 0, 0, 0],  # all happy: 1
        [1, 0, 0, 0, 0, 0, 0, 0],  # all angry: -1
        [0, 0, 0, 0, 0, 0, 1, 0],  # neutral: 0
        [0.1, 0.2, 0.05, 0.5, 0.15, 0, 0, 0],  # 0.5 - 0.2 (disgust)
        [0.1, 0.05, 0.1, 0.2, 0.3, 0.1, 0.1, 0.05],  # 0.2 - 0.3 (sad)
        [0, 0, 0, 0.2, 0, 0.4, 0, 0.4],  # surprise and contempt count for neither side
    ])  # fmt: skip
    np.testing.assert_allclose(valence(probs, classes), [1, -1, 0, 0.3, -0.1, 0.2], atol=1e-7)
    assert valence(probs[:, 4:], classes[4:]).tolist() == pytest.approx([np.nan] * 6, nan_ok=True)  # no happy
    assert valence(np.zeros((0, 8)), classes).shape == (0,)


def test_smoothed_valence_follows_the_smoothed_probabilities() -> None:
    classes = ("happy", "sad", "neutral")
    timeline = pd.DataFrame({"time_s": [0.0, 0.1, 0.2], "face_id": [1, 1, 1], "p_happy": [1.0, 0.0, 1.0],
                             "p_sad": [0.0, 1.0, 0.0], "p_neutral": [0.0, 0.0, 0.0]})  # fmt: skip
    timeline["valence"] = valence(timeline[[f"p_{c}" for c in classes]].to_numpy(), classes)
    smoothed = add_smoothed(timeline, classes, 0.3, "centred", min_p_correct=0.0)
    expected = smoothed["ps_happy"] - smoothed["ps_sad"]
    np.testing.assert_allclose(smoothed["valence_s"], expected, rtol=1e-6)
    assert add_smoothed_valence(timeline.drop(columns="valence"), classes).columns.tolist() == [
        c for c in timeline.columns if c != "valence"
    ]


def _track(openings: list[float], face_id: int = 1, fps: float = 25.0, t0: float = 0.0) -> pd.DataFrame:
    t = t0 + np.arange(len(openings)) / fps
    return pd.DataFrame({"time_s": t, "face_id": face_id, "person_id": face_id + 10,
                         "eye_open_l": openings, "eye_open_r": openings})  # fmt: skip


def test_blinks_hysteresis_and_durations() -> None:
    o, c, half = 0.3, 0.1, 0.22  # open, closed, between the two thresholds (0.21 and 0.24 of a 0.3 open level)
    signal = [o] * 20 + [c, c, c] + [o] * 20  # a blink of 3 frames: 0.12 s
    signal += [c, half, c, half, c] + [o] * 20  # jitter between the thresholds: one blink, not three
    signal += [c] * 30 + [o] * 20  # 1.2 s shut: not a blink
    signal += [half] * 5 + [o] * 20  # never below the closing threshold: nothing
    signal += [o] * 200  # the open level is the top of the signal
    blinks = detect_blinks(_track(signal))
    assert blinks.columns.tolist() == ["face_id", "person_id", "start_s", "end_s", "duration_s"]
    np.testing.assert_allclose(blinks["start_s"], [20 / 25, 43 / 25])
    np.testing.assert_allclose(blinks["duration_s"], [3 / 25, 5 / 25])
    assert (blinks["person_id"] == 11).all()
    assert (blinks["duration_s"] <= MAX_BLINK_S).all()


def test_blinks_not_counted_across_gaps_or_unmeasured_frames() -> None:
    o, c = 0.3, 0.1
    before = _track([o] * 20 + [c, c])
    after = _track([c, o] + [o] * 20, t0=before["time_s"].iloc[-1] + 1.0)  # the face was lost for a second
    nan_in_blink = _track([o] * 20 + [c, np.nan, c, o] + [o] * 20, face_id=2)
    blinks = detect_blinks(pd.concat([before, after, nan_in_blink], ignore_index=True))
    assert blinks.empty


def test_blinks_need_eye_columns_and_tracks() -> None:
    timeline = _track([0.3] * 20).drop(columns=["eye_open_l", "eye_open_r"])
    assert detect_blinks(timeline).empty
    assert detect_blinks(_track([0.3, 0.1, 0.3] * 10, face_id=-1)).empty  # photos: no track


def test_blink_rate_and_mean_valence() -> None:
    timeline = pd.DataFrame({"face_id": [1, 1, 1, 2], "person_id": [1, 1, 1, 1], "valence": [0.5, -0.5, 1.0, 0.2],
                             "readable": [True, True, False, True], "p_correct": [0.9, 0.9, 0.9, 0.9]})  # fmt: skip
    summary = pd.DataFrame({"face_id": [1, 2], "visible_s": [30.0, 60.0]})
    blinks = pd.DataFrame({"face_id": [1, 1, 1], "person_id": [1, 1, 1]})
    out = add_behaviour_summary(summary, timeline, blinks, "face_id", 0.5)
    np.testing.assert_allclose(out["blinks_per_min"], [6.0, 0.0])
    np.testing.assert_allclose(out["mean_valence"], [0.0, 0.2])  # the unreadable face does not count
    persons = add_behaviour_summary(pd.DataFrame({"person_id": [1], "visible_s": [90.0]}), timeline, blinks,
                                    "person_id", 0.5)  # fmt: skip
    np.testing.assert_allclose(persons["blinks_per_min"], [2.0])
    no_blinks = add_behaviour_summary(summary, timeline, None, "face_id", 0.5)
    assert no_blinks["blinks_per_min"].isna().all()
    assert add_behaviour_summary(summary, timeline.drop(columns="valence"), blinks).columns.tolist() == [
        "face_id", "visible_s",
    ]  # fmt: skip
