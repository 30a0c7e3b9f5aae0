"""Face alignment: frame each face the way the model's training crops were framed, and cut the crop on the device.

Two ways to place a face in its crop, chosen per model by its weight config (``alignment``):

* ``box``: the detector's box, scaled and shifted onto the box template (:data:`FER_BOX_48_CENTRE`,
  :data:`FER_BOX_48_SIZE`), with no rotation (:func:`box_transforms`). FER's images are crops
  around a face detector's box, not aligned to the eyes: on 3,496 FER+ validation faces, framing
  each again from our detector's box reproduces the dataset's own crop with a mean error of
  3.95 px (48 px crop), the five-landmark alignment with 6.04 px; on three-quarter and profile
  faces 5.6 px against 12.1 px (a landmark fit zooms in on the visible half of a turned face).
  ``benchmarks/alignment.py`` measures this.
* ``landmarks``: a least-squares similarity of the five landmarks onto :data:`FER_TEMPLATE_48`
  (:func:`similarity_transforms`), which also undoes head roll. Models saved before the
  ``alignment`` field existed use it.

Either gives a frame-to-crop matrix per face; :func:`crop_faces` and :func:`crop_faces_rgb` cut
any such crops.

Coordinates are continuous pixel coordinates (pixel ``i`` spans ``[i, i+1)``), the
convention the detector's boxes and landmarks use, so resizing is a plain scale.

Crops are sampled with ``grid_sample`` straight from the (grayscale) frame on the
device, several samples per output pixel averaged (supersampling), because a face of
200 px reduced to 48 px aliases badly otherwise — and FER's training crops were
downscaled smoothly.

:func:`crop_faces_rgb` is what the pipeline uses: it converts to gray only the region of
each frame its faces' crops sample from, instead of whole frames (at 640x360 the
full-frame conversion cost more than the crops themselves). It gives the same crops as
:func:`crop_faces` on the whole gray frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: Median landmarks of FER+ faces in 48x48 crop pixels (left eye, right eye, nose, mouth left,
#: mouth right as seen in the image), measured with our detector by ``fervid.train.template``
#: on 1000 FER+ validation images (98.9% had a face at score >= 0.9; inter-quartile range ~3 px).
FER_TEMPLATE_48 = np.array(
    [[15.33, 18.70], [32.78, 18.58], [23.95, 28.78], [17.29, 36.81], [31.35, 36.72]], dtype=np.float32
)


#: Where our detector's box sits in a FER+ 48x48 image: its centre (x, y) and the square root of
#: its area (the box is about 37 px wide and 49 px tall: it reaches past the crop's top and bottom),
#: medians over the 3,496 of 3,555 FER+ validation faces found at score >= 0.9, measured by
#: ``fervid.train.template.fit_box_template`` (``benchmarks/alignment.py`` prints them).
FER_BOX_48_CENTRE = np.array([24.27, 24.74], dtype=np.float32)
FER_BOX_48_SIZE = 43.05


def box_transforms(xyxy: torch.Tensor, centre: torch.Tensor, size: float | torch.Tensor) -> torch.Tensor:
    """Frame-to-crop matrices (n, 2, 3) that put each box's centre on ``centre`` and scale its
    ``sqrt(width * height)`` to ``size`` crop pixels (one size, or one per box), without rotating
    (see the module docstring)."""
    xyxy = xyxy.double()
    side = ((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])).clamp_min(1e-12).sqrt()
    scale = size / side
    zero = torch.zeros_like(scale)
    cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
    centre = centre.double()
    rows = [
        torch.stack([scale, zero, centre[0] - scale * cx], dim=1),
        torch.stack([zero, scale, centre[1] - scale * cy], dim=1),
    ]
    return torch.stack(rows, dim=1).float()


def similarity_transforms(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (rotation, uniform scale, shift) mapping ``src`` points onto ``dst``.

    src: (n, k, 2) landmarks per face; dst: (k, 2) template. Returns (n, 2, 3) matrices M
    with ``dst ~= M @ [x, y, 1]``. Solved in closed form with complex numbers
    (z_dst = c * z_src + t), vectorised over faces.
    """
    zs = torch.complex(src[..., 0].double(), src[..., 1].double())
    zd = torch.complex(dst[..., 0].double(), dst[..., 1].double()).expand_as(zs)
    ms, md = zs.mean(dim=1, keepdim=True), zd.mean(dim=1, keepdim=True)
    cs, cd = zs - ms, zd - md
    denom = (cs.abs() ** 2).sum(dim=1, keepdim=True).clamp_min(1e-9)
    c = (cs.conj() * cd).sum(dim=1, keepdim=True) / denom
    t = md - c * ms
    a, b, tx, ty = c.real[:, 0], c.imag[:, 0], t.real[:, 0], t.imag[:, 0]
    rows = [torch.stack([a, -b, tx], dim=1), torch.stack([b, a, ty], dim=1)]
    return torch.stack(rows, dim=1).to(src.dtype)


def invert_similarity(m: torch.Tensor) -> torch.Tensor:
    """Inverse of (n, 2, 3) similarity matrices."""
    a, b, tx, ty = m[:, 0, 0], m[:, 1, 0], m[:, 0, 2], m[:, 1, 2]
    s2 = (a * a + b * b).clamp_min(1e-12)
    ia, ib = a / s2, -b / s2
    itx, ity = -(ia * tx - ib * ty), -(ib * tx + ia * ty)
    return torch.stack([torch.stack([ia, -ib, itx], 1), torch.stack([ib, ia, ity], 1)], 1)


def to_gray(frames_u8: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 1, H, W) float in [0, 255], ITU-R 601 luma (as PIL's ``L``)."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=frames_u8.device)
    return (frames_u8.float() @ weights).unsqueeze(1)


def _sample_points(crop_to_frame: torch.Tensor, size: int, supersample: int) -> torch.Tensor:
    """Frame pixel coordinates (n, fine, fine, 2) of every supersample of every crop pixel."""
    fine = size * supersample
    device = crop_to_frame.device
    centres = (torch.arange(fine, device=device, dtype=torch.float32) + 0.5) / supersample
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    pts = torch.stack([xx, yy, torch.ones_like(xx)], dim=-1).view(-1, 3)  # (fine*fine, 3)
    frame_xy = torch.einsum("nij,pj->npi", crop_to_frame, pts)  # (n, fine*fine, 2)
    return frame_xy.view(len(crop_to_frame), fine, fine, 2)


def crop_faces(
    gray: torch.Tensor,
    frame_index: torch.Tensor,
    frame_to_crop: torch.Tensor,
    size: int = 48,
    supersample: int = 4,
) -> torch.Tensor:
    """Aligned (n, 1, size, size) crops for n faces.

    gray: (B, 1, H, W) float frames; frame_index: (n,) frame of each face; frame_to_crop:
    (n, 2, 3) similarity matrices from frame pixels to crop pixels (:func:`box_transforms` or
    :func:`similarity_transforms`). Each frame is sampled once with the grids of all its faces
    stacked, so no frame is copied per face.
    """
    n = len(frame_to_crop)
    if n == 0:
        return gray.new_zeros((0, 1, size, size))
    height, width = gray.shape[-2:]
    crop_to_frame = invert_similarity(frame_to_crop.float())
    fine = size * supersample
    scale = torch.tensor([2.0 / width, 2.0 / height], device=gray.device)
    grid = _sample_points(crop_to_frame, size, supersample) * scale - 1.0
    out = torch.empty((n, 1, fine, fine), device=gray.device, dtype=gray.dtype)
    for f in torch.unique(frame_index).tolist():
        members = (frame_index == f).nonzero().flatten()
        stacked = grid[members].reshape(1, len(members) * fine, fine, 2)
        sampled = F.grid_sample(gray[f : f + 1], stacked, mode="bilinear", padding_mode="border", align_corners=False)
        out[members] = sampled.view(len(members), 1, fine, fine)
    return F.avg_pool2d(out, supersample) if supersample > 1 else out


def crop_faces_rgb(
    frames: torch.Tensor | Sequence[torch.Tensor],
    frame_index: torch.Tensor,
    frame_to_crop: torch.Tensor,
    size: int = 48,
    supersample: int = 4,
) -> torch.Tensor:
    """Aligned (n, 1, size, size) gray crops straight from uint8 RGB frames, like ``crop_faces(to_gray(...))``.

    frames: a (B, H, W, 3) uint8 tensor, or a sequence of (H, W, 3) / (1, H, W, 3) tensors
    (sizes may differ), on any device; crops are made on ``frame_to_crop.device``.
    Per frame, only the rectangle the frame's crops sample from (with a one-pixel margin
    for bilinear neighbours) is moved there and converted to gray. Border clamping is
    unchanged: the rectangle is clipped to the frame, so a sample beyond the frame edge
    still reads the frame's edge pixel.
    """
    n = len(frame_to_crop)
    device = frame_to_crop.device
    if n == 0:
        return torch.zeros((0, 1, size, size), device=device)
    crop_to_frame = invert_similarity(frame_to_crop.float())
    fine = size * supersample
    centres = (torch.arange(fine, device=device, dtype=torch.float32) + 0.5) / supersample
    # The sampled region of a face: the crop square's corners mapped into the frame (an affine
    # map's extremes over a box are at its corners); pixel centres sit at integer coordinates
    # after the half-pixel shift grid_sample applies.
    ends = centres[[0, -1]]
    corners = torch.stack(torch.meshgrid(ends, ends, indexing="xy"), dim=-1).view(4, 2)
    frame_corners = corners @ crop_to_frame[:, :, :2].transpose(1, 2) + crop_to_frame[:, None, :, 2]  # (n, 4, 2)
    low = torch.nan_to_num(frame_corners.amin(dim=1) - 0.5, nan=0.0, posinf=1e9, neginf=-1e9).floor() - 1
    high = torch.nan_to_num(frame_corners.amax(dim=1) - 0.5, nan=0.0, posinf=1e9, neginf=-1e9).floor() + 2
    bounds = torch.cat([low, high], dim=1).clamp(-(2**30), 2**30).long().cpu().numpy()  # one sync
    # Group faces by frame on the host (numpy), so the per-frame loop below is a few torch calls.
    index = frame_index.cpu().numpy()
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    frame_ids, starts = np.unique(sorted_index, return_index=True)
    stops = np.append(starts[1:], n)
    rois = np.empty((len(frame_ids), 4), dtype=np.int64)  # x0, y0, x1, y1 inclusive, inside the frame
    for k, (f, a, b) in enumerate(zip(frame_ids.tolist(), starts.tolist(), stops.tolist())):
        height, width = _frame_at(frames, f).shape[:2]
        box = bounds[order[a:b]]
        x0 = min(max(int(box[:, 0].min()), 0), width - 1)
        y0 = min(max(int(box[:, 1].min()), 0), height - 1)
        x1 = max(min(int(box[:, 2].max()), width - 1), x0)
        y1 = max(min(int(box[:, 3].max()), height - 1), y0)
        rois[k] = (x0, y0, x1, y1)
    # Each face's map from crop pixels to grid_sample's [-1, 1] coordinates of its region, then
    # the whole grid in one broadcast: grid[i, j] = A[:, 0] * c_j + A[:, 1] * c_i + t.
    face_roi = torch.from_numpy(rois[np.searchsorted(frame_ids, sorted_index)]).to(device)  # (n, 4), sorted
    scale = 2.0 / (face_roi[:, 2:] - face_roi[:, :2] + 1).float()
    affine = crop_to_frame[torch.from_numpy(order).to(device)]
    linear = affine[:, :, :2] * scale[:, :, None]
    shift = (affine[:, :, 2] - face_roi[:, :2].float()) * scale - 1.0
    along_x = linear[:, None, :, 0] * centres[None, :, None]  # (n, fine, 2)
    along_y = linear[:, None, :, 1] * centres[None, :, None] + shift[:, None, :]
    grid = along_y[:, :, None, :] + along_x[:, None, :, :]  # (n, fine, fine, 2)
    parts = []
    for k, (f, a, b) in enumerate(zip(frame_ids.tolist(), starts.tolist(), stops.tolist())):
        x0, y0, x1, y1 = rois[k].tolist()
        patch = to_gray(_frame_at(frames, f)[y0 : y1 + 1, x0 : x1 + 1].to(device)[None])
        stacked = grid[a:b].reshape(1, (b - a) * fine, fine, 2)
        sampled = F.grid_sample(patch, stacked, mode="bilinear", padding_mode="border", align_corners=False)
        sampled = sampled.view(b - a, 1, fine, fine)
        parts.append(F.avg_pool2d(sampled, supersample) if supersample > 1 else sampled)
    out = torch.cat(parts) if len(parts) > 1 else parts[0]
    if np.any(np.diff(index) < 0):  # faces were not in frame order: put them back
        out = out[torch.from_numpy(np.argsort(order, kind="stable")).to(device)]
    return out


def _frame_at(frames: torch.Tensor | Sequence[torch.Tensor], f: int) -> torch.Tensor:
    """Frame ``f`` as an (H, W, 3) tensor, from a batch or a list of (H, W, 3) / (1, H, W, 3) tensors."""
    frame = frames[f]
    return frame[0] if frame.ndim == 4 else frame
