"""Synthetic hands at the chin: an occluder that does not change the expression under it.

Why: on video people rest a hand at the chin or mouth while they laugh or listen; FER's faces
rarely do. On Hamilton frame 240 the shipped ``ferplus`` reads Barack Obama's smile as neutral,
and hiding his hand (``scripts/occlusion_map.py``) lifts p(happy) from 0.03 to 0.90: the network
takes the hand itself as a cue against the smile. Random erasing (noise rectangles) does not teach
otherwise, because a noise rectangle does not look like a hand. This paints a hand-like shape (a
rounded fist with finger creases, sometimes a raised finger along the cheek) over the lower face of
a share of the training faces, lit like the face with a gradient across it and soft edges, and
keeps each face's label. Teachers of a distillation run see the face without it
(:func:`fervid.train.trainer._train_epoch`): their targets are for the expression, not the hand.

Coordinates are the crop's normalised ones, ``[-1, 1]`` across and down (FER's face spans most of
the crop; its chin is near ``y = 0.9``, its mouth near ``y = 0.45``).
"""

from __future__ import annotations

import math

import torch

from fervid.train.batch_ops import uniform


def rounded_box_distance(px: torch.Tensor, py: torch.Tensor, half_w: torch.Tensor, half_h: torch.Tensor,
                         radius: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Signed distance from points to an axis-aligned rounded rectangle centred at the origin (negative inside)."""
    qx = px.abs() - half_w + radius
    qy = py.abs() - half_h + radius
    outside = torch.sqrt(qx.clamp_min(0) ** 2 + qy.clamp_min(0) ** 2)
    return outside + torch.maximum(qx, qy).clamp_max(0) - radius


def capsule_distance(px: torch.Tensor, py: torch.Tensor, length: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Signed distance to a vertical capsule from ``(0, 0)`` up to ``(0, -length)`` of the given radius."""
    along = py.clamp(-length, torch.zeros_like(length))
    return torch.sqrt(px**2 + (py - along) ** 2) - radius


def hand_occluders(x: torch.Tensor, p: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Paint a synthetic hand over the lower face of a ``p`` share of a (B, 1, H, W) batch in [0, 1].

    Every image draws its random numbers whether or not it is chosen, so the draws do not depend
    on which images were picked. Returns a new tensor; ``x`` is not changed.
    """
    b, _, h, w = x.shape
    dev = x.device
    ys = ((torch.arange(h, device=dev, dtype=x.dtype) + 0.5) / h * 2 - 1).view(1, h, 1)
    xs = ((torch.arange(w, device=dev, dtype=x.dtype) + 0.5) / w * 2 - 1).view(1, 1, w)

    def draw(low: float, high: float) -> torch.Tensor:
        return uniform(b, low, high, dev, gen).to(x.dtype).view(b, 1, 1)

    # The fist: a rounded box at the chin, turned up to 45 degrees either way.
    cx, cy = draw(-0.45, 0.45), draw(0.7, 1.05)
    half_w, half_h = draw(0.22, 0.42), draw(0.14, 0.28)
    angle = draw(-math.pi / 4, math.pi / 4)
    cos, sin = torch.cos(angle), torch.sin(angle)
    u = (xs - cx) * cos + (ys - cy) * sin  # along the fist
    v = -(xs - cx) * sin + (ys - cy) * cos  # across it
    radius = torch.minimum(half_w, half_h) * 0.6
    fist = rounded_box_distance(u, v, half_w, half_h, radius)
    # Finger creases: three dark lines across the fist, as curled fingers show.
    spacing = half_w / 2
    crease = torch.stack([((u - k * spacing).abs()) for k in (-1, 0, 1)]).amin(0)
    crease_depth = draw(0.2, 0.45) * torch.sigmoid((0.03 - crease) / 0.01) * (fist < 0)
    # Half of the hands raise a finger along the cheek, from the fist's top edge.
    fx = cx + draw(-0.6, 0.6) * half_w
    finger_len, finger_r = draw(0.25, 0.6), draw(0.06, 0.1)
    tilt = draw(-0.5, 0.5)
    fu = (xs - fx) * torch.cos(tilt) - (ys - cy + half_h * 0.5) * torch.sin(tilt)
    fv = (xs - fx) * torch.sin(tilt) + (ys - cy + half_h * 0.5) * torch.cos(tilt)
    with_finger = (uniform(b, 0, 1, dev, gen) < 0.5).view(b, 1, 1)
    shape = torch.where(with_finger, torch.minimum(fist, capsule_distance(fu, fv, finger_len, finger_r)), fist)
    # Lit like the face (its centre's mean brightness), often brighter (nearer the light), with a
    # gradient in a random direction and a soft edge.
    face = x[:, :, h // 5 : 3 * h // 4, w // 4 : 3 * w // 4].mean(dim=(1, 2, 3)).view(b, 1, 1)
    tone = (face * draw(1.0, 1.6)).clamp(0.12, 0.97)
    direction = draw(0, 2 * math.pi)
    gradient = draw(0.0, 0.35) * (xs * torch.cos(direction) + ys * torch.sin(direction)) / 2
    shade = (tone * (1 + gradient) * (1 - crease_depth)).clamp(0, 1)
    softness = draw(0.015, 0.05)
    alpha = torch.sigmoid(-shape / softness)
    # The hand's shadow on the face just outside its edge.
    shadow = draw(0.2, 0.5) * torch.exp(-shape.clamp_min(0) / 0.05) * (shape > 0)
    chosen = (uniform(b, 0, 1, dev, gen) < p).view(b, 1, 1)
    alpha = torch.where(chosen, alpha, torch.zeros_like(alpha)).unsqueeze(1)
    shadow = torch.where(chosen, shadow, torch.zeros_like(shadow)).unsqueeze(1)
    return x * (1 - shadow) * (1 - alpha) + shade.unsqueeze(1) * alpha
