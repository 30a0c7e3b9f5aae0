"""Property-based tests (hypothesis) for box geometry and the tracker.

tests/test_geometry.py and tests/test_track.py cover named cases and one random-detection
property (unique, consecutive IDs); these add the invariants that must hold for any
input: IoU bounds and symmetry, what NMS may keep, and that tracking never alters boxes.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fervid.geometry import batched_nms, box_area, box_iou, box_iou_np, nms
from fervid.track import BackfilledTracker, FaceTracker
from fervid.types import Detections

# Boxes as (x, y, w, h): w/h may be 0 (degenerate) or negative-free; coordinates span a 4K frame and beyond.
coord = st.floats(-100, 4000, allow_nan=False, width=32)
side = st.floats(0, 800, allow_nan=False, width=32)
box_st = st.tuples(coord, coord, side, side)
boxes_st = st.lists(box_st, max_size=30)


def to_xyxy(boxes: list[tuple[float, float, float, float]]) -> torch.Tensor:
    xywh = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)


# ------------------------------------------------------------------------------------ IoU


@settings(max_examples=200, deadline=None)
@given(a=boxes_st, b=boxes_st)
def test_iou_is_bounded_symmetric_and_finite(a: list, b: list) -> None:
    ta, tb = to_xyxy(a), to_xyxy(b)
    iou = box_iou(ta, tb)
    assert iou.shape == (len(a), len(b))
    assert torch.isfinite(iou).all()
    assert (iou >= 0).all() and (iou <= 1 + 1e-6).all()
    assert torch.equal(iou, box_iou(tb, ta).T)
    np.testing.assert_allclose(box_iou_np(ta.numpy(), tb.numpy()), iou.numpy())


@settings(max_examples=200, deadline=None)
@given(a=boxes_st)
def test_iou_with_itself_is_one_for_boxes_with_area(a: list) -> None:
    ta = to_xyxy(a)
    diagonal = torch.diagonal(box_iou(ta, ta))
    has_area = box_area(ta) > 0
    assert torch.allclose(diagonal[has_area], torch.ones(int(has_area.sum())))
    assert (diagonal[~has_area] == 0).all()


@settings(max_examples=100, deadline=None)
@given(a=box_st, shift=st.floats(0, 2000, allow_nan=False))
def test_iou_of_disjoint_boxes_is_zero(a: tuple, shift: float) -> None:
    ta = to_xyxy([a])
    tb = ta.clone()
    tb[:, [0, 2]] += ta[:, 2] - ta[:, 0] + shift  # moved right past its own width
    assert box_iou(ta, tb).item() == 0.0


# ------------------------------------------------------------------------------------ NMS


@settings(max_examples=200, deadline=None)
@given(
    boxes=boxes_st,
    data=st.data(),
    threshold=st.floats(0.05, 0.95),
    groups=st.integers(1, 3),
)
def test_nms_keeps_a_maximal_non_overlapping_subset(
    boxes: list, data: st.DataObject, threshold: float, groups: int
) -> None:
    n = len(boxes)
    xyxy = to_xyxy(boxes)
    scores = torch.tensor(data.draw(st.lists(st.floats(0, 1, width=32), min_size=n, max_size=n)), dtype=torch.float32)
    idxs = torch.tensor(data.draw(st.lists(st.integers(0, groups - 1), min_size=n, max_size=n)), dtype=torch.long)
    kept = batched_nms(xyxy, scores, idxs, threshold)

    assert kept.dtype == torch.long
    assert len(set(kept.tolist())) == len(kept), "an index kept twice"
    assert all(0 <= k < n for k in kept.tolist()), "kept indices are a subset of the input"
    assert (n == 0) == (len(kept) == 0), "something is always kept from non-empty input"
    assert (scores[kept][:-1] >= scores[kept][1:]).all(), "highest score first"

    iou = box_iou(xyxy, xyxy)
    same_group = idxs[:, None] == idxs[None, :]
    k = kept
    overlap = (iou[k][:, k] > threshold) & same_group[k][:, k]
    overlap.fill_diagonal_(False)
    assert not overlap.any(), "two kept boxes of one group overlap above the threshold"
    # greedy NMS drops a box only for a kept box of its group that scores at least as high
    dropped = sorted(set(range(n)) - set(k.tolist()))
    for j in dropped:
        blockers = (iou[j, k] > threshold) & same_group[j, k] & (scores[k] >= scores[j])
        assert blockers.any(), f"box {j} was dropped without a kept box covering it"


@settings(max_examples=100, deadline=None)
@given(boxes=boxes_st, threshold=st.floats(0.05, 0.95))
def test_groups_are_independent(boxes: list, threshold: float) -> None:
    """Two copies of a frame in one batched call keep the same boxes as one frame alone."""
    n = len(boxes)
    xyxy = to_xyxy(boxes)
    scores = torch.linspace(1, 0.1, n) if n else torch.zeros(0)
    single = nms(xyxy, scores, threshold).tolist()
    both = batched_nms(
        torch.cat([xyxy, xyxy]), torch.cat([scores, scores]), torch.arange(2 * n) // max(n, 1), threshold
    )
    assert sorted(both.tolist()) == sorted(single + [i + n for i in single])


# -------------------------------------------------------------------------------- tracker

score_st = st.floats(0, 1, allow_nan=False)
# Mostly sane boxes, some degenerate or non-finite ones: the tracker must survive them all.
odd_value = st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, -5.0])
det_row = st.tuples(coord, coord, side, side, score_st) | st.tuples(odd_value, coord, side, side, score_st)
frames_st = st.lists(st.lists(det_row, max_size=6), max_size=20)


def make_dets(rows: list[tuple[float, float, float, float, float]], seed: int) -> Detections:
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in rows], dtype=np.float64).reshape(-1, 4)
    landmarks = np.random.default_rng(seed).uniform(0, 100, (len(rows), 5, 2))
    return Detections(xyxy, np.array([r[4] for r in rows], dtype=np.float64), landmarks)


@settings(max_examples=150, deadline=None)
@given(frames=frames_st, dt=st.lists(st.floats(-0.1, 0.5, allow_nan=False), min_size=20, max_size=20))
def test_tracker_never_changes_boxes_and_ids_are_unique(frames: list, dt: list[float]) -> None:
    tracker = FaceTracker()
    time_s = 0.0
    for i, rows in enumerate(frames):
        time_s += dt[i]  # includes steps backwards in time
        dets = make_dets(rows, i)
        before = (dets.xyxy.copy(), dets.score.copy(), dets.landmarks.copy(), dets.track_id.copy())
        out = tracker.update(dets, time_s)
        assert len(out) == len(dets)
        np.testing.assert_array_equal(out.xyxy, dets.xyxy)
        np.testing.assert_array_equal(out.score, dets.score)
        np.testing.assert_array_equal(out.landmarks, dets.landmarks)
        for now, then in zip((dets.xyxy, dets.score, dets.landmarks, dets.track_id), before):
            np.testing.assert_array_equal(now, then)  # the input is not modified
        ids = out.track_id[out.track_id >= 1]
        assert len(np.unique(ids)) == len(ids)
        invalid = ~np.isfinite(dets.xyxy).all(axis=1) | (dets.xyxy[:, 2] <= dets.xyxy[:, 0])
        assert (out.track_id[invalid] == -1).all(), "a non-finite or empty box got an ID"


@settings(max_examples=100, deadline=None)
@given(frames=frames_st, min_hits=st.integers(1, 4))
def test_backfilled_tracker_releases_every_frame_once_in_order(frames: list, min_hits: int) -> None:
    backfill = BackfilledTracker[int](FaceTracker(min_hits=min_hits))
    inputs = [make_dets(rows, i) for i, rows in enumerate(frames)]
    released = []
    for i, dets in enumerate(inputs):
        released += backfill.push(i, dets, i / 30)
    released += backfill.flush()
    assert [i for i, _ in released] == list(range(len(inputs)))
    for i, dets in released:
        assert (dets.track_id >= 1).all(), "only rows of confirmed tracks are released"
        assert len(np.unique(dets.track_id)) == len(dets)
        source = inputs[i]
        for row in range(len(dets)):  # every released row is an input row, unchanged
            match = (source.xyxy == dets.xyxy[row]).all(axis=1) & (source.score == dets.score[row])
            assert match.any()
