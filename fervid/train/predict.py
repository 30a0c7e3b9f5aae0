"""Batched inference over an in-memory expression dataset, with optional test-time augmentation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fervid.models.expression_input import prepare, probabilities
from fervid.models.expression_weights import ExpressionConfig

#: TTA views: (flip, dx, dy) pixel shifts of the 48x48 image; the identity view comes first.
TTA_VIEWS: tuple[tuple[bool, int, int], ...] = (
    (False, 0, 0), (True, 0, 0), (False, 2, 2), (False, -2, -2), (True, 2, -2), (True, -2, 2),
)  # fmt: skip


def normalize(images_u8: torch.Tensor, config: ExpressionConfig) -> torch.Tensor:
    """(B, H, W) uint8 -> (B, 1, H, W) float, normalised as in training (:func:`prepare`)."""
    return prepare(images_u8.float().unsqueeze(1), config)


def _shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate with edge replication (like a slightly different crop of the same face)."""
    if dx == 0 and dy == 0:
        return x
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))
    padded = F.pad(x, pad, mode="replicate")
    h, w = x.shape[-2:]
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w]


@torch.inference_mode()
def _view_logits(
    model: torch.nn.Module, config: ExpressionConfig, images: np.ndarray, device: torch.device | str,
    batch_size: int, views: tuple[tuple[bool, int, int], ...],
) -> list[torch.Tensor]:  # fmt: skip
    """Logits (N, K) on the host for each view of uint8 (N, H, W) images, computed ``batch_size`` at a time."""
    device = torch.device(device)
    model = model.to(device).eval()
    parts: list[list[torch.Tensor]] = [[] for _ in views]
    for start in range(0, len(images), batch_size):
        x = normalize(torch.from_numpy(images[start : start + batch_size]).to(device), config)
        for k, (flip, dx, dy) in enumerate(views):
            parts[k].append(model(_shift(x.flip(-1) if flip else x, dx, dy)).float().cpu())
    empty = torch.zeros((0, len(config.classes)))
    return [torch.cat(p) if p else empty for p in parts]


def predict_logits(
    model: torch.nn.Module, config: ExpressionConfig, images: np.ndarray, device: torch.device | str = "cpu",
    batch_size: int = 512,
) -> torch.Tensor:  # fmt: skip
    """Raw logits (N, K) on the host for uint8 (N, H, W) images (what the temperature is fitted on)."""
    return predict_view_logits(model, config, images, device, batch_size)[0]


def predict_view_logits(
    model: torch.nn.Module, config: ExpressionConfig, images: np.ndarray, device: torch.device | str = "cpu",
    batch_size: int = 512, tta: bool = False,
) -> list[torch.Tensor]:  # fmt: skip
    """Raw logits (N, K) per view (the identity view alone, or all TTA views), on the host.

    The network runs once; :func:`average_probabilities` then turns the same logits into
    probabilities at any temperature (calibrated and uncalibrated, as ``evaluate`` reports both).
    """
    return _view_logits(model, config, images, device, batch_size, TTA_VIEWS if tta else TTA_VIEWS[:1])


def average_probabilities(view_logits: list[torch.Tensor], config: ExpressionConfig) -> np.ndarray:
    """Probabilities (N, K) at ``config``'s temperature, averaged over the views."""
    with torch.inference_mode():
        probs = sum(probabilities(view, config) for view in view_logits) / len(view_logits)
        assert isinstance(probs, torch.Tensor)  # sum() is only 0 for no views, which divides by zero above
    return probs.numpy().astype(np.float32)


def predict_probs(
    model: torch.nn.Module, config: ExpressionConfig, images: np.ndarray, device: torch.device | str = "cpu",
    batch_size: int = 512, tta: bool = False,
) -> np.ndarray:  # fmt: skip
    """Calibrated probabilities (N, K) for uint8 (N, H, W) images; TTA averages flipped/shifted views."""
    return average_probabilities(predict_view_logits(model, config, images, device, batch_size, tta), config)
