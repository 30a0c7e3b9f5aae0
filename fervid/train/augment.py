"""Batched data augmentation that runs on whatever device the batch is on (GPU when there is one).

One random affine warp per image (rotation, scale, shift, horizontal flip) through a
single ``affine_grid`` + ``grid_sample`` call, a synthetic head turn for some faces
(:func:`random_yaw`), then brightness/contrast jitter, the video
conditions of :mod:`fervid.train.degrade` (low light, blur, small faces, compression,
misalignment), and random erasing, all as tensor ops over the whole batch: no per-image
Python work.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fervid.train.config import AugmentConfig  # defined with the other training options (fervid train's flags)
from fervid.train.degrade import random_degradations


def _uniform(n: int, low: float, high: float, device: torch.device, gen: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, device=device, generator=gen) * (high - low) + low


def warp(
    x: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Resample each image of a (B, C, H, W) batch by its own similarity transform.

    ``angle`` (B,) in radians, ``scale`` (B,), ``shift`` (B, 2) in fractions of the image
    size, ``flip`` (B,) of +-1 (horizontal mirror where -1). Edges are replicated.
    """
    flip = torch.ones_like(scale) if flip is None else flip
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift = shift * 2  # grid units span 2
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_affine(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """Warp each image of a (B, C, H, W) float batch by its own random similarity transform (+ flip)."""
    b, dev = x.shape[0], x.device
    angle = _uniform(b, -cfg.max_rotation_deg, cfg.max_rotation_deg, dev, gen) * (math.pi / 180)
    scale = _uniform(b, *cfg.scale_range, dev, gen)
    flip = torch.where(torch.rand(b, device=dev, generator=gen) < cfg.flip_p, -1.0, 1.0)
    shift = _uniform(2 * b, -cfg.max_shift, cfg.max_shift, dev, gen).view(b, 2)
    return warp(x, angle, scale, shift, flip)


def yaw(x: torch.Tensor, angle: torch.Tensor, distance: float) -> torch.Tensor:
    """Turn each face of a (B, C, H, W) batch about the vertical axis through the crop's centre by
    ``angle`` (B,) radians, as a flat face seen in perspective from ``distance`` half-widths.

    A point ``u`` across the face (-1 left edge, 1 right edge) lands at ``u cos a / (1 + u sin a / d)``,
    and its height is scaled by ``1 / (1 + u sin a / d)``: the near half widens, the far half narrows
    and shrinks, as on a three-quarter view. Sampled by the inverse map; what the turn uncovers at
    the edges is mirrored from inside the crop (replicated edges would smear into streaks).
    """
    b, _, h, w = x.shape
    dev = x.device
    xs = (torch.arange(w, device=dev, dtype=x.dtype) + 0.5) / w * 2 - 1
    ys = (torch.arange(h, device=dev, dtype=x.dtype) + 0.5) / h * 2 - 1
    cos, sin = torch.cos(angle).view(b, 1, 1), torch.sin(angle).view(b, 1, 1) / distance
    out_x, out_y = xs.view(1, 1, w), ys.view(1, h, 1)
    src_x = out_x / (cos - out_x * sin)
    src_y = out_y * (1 + src_x * sin)
    grid = torch.stack([src_x.expand(b, h, w), src_y.expand(b, h, w)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def cylinder_yaw(x: torch.Tensor, angle: torch.Tensor, radius: float) -> torch.Tensor:
    """Turn each face of a (B, C, H, W) batch by ``angle`` (B,) radians as if painted on a vertical cylinder.

    Why: a flat face turned in perspective keeps both eyes and both mouth corners in view at any
    angle, which a real three-quarter or profile face does not. On a cylinder of half-width
    ``radius`` (crop half-widths), seen orthographically, the point at ``u = radius sin t`` lands at
    ``radius sin(t + a)`` and is hidden once ``t + a`` passes 90 degrees: the far side narrows and goes
    out of view, the near side faces the camera. The visible face, ``[-radius cos a, radius]``, is then
    re-centred and zoomed as a detector's box would frame it (centre on the visible part, its
    ``sqrt(width * height)`` scaled to the unturned face's). Outside the face, the background beside the
    near side (whose edge moved inwards) moves in with it, reflected at the crop's edge; beside the
    far side it stays where it was.
    """
    b, _, h, w = x.shape
    dev = x.device
    xs = (torch.arange(w, device=dev, dtype=x.dtype) + 0.5) / w * 2 - 1
    ys = (torch.arange(h, device=dev, dtype=x.dtype) + 0.5) / h * 2 - 1
    a = angle.to(x.dtype).view(b, 1, 1)
    flip = torch.where(a < 0, -1.0, 1.0)  # a turn the other way is the mirror image of this one
    a = a.abs()
    cos = torch.cos(a)
    zoom = ((1 + cos) / 2).sqrt()
    centre = radius * (1 - cos) / 2
    cx = xs.view(1, 1, w) * flip * zoom + centre  # where the output pixel is, on the turned cylinder's image
    cy = ys.view(1, h, 1) * zoom
    phi = torch.asin((cx / radius).clamp(-1, 1))
    t = phi - a
    on_face = (cx.abs() <= radius) & (t >= -math.pi / 2)
    near_side = cx < 0
    src_x = torch.where(on_face, radius * torch.sin(t), torch.where(near_side, cx - radius * (1 - cos), cx))
    grid = torch.stack([(src_x * flip).expand(b, h, w), cy.expand(b, h, w)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_yaw(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """A synthetic head turn of up to ``max_yaw_deg`` either way for a ``yaw_p`` share of the faces.

    Why: FER's faces are mostly frontal, and on video smiles are often seen in three-quarter view.
    """
    b, dev = x.shape[0], x.device
    angle = _uniform(b, -cfg.max_yaw_deg, cfg.max_yaw_deg, dev, gen) * (math.pi / 180)
    chosen = (torch.rand(b, device=dev, generator=gen) < cfg.yaw_p).view(b, 1, 1, 1)
    if cfg.yaw_model == "cylinder":
        return torch.where(chosen, cylinder_yaw(x, angle, cfg.yaw_radius), x)
    return torch.where(chosen, yaw(x, angle, cfg.yaw_distance), x)


def color_jitter(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness and contrast per image, on [0, 1] images."""
    b, dev = x.shape[0], x.device
    bright = _uniform(b, -cfg.brightness, cfg.brightness, dev, gen).view(b, 1, 1, 1)
    contrast = _uniform(b, 1 - cfg.contrast, 1 + cfg.contrast, dev, gen).view(b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean + bright).clamp(0, 1)


def random_erase(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """Blank one random rectangle per selected image with noise (occlusion robustness)."""
    b, _, h, w = x.shape
    dev = x.device
    area = _uniform(b, *cfg.erase_area, dev, gen) * h * w
    aspect = torch.exp(_uniform(b, math.log(0.3), math.log(3.3), dev, gen))
    eh = (area * aspect).sqrt().clamp(1, h)
    ew = (area / aspect).sqrt().clamp(1, w)
    y0 = torch.rand(b, device=dev, generator=gen) * (h - eh)
    x0 = torch.rand(b, device=dev, generator=gen) * (w - ew)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = (
        (ys >= y0.view(b, 1, 1))
        & (ys < (y0 + eh).view(b, 1, 1))
        & (xs >= x0.view(b, 1, 1))
        & (xs < (x0 + ew).view(b, 1, 1))
    )
    chosen = (torch.rand(b, device=dev, generator=gen) < cfg.erase_p).view(b, 1, 1)
    mask = (inside & chosen).unsqueeze(1)
    noise = torch.rand(x.shape, device=dev, generator=gen)
    return torch.where(mask, noise, x)


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """Full training augmentation for a (B, 1, H, W) batch in [0, 1]: geometry, colour, video conditions, occlusion."""
    x = random_affine(x, cfg, gen)
    if cfg.yaw_p > 0:  # no extra random draws otherwise: runs without it stay reproducible
        x = random_yaw(x, cfg, gen)
    x = color_jitter(x, cfg, gen)
    return random_erase(random_degradations(x, cfg.degrade_p, gen), cfg, gen)
