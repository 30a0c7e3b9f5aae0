"""Box geometry for the detector and tracker: anchors, decoding, IoU and NMS.

Everything here is a pure, vectorized torch function that works on CPU and CUDA
tensors alike and returns empty results for empty input, so callers never need
special cases. Boxes are ``xyxy`` in pixels; anchors ("priors") are
``(cx, cy, w, h)`` in pixels of the network input.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

#: RetinaFace defaults: anchor strides and the two anchor sizes per stride.
STRIDES: tuple[int, ...] = (8, 16, 32)
SIZES: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
#: Variances of the box encoding (centre, size) the network was trained with.
VARIANCES: tuple[float, float] = (0.1, 0.2)


def prior_boxes(
    height: int,
    width: int,
    strides: Sequence[int] = STRIDES,
    sizes: Sequence[Sequence[int]] = SIZES,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Anchors of a RetinaFace input of ``height`` x ``width`` pixels, as (N, 4) cx, cy, w, h.

    The order matches the network heads: level by level (stride), then row-major
    over the feature map cells, then the anchor sizes of the cell. A stride-s level
    has ``ceil(height / s)`` x ``ceil(width / s)`` cells, which is what stride-2 convs
    with padding 1 produce. The result is cached per (size, device) because it only
    depends on the input size; treat it as read-only.
    """
    key_strides = tuple(int(s) for s in strides)
    key_sizes = tuple(tuple(int(v) for v in level) for level in sizes)
    if len(key_strides) != len(key_sizes):
        raise ValueError(f"prior_boxes needs one sizes tuple per stride, got {key_strides} and {key_sizes}")
    return _prior_boxes(int(height), int(width), key_strides, key_sizes, torch.device(device))


@lru_cache(maxsize=32)
def _prior_boxes(
    height: int,
    width: int,
    strides: tuple[int, ...],
    sizes: tuple[tuple[int, ...], ...],
    device: torch.device,
) -> torch.Tensor:
    """Cached body of :func:`prior_boxes` (arguments already normalized to hashables)."""
    levels = [_level_priors(height, width, s, level, device) for s, level in zip(strides, sizes)]
    if not levels:
        return torch.zeros((0, 4), device=device)
    return torch.cat(levels)


def _level_priors(height: int, width: int, stride: int, sizes: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Anchors of one feature level: every cell centre paired with every anchor size."""
    rows, cols = -(-height // stride), -(-width // stride)
    cy = (torch.arange(rows, device=device, dtype=torch.float32) + 0.5) * stride
    cx = (torch.arange(cols, device=device, dtype=torch.float32) + 0.5) * stride
    grid_y, grid_x = torch.meshgrid(cy, cx, indexing="ij")
    centres = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)  # (cells, 2)
    side = torch.tensor(sizes, device=device, dtype=torch.float32)  # (k,)
    n_cells, k = len(centres), len(side)
    centres = centres[:, None, :].expand(n_cells, k, 2)
    wh = side[None, :, None].expand(n_cells, k, 2)
    return torch.cat([centres, wh], dim=2).reshape(-1, 4)


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor, variances: Sequence[float] = VARIANCES) -> torch.Tensor:
    """Turn regression offsets (..., N, 4) against ``priors`` (N, 4) into xyxy boxes (..., N, 4).

    This is the SSD/RetinaFace encoding: centre offsets are scaled by the anchor size
    and the centre variance, sizes are log-ratios scaled by the size variance.
    Any leading (batch) dimensions broadcast against the priors.
    """
    centre = priors[..., :2] + loc[..., :2] * variances[0] * priors[..., 2:]
    size = priors[..., 2:] * torch.exp(loc[..., 2:] * variances[1])
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def decode_landmarks(landm: torch.Tensor, priors: torch.Tensor, variances: Sequence[float] = VARIANCES) -> torch.Tensor:
    """Turn landmark offsets (..., N, 10) against ``priors`` (N, 4) into points (..., N, 5, 2).

    Each of the five points is encoded like a box centre: offset from the anchor
    centre in units of the anchor size times the centre variance.
    """
    offsets = landm.reshape(*landm.shape[:-1], 5, 2)
    return priors[..., None, :2] + offsets * variances[0] * priors[..., None, 2:]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of xyxy boxes (..., 4); degenerate (inverted) boxes count as 0."""
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection over union of xyxy boxes: (..., n, 4) x (..., m, 4) -> (..., n, m).

    Leading dimensions broadcast, so (g, n, 4) x (g, n, 4) gives g independent
    matrices (what the grouped NMS uses). Pairs whose union is empty (two
    zero-area boxes) get IoU 0 rather than NaN.
    """
    a, b = a[..., :, None, :], b[..., None, :, :]
    width = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp_(min=0)
    height = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp_(min=0)
    inter = width.mul_(height)
    union = (box_area(a) + box_area(b)).sub_(inter)
    return torch.where(union > 0, inter / union, torch.zeros_like(inter))


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NumPy front end of :func:`box_iou` for callers (the tracker, tests) that hold arrays."""
    # np.array copies, so read-only inputs (pandas' .to_numpy() views) are safe to hand to torch.
    a_t = torch.from_numpy(np.array(a, dtype=np.float32).reshape(-1, 4))
    b_t = torch.from_numpy(np.array(b, dtype=np.float32).reshape(-1, 4))
    return box_iou(a_t, b_t).numpy()


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; returns indices of kept boxes, highest score first."""
    idxs = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
    return batched_nms(boxes, scores, idxs, iou_threshold)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS done independently per group (``idxs``, e.g. the frame of each box), in one call.

    Returns indices into the inputs of the kept boxes, highest score first.

    Greedy NMS keeps box j (in score order) exactly when no *kept* higher-scoring
    box of its group overlaps it by more than ``iou_threshold``. Instead of a
    Python loop over boxes, this iterates that rule on whole IoU matrices until it
    stops changing (the "Cluster-NMS" fixed point): after t rounds the first t
    boxes are final, and in practice a handful of rounds (the longest chain of
    suppressions) suffice.

    Groups are laid out as a padded (groups, k, 4) stack and get one k x k IoU
    matrix each, i.e. O(sum n_g^2) work. The classic coordinate-offset trick gives
    the same result with one (sum n_g)^2 matrix, which is 8x the work for a batch
    of 8 frames.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    stacked, valid, order = _group_by_score(boxes, scores, idxs)
    overlaps = torch.triu(box_iou(stacked, stacked) > iou_threshold, diagonal=1)
    overlaps &= valid[:, :, None] & valid[:, None, :]
    overlaps_f = overlaps.to(boxes.dtype)
    keep = valid.clone()
    for _ in range(stacked.shape[1]):
        suppressed = torch.bmm(keep.to(boxes.dtype)[:, None, :], overlaps_f)[:, 0] > 0
        new_keep = valid & ~suppressed
        if torch.equal(new_keep, keep):
            break
        keep = new_keep
    kept = order[keep]
    return kept[torch.argsort(scores[kept], descending=True, stable=True)]


def _group_by_score(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes as a (groups, k, 4) stack sorted by descending score within each group.

    Returns the stack (padding rows are zero boxes), a (groups, k) mask of real
    rows and, for each slot, the index of its box in the input (-1 for padding).
    """
    by_score = torch.argsort(scores, descending=True, stable=True)
    order = by_score[torch.argsort(idxs[by_score], stable=True)]
    _, group, counts = torch.unique_consecutive(idxs[order], return_inverse=True, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(order), device=boxes.device) - starts[group]
    n_groups, k = len(counts), int(counts.max())
    stacked = boxes.new_zeros(n_groups, k, 4)
    stacked[group, slot] = boxes[order]
    valid = torch.zeros(n_groups, k, dtype=torch.bool, device=boxes.device)
    valid[group, slot] = True
    slots = torch.full((n_groups, k), -1, dtype=torch.long, device=boxes.device)
    slots[group, slot] = order
    return stacked, valid, slots
