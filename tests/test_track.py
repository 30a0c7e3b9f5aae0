"""FaceTracker: stable IDs, confirmation, buffer, low-score second pass, time handling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fervid.track import FaceTracker, iou_similarity
from fervid.types import Detections

FPS = 30.0


def dets(boxes: list[list[float]] | np.ndarray, scores: list[float] | np.ndarray | None = None) -> Detections:
    """Detections from xyxy boxes (scores default to a confident 0.9)."""
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    score = np.full(len(xyxy), 0.9) if scores is None else np.asarray(scores, dtype=np.float64)
    return Detections(xyxy, score, np.zeros((len(xyxy), 5, 2)))


def box(cx: float, cy: float, size: float = 60.0) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def run(tracker: FaceTracker, frames: list[tuple[float, Detections]]) -> list[np.ndarray]:
    """Feed (time_s, detections) pairs; return the track_id array of each frame."""
    return [tracker.update(d, t).track_id for t, d in frames]


# --- basics ------------------------------------------------------------------------


def test_empty_input_gives_empty_output() -> None:
    tracker = FaceTracker()
    for i in range(5):
        out = tracker.update(Detections.empty(), i / FPS)
        assert len(out) == 0
        assert out.track_id.dtype == np.int64


def test_output_is_row_aligned_with_input() -> None:
    tracker = FaceTracker()
    d = dets([box(100, 100), box(400, 100), [5, 5, 5, 5]], [0.9, 0.05, 0.9])
    for i in range(3):
        out = tracker.update(d, i / FPS)
        np.testing.assert_array_equal(out.xyxy, d.xyxy)
        np.testing.assert_array_equal(out.score, d.score)
    # Low score (never starts a track) and a zero-size box stay untracked.
    assert out.track_id.tolist() == [1, -1, -1]
    assert d.track_id.tolist() == [-1, -1, -1], "input must not be modified"


def test_one_face_moving_steadily_keeps_id_1() -> None:
    frames = [(i / FPS, dets([box(50 + 3 * i, 200 + i)])) for i in range(100)]
    ids = run(FaceTracker(), frames)
    assert ids[0].tolist() == [-1], "tentative on the first frame, no back-fill"
    assert all(frame.tolist() == [1] for frame in ids[1:])


@pytest.mark.parametrize(
    ("speed", "dy"),
    [(3.0, 0.0), (3.0, 20.0), (6.0, 10.0), (10.0, 0.0)],
)
def test_two_faces_crossing_keep_their_ids(speed: float, dy: float) -> None:
    rng = np.random.default_rng(0)
    frames, order = [], []
    for i in range(60):
        a, b = box(100 + speed * i, 200), box(100 + speed * 59 - speed * i, 200 + dy)
        perm = rng.permutation(2)  # row order must not carry identity
        frames.append((i / FPS, dets(np.array([a, b])[perm])))
        order.append(perm)
    ids = run(FaceTracker(), frames)
    a_ids = {int(frame[np.flatnonzero(perm == 0)[0]]) for frame, perm in zip(ids[1:], order[1:], strict=True)}
    b_ids = {int(frame[np.flatnonzero(perm == 1)[0]]) for frame, perm in zip(ids[1:], order[1:], strict=True)}
    assert len(a_ids) == 1 and len(b_ids) == 1 and a_ids != b_ids


def test_one_frame_false_positive_gets_no_id() -> None:
    frames = []
    for i in range(20):
        boxes = [box(100, 100)]
        if i == 5:
            boxes.append(box(400, 300))
        if i >= 10:
            boxes.append(box(600, 300))
        frames.append((i / FPS, dets(boxes)))
    ids = run(FaceTracker(), frames)
    assert ids[5].tolist() == [1, -1]
    assert ids[11].tolist() == [1, 2], "the false positive consumed no ID"


@pytest.mark.parametrize(
    ("gap_s", "expected_id"),
    [(0.2, 1), (0.9, 1), (1.2, 2), (3.0, 2)],
)
def test_disappearing_face_keeps_id_only_within_buffer(gap_s: float, expected_id: int) -> None:
    tracker = FaceTracker(track_buffer_s=1.0)
    times = [i / FPS for i in range(10)]
    for t in times:
        tracker.update(dets([box(200, 200)]), t)
    t = times[-1]
    while t < times[-1] + gap_s - 1e-9:  # frames with no face
        t += 1 / FPS
        tracker.update(Detections.empty(), t)
    back = [tracker.update(dets([box(200, 200)]), t + k / FPS).track_id.tolist() for k in (1, 2)]
    # Within the buffer the ID is back at once; otherwise a new track is confirmed on its 2nd hit.
    assert back[-1] == [expected_id]
    assert back[0] == ([1] if expected_id == 1 else [-1])


# --- second pass -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low_score", "expected"),
    [(0.3, 1), (0.15, 1), (0.05, -1)],  # below low_threshold the box is ignored
)
def test_low_score_detections_extend_a_track(low_score: float, expected: int) -> None:
    tracker = FaceTracker()
    for i in range(5):
        tracker.update(dets([box(100 + 2 * i, 100)]), i / FPS)
    for i in range(5, 15):
        out = tracker.update(dets([box(100 + 2 * i, 100)], [low_score]), i / FPS)
        assert out.track_id.tolist() == [expected]


def test_low_score_detections_never_start_a_track() -> None:
    tracker = FaceTracker()
    for i in range(30):
        out = tracker.update(dets([box(100, 100), box(300, 100)], [0.5, 0.65]), i / FPS)
        # 0.5 is low; 0.65 is high but below new_track_threshold=0.7.
        assert out.track_id.tolist() == [-1, -1]


# --- IDs ---------------------------------------------------------------------------


def test_ids_are_consecutive_in_order_of_confirmation() -> None:
    tracker = FaceTracker()
    starts = {0: box(100, 100), 10: box(300, 100), 20: box(500, 100)}
    seen: list[int] = []
    for i in range(30):
        out = tracker.update(dets([b for s, b in starts.items() if i >= s]), i / FPS)
        seen.extend(x for x in out.track_id.tolist() if x not in seen and x >= 1)
    assert seen == [1, 2, 3]


def test_reset_restarts_ids_at_1() -> None:
    tracker = FaceTracker()
    frames = [(i / FPS, dets([box(100, 100), box(300, 100)])) for i in range(5)]
    assert run(tracker, frames)[-1].tolist() == [1, 2]
    tracker.reset()
    # Times restart too (a new input); the old tracks must be gone.
    assert run(tracker, [(t, dets([box(300, 100)])) for t, _ in frames])[-1].tolist() == [1]


def test_min_hits_1_confirms_on_first_frame() -> None:
    out = FaceTracker(min_hits=1).update(dets([box(100, 100), box(300, 100)]), 0.0)
    assert out.track_id.tolist() == [1, 2]


@pytest.mark.parametrize("min_hits", [2, 3, 5])
def test_min_hits_needs_consecutive_hits(min_hits: int) -> None:
    tracker = FaceTracker(min_hits=min_hits)
    ids = [tracker.update(dets([box(100, 100)]), i / FPS).track_id[0] for i in range(min_hits + 2)]
    assert ids == [-1] * (min_hits - 1) + [1] * 3
    # A miss while tentative restarts the count.
    tracker.reset()
    pattern = [True] * (min_hits - 1) + [False] + [True] * min_hits
    ids = [tracker.update(dets([box(100, 100)] if on else []), i / FPS).track_id for i, on in enumerate(pattern)]
    assert [x.tolist() for x in ids].count([1]) == 1


# --- time --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_irregular_time_steps_keep_id(seed: int) -> None:
    """A face moving at a constant speed in px/s, sampled at irregular times.

    The long steps move the face about one box width; a filter that ignored dt would
    predict a one-frame move and lose it.
    """
    rng = np.random.default_rng(seed)
    speed = 240.0  # px/s, 8 px per frame at 30 fps
    times = [i / FPS for i in range(10)]
    while times[-1] < 4.0:
        times.append(times[-1] + rng.choice([1 / FPS, 7 / FPS, 0.5 / FPS]))
    ids = run(FaceTracker(), [(t, dets([box(50 + speed * t, 200)])) for t in times])
    assert all(frame.tolist() == [1] for frame in ids[1:])


@pytest.mark.parametrize("every", [1, 3, 10])
def test_every_nth_frame_keeps_id(every: int) -> None:
    frames = [(i / FPS, dets([box(50 + 2 * i, 200)])) for i in range(0, 150, every)]
    ids = run(FaceTracker(), frames)
    assert all(frame.tolist() == [1] for frame in ids[1:])


def test_time_going_backwards_does_not_crash() -> None:
    tracker = FaceTracker()
    for t in [0.0, 0.033, 0.066, 0.05, 0.1, 0.1]:
        out = tracker.update(dets([box(100, 100)]), t)
    assert out.track_id.tolist() == [1]


# --- shot cuts ---------------------------------------------------------------------


def test_shot_cut_does_not_steal_another_face() -> None:
    """After a cut the old face is gone and a new one appears elsewhere: it needs a new ID."""
    tracker = FaceTracker()
    for i in range(30):
        tracker.update(dets([box(100 + 2 * i, 200)]), i / FPS)
    after = [tracker.update(dets([box(400, 200)]), (30 + k) / FPS).track_id.tolist() for k in range(5)]
    assert after == [[-1]] + [[2]] * 4


def test_cut_swapping_two_faces_with_no_overlap_gives_new_ids() -> None:
    tracker = FaceTracker()
    for i in range(10):
        tracker.update(dets([box(100, 200), box(500, 200)]), i / FPS)
    # Faces jump to places overlapping neither old track.
    out = [tracker.update(dets([box(300, 50), box(300, 400)]), (10 + k) / FPS).track_id for k in range(3)]
    assert out[0].tolist() == [-1, -1] and out[-1].tolist() == [3, 4]


# --- validation and helpers --------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"track_buffer_s": -1.0},
        {"low_threshold": 0.7, "high_threshold": 0.6},
        {"match_iou": 0.0},
        {"min_hits": 0},
        {"new_track_threshold": 1.5},
    ],
)
def test_bad_arguments_raise_with_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be in"):
        FaceTracker(**kwargs)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),
    ],
)
def testiou_similarity(a: list[float], b: list[float], expected: float) -> None:
    assert iou_similarity(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


def test_box_iou_empty() -> None:
    assert iou_similarity(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)


# --- properties --------------------------------------------------------------------

coord = st.floats(-50, 700, allow_nan=False)
size = st.floats(0, 200, allow_nan=False)
score = st.floats(0, 1, allow_nan=False)
frame_st = st.lists(st.tuples(coord, coord, size, size, score), max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    frames=st.lists(frame_st, max_size=25),
    steps=st.lists(st.floats(0, 0.5, allow_nan=False), min_size=25, max_size=25),
    min_hits=st.integers(1, 3),
)
def test_random_detections_property(
    frames: list[list[tuple[float, float, float, float, float]]], steps: list[float], min_hits: int
) -> None:
    tracker = FaceTracker(min_hits=min_hits)
    time_s, all_ids = 0.0, set()
    for rows, dt in zip(frames, steps, strict=False):
        time_s += dt
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in rows]).reshape(-1, 4)
        d = dets(xyxy, [r[4] for r in rows])
        out = tracker.update(d, time_s)
        assert len(out) <= len(d)
        ids = out.track_id[out.track_id >= 1]
        assert len(np.unique(ids)) == len(ids), "an ID appears twice in one frame"
        assert np.all((out.track_id == -1) | (out.track_id >= 1))
        all_ids.update(ids.tolist())
    assert all_ids == set(range(1, len(all_ids) + 1)), "IDs are consecutive from 1"
