"""Building blocks of the batched training transforms: per-image random draws and per-image warps.

:mod:`fervid.train.augment`, :mod:`fervid.train.degrade` and :mod:`fervid.train.occluders` all draw one value per
image and resample images by their own similarity transform; the helpers live here, in a module that imports
none of them, so each uses the same code without importing another (augment already imports degrade).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def uniform(n: int, low: float, high: float, device: torch.device, gen: torch.Generator | None) -> torch.Tensor:
    """``n`` values drawn uniformly from [low, high), shape (n,): one per image of a batch, from ``gen``."""
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
