"""Tables of cases for anchors, box/landmark decoding, IoU and NMS (fervid.geometry)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fervid.geometry import (
    VARIANCES,
    batched_nms,
    box_iou,
    box_iou_np,
    decode_boxes,
    decode_landmarks,
    nms,
    prior_boxes,
)

# --- priors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width"),
    [(640, 640), (360, 640), (359, 641), (1, 1), (33, 95)],
)
def test_prior_count_is_two_per_cell_per_level(height: int, width: int) -> None:
    expected = sum(2 * math.ceil(height / s) * math.ceil(width / s) for s in (8, 16, 32))
    priors = prior_boxes(height, width)
    assert priors.shape == (expected, 4)
    assert priors.dtype == torch.float32


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, (4.0, 4.0, 16.0, 16.0)),  # first cell of stride 8, small anchor
        (1, (4.0, 4.0, 32.0, 32.0)),  # same cell, large anchor
        (2, (12.0, 4.0, 16.0, 16.0)),  # next cell is to the right (row-major)
        (2 * 8, (4.0, 12.0, 16.0, 16.0)),  # a 64-wide input has 8 cells per row
        (2 * 64, (8.0, 8.0, 64.0, 64.0)),  # first cell of stride 16
        (2 * 64 + 2 * 16, (16.0, 16.0, 256.0, 256.0)),  # first cell of stride 32
        (-1, (48.0, 48.0, 512.0, 512.0)),  # last cell of stride 32, large anchor
    ],
)
def test_prior_centres_and_sizes(index: int, expected: tuple[float, ...]) -> None:
    priors = prior_boxes(64, 64)
    assert priors[index].tolist() == pytest.approx(expected)


def test_priors_are_cached_per_size_and_custom_layout_works() -> None:
    assert prior_boxes(120, 160) is prior_boxes(120, 160)
    assert prior_boxes(120, 160) is not prior_boxes(160, 120)
    single = prior_boxes(16, 16, strides=(16,), sizes=((10, 20, 30),))
    assert single.tolist() == [[8, 8, 10, 10], [8, 8, 20, 20], [8, 8, 30, 30]]
    assert prior_boxes(16, 16, strides=(), sizes=()).shape == (0, 4)
    with pytest.raises(ValueError, match="one sizes tuple per stride"):
        prior_boxes(16, 16, strides=(8, 16), sizes=((16,),))


# --- decoding -----------------------------------------------------------------------------------


def encode(boxes: torch.Tensor, priors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """Inverse of decode_boxes (the training-time encoding), written independently here."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    size = boxes[..., 2:] - boxes[..., :2]
    offset = (centre - priors[:, :2]) / (variances[0] * priors[:, 2:])
    log_size = torch.log(size / priors[:, 2:]) / variances[1]
    return torch.cat([offset, log_size], dim=-1)


@pytest.mark.parametrize("batch", [(), (1,), (3,)])
def test_decode_boxes_round_trips_encode(batch: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    priors = prior_boxes(40, 56)
    xy = torch.rand(*batch, len(priors), 2, generator=gen) * 50
    wh = torch.rand(*batch, len(priors), 2, generator=gen) * 80 + 2
    boxes = torch.cat([xy, xy + wh], dim=-1)
    decoded = decode_boxes(encode(boxes, priors), priors)
    assert decoded.shape == boxes.shape
    torch.testing.assert_close(decoded, boxes, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    ("loc", "prior", "expected"),
    [
        ((0, 0, 0, 0), (10, 20, 16, 32), (2, 4, 18, 36)),  # zero offset = the anchor itself
        ((1, 0, 0, 0), (10, 20, 16, 32), (3.6, 4, 19.6, 36)),  # +1 moves by 0.1 anchor widths
        ((0, 0, 5, 0), (10, 20, 16, 32), (10 - 8 * math.e, 4, 10 + 8 * math.e, 36)),  # 5 * 0.2 = log(e)
    ],
)
def test_decode_boxes_cases(loc, prior, expected) -> None:
    out = decode_boxes(torch.tensor([loc], dtype=torch.float32), torch.tensor([prior], dtype=torch.float32))
    assert out[0].tolist() == pytest.approx(expected, abs=1e-4)


def test_decode_landmarks_round_trip_and_shape() -> None:
    gen = torch.Generator().manual_seed(1)
    priors = prior_boxes(32, 32)
    points = torch.rand(2, len(priors), 5, 2, generator=gen) * 32
    offsets = (points - priors[:, None, :2]) / (VARIANCES[0] * priors[:, None, 2:])
    decoded = decode_landmarks(offsets.reshape(2, len(priors), 10), priors)
    assert decoded.shape == (2, len(priors), 5, 2)
    torch.testing.assert_close(decoded, points, rtol=1e-4, atol=1e-4)


def test_decode_empty() -> None:
    empty = torch.zeros(0, 4)
    assert decode_boxes(torch.zeros(0, 4), empty).shape == (0, 4)
    assert decode_landmarks(torch.zeros(2, 0, 10), empty).shape == (2, 0, 5, 2)


# --- IoU ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),  # identical
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),  # disjoint
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),  # touching edges
        ((0, 0, 10, 10), (2, 2, 7, 7), 25 / 100),  # contained
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),  # half shifted
        ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),  # zero-area boxes: 0, not NaN
    ],
)
def test_box_iou_cases(a, b, expected) -> None:
    ta, tb = torch.tensor([a], dtype=torch.float32), torch.tensor([b], dtype=torch.float32)
    assert box_iou(ta, tb).item() == pytest.approx(expected)
    assert box_iou(tb, ta).item() == pytest.approx(expected)


@pytest.mark.parametrize(("n", "m"), [(0, 0), (0, 3), (4, 0), (2, 3)])
def test_box_iou_shapes_including_empty(n: int, m: int) -> None:
    a = torch.tensor([[0, 0, 5, 5]] * n, dtype=torch.float32).reshape(n, 4)
    b = torch.tensor([[1, 1, 6, 6]] * m, dtype=torch.float32).reshape(m, 4)
    assert box_iou(a, b).shape == (n, m)
    assert box_iou_np(a.numpy(), b.numpy()).shape == (n, m)


def test_box_iou_np_matches_torch() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (7, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 30, (7, 2))], axis=1)
    expected = box_iou(torch.tensor(boxes, dtype=torch.float32), torch.tensor(boxes, dtype=torch.float32))
    np.testing.assert_allclose(box_iou_np(boxes, boxes), expected.numpy(), rtol=1e-6)


# --- NMS ----------------------------------------------------------------------------------------


def naive_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, threshold: float) -> list[int]:
    """Textbook greedy NMS with plain Python loops, as the reference."""
    keep: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda k: (-float(scores[k]), k)):
        if all(
            int(idxs[j]) != int(idxs[i]) or box_iou(boxes[i : i + 1], boxes[j : j + 1]).item() <= threshold
            for j in keep
        ):
            keep.append(i)
    return keep


NMS_CASES = [
    # (boxes, scores, idxs, threshold, expected kept indices)
    ([], [], [], 0.5, []),
    ([(0, 0, 10, 10)], [0.3], [0], 0.5, [0]),
    ([(0, 0, 10, 10), (1, 1, 11, 11)], [0.6, 0.9], [0, 0], 0.5, [1]),  # overlap: keep best
    ([(0, 0, 10, 10), (1, 1, 11, 11)], [0.6, 0.9], [0, 1], 0.5, [1, 0]),  # other image: both stay
    ([(0, 0, 10, 10), (5, 0, 15, 10)], [0.9, 0.8], [0, 0], 0.5, [0, 1]),  # IoU 1/3 below threshold
    ([(0, 0, 10, 10), (5, 0, 15, 10)], [0.9, 0.8], [0, 0], 0.3, [0]),  # ... above a lower one
    # chain: 0 suppresses 1, so 2 (overlapping only 1) survives; a non-greedy NMS would drop it
    ([(0, 0, 10, 10), (4, 0, 14, 10), (8, 0, 18, 10)], [0.9, 0.8, 0.7], [0, 0, 0], 0.4, [0, 2]),
]


@pytest.mark.parametrize(("boxes", "scores", "idxs", "threshold", "expected"), NMS_CASES)
def test_batched_nms_cases(boxes, scores, idxs, threshold, expected) -> None:
    kept = batched_nms(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(idxs, dtype=torch.long),
        threshold,
    )
    assert kept.dtype == torch.long
    assert kept.tolist() == expected


@pytest.mark.parametrize("seed", range(6))
def test_batched_nms_matches_naive_reference(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    n = 150
    xy = torch.rand(n, 2, generator=gen) * 120
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=gen) * 50 + 1], dim=1)
    scores = torch.rand(n, generator=gen)
    idxs = torch.randint(0, 3, (n,), generator=gen)
    threshold = [0.3, 0.4, 0.5, 0.7][seed % 4]
    assert batched_nms(boxes, scores, idxs, threshold).tolist() == naive_nms(boxes, scores, idxs, threshold)
    single = torch.zeros(n, dtype=torch.long)
    assert nms(boxes, scores, threshold).tolist() == naive_nms(boxes, scores, single, threshold)
