"""Face alignment: map each face's five landmarks onto a canonical template and cut the crop on the device.

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
    landmarks: torch.Tensor,
    template: torch.Tensor,
    size: int = 48,
    supersample: int = 4,
) -> torch.Tensor:
    """Aligned (n, 1, size, size) crops for n faces.

    gray: (B, 1, H, W) float frames; frame_index: (n,) frame of each face; landmarks:
    (n, 5, 2) in frame pixels; template: (5, 2) in crop pixels. Each frame is sampled once
    with the grids of all its faces stacked, so no frame is copied per face.
    """
    n = len(landmarks)
    if n == 0:
        return gray.new_zeros((0, 1, size, size))
    height, width = gray.shape[-2:]
    crop_to_frame = invert_similarity(similarity_transforms(landmarks.float(), template.float()))
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
    landmarks: torch.Tensor,
    template: torch.Tensor,
    size: int = 48,
    supersample: int = 4,
) -> torch.Tensor:
    """Aligned (n, 1, size, size) gray crops straight from uint8 RGB frames, like ``crop_faces(to_gray(...))``.

    frames: a (B, H, W, 3) uint8 tensor, or a sequence of (H, W, 3) / (1, H, W, 3) tensors
    (sizes may differ), on any device; crops are made on ``landmarks.device``.
    Per frame, only the rectangle the frame's crops sample from (with a one-pixel margin
    for bilinear neighbours) is moved there and converted to gray. Border clamping is
    unchanged: the rectangle is clipped to the frame, so a sample beyond the frame edge
    still reads the frame's edge pixel.
    """
    n = len(landmarks)
    device = landmarks.device
    if n == 0:
        return torch.zeros((0, 1, size, size), device=device)
    crop_to_frame = invert_similarity(similarity_transforms(landmarks.float(), template.float()))
    points = _sample_points(crop_to_frame, size, supersample)  # (n, fine, fine, 2) frame pixels
    flat = points.view(n, -1, 2)
    # Pixel centres sit at integer coordinates after the half-pixel shift grid_sample applies.
    low = torch.nan_to_num(flat.amin(dim=1) - 0.5, nan=0.0, posinf=1e9, neginf=-1e9).floor() - 1
    high = torch.nan_to_num(flat.amax(dim=1) - 0.5, nan=0.0, posinf=1e9, neginf=-1e9).floor() + 2
    bounds = torch.cat([low, high], dim=1).clamp(-(2**30), 2**30).long().cpu()  # one sync for all faces
    fine = size * supersample
    out = torch.empty((n, 1, fine, fine), device=device)
    for f in torch.unique(frame_index).tolist():
        members = (frame_index == f).nonzero().flatten()
        frame = frames[f]
        if frame.ndim == 4:
            frame = frame[0]
        height, width = frame.shape[:2]
        box = bounds[members.cpu()]
        x0 = min(max(int(box[:, 0].min()), 0), width - 1)
        y0 = min(max(int(box[:, 1].min()), 0), height - 1)
        x1 = max(min(int(box[:, 2].max()), width - 1), x0)
        y1 = max(min(int(box[:, 3].max()), height - 1), y0)
        patch = to_gray(frame[y0 : y1 + 1, x0 : x1 + 1].to(device)[None])
        origin = torch.tensor([x0, y0], device=device, dtype=torch.float32)
        scale = torch.tensor([2.0 / (x1 - x0 + 1), 2.0 / (y1 - y0 + 1)], device=device)
        grid = ((points[members] - origin) * scale - 1.0).reshape(1, len(members) * fine, fine, 2)
        sampled = F.grid_sample(patch, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out[members] = sampled.view(len(members), 1, fine, fine)
    return F.avg_pool2d(out, supersample) if supersample > 1 else out
