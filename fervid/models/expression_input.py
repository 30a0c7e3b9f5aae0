"""How a face crop becomes expression-model input: one function, used by training, evaluation and annotate.

Why one function: the classifier saw its training faces through exactly this code, so a
crop cut from a video frame must go through it too. Every choice (photometric
normalisation, mean and std, temperature) is read from the weight file's
:class:`~fervid.models.expression_weights.ExpressionConfig`, never from a code path of its
own that could drift.

Photometric normalisation (``config.photometric``):

* ``"none"``: pixels / 255 (the models shipped before it existed);
* ``"standardize"``: each crop to zero mean and unit variance, which undoes brightness and
  contrast but not gamma or a dark crop's crushed shadows;
* ``"equalize"``: per-crop histogram equalisation, as FER2013's own images were prepared.
  Any monotonic change of the pixel values (brightness, contrast, gamma, most camera tone
  curves) leaves an equalised crop unchanged, up to 8-bit quantisation: a face in dim
  light looks to the model like the same face in daylight.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

PHOTOMETRIC = ("none", "standardize", "equalize")
#: The normalisations whose output is the pixel scale [0, 1] (``pixel / 255``); a network started from
#: weights trained at a fixed pixel scale (``face-resnet``) can only have its input scale written as a
#: mean and std for these.
PIXEL_SCALE_PHOTOMETRIC = ("equalize", "none")
#: Grey levels used to build each crop's histogram.
LEVELS = 256


class InputConfig(Protocol):
    """The part of a weight file's config that says how its input is prepared.

    :class:`~fervid.models.expression_weights.ExpressionConfig` has these fields; naming them here, rather than
    importing it, keeps this module a leaf that the weight-file module can import.
    """

    @property
    def input_size(self) -> int: ...
    @property
    def photometric(self) -> str: ...
    @property
    def mean(self) -> float: ...
    @property
    def std(self) -> float: ...
    @property
    def temperature(self) -> float: ...


def equalize(crops: torch.Tensor) -> torch.Tensor:
    """Histogram-equalise each (1, H, W) crop of a (B, 1, H, W) batch in [0, 255] -> [0, 1].

    The classic mapping (OpenCV's ``equalizeHist``): a pixel of level ``v`` becomes
    ``(cdf(v) - cdf_min) / (N - cdf_min)``, with the cumulative histogram ``cdf`` over 256
    levels and ``cdf_min`` its value at the darkest level present. Batched with one
    ``scatter_add``; a constant crop maps to 0.
    """
    b = crops.shape[0]
    levels = crops.detach().round().clamp(0, LEVELS - 1).long().view(b, -1)
    hist = torch.zeros((b, LEVELS), device=crops.device, dtype=torch.float32)
    hist.scatter_add_(1, levels, torch.ones_like(levels, dtype=torch.float32))
    cdf = hist.cumsum(1)
    n = float(levels.shape[1])
    cdf_min = torch.where(hist > 0, cdf, torch.full_like(cdf, n)).amin(dim=1, keepdim=True)
    lut = (cdf - cdf_min) / (n - cdf_min).clamp_min(1.0)
    return lut.clamp_min(0).gather(1, levels).view_as(crops)


def standardize(crops: torch.Tensor) -> torch.Tensor:
    """Each crop to zero mean and unit standard deviation (flat crops are only centred)."""
    mean = crops.mean(dim=(1, 2, 3), keepdim=True)
    std = crops.std(dim=(1, 2, 3), keepdim=True)
    return (crops - mean) / std.clamp_min(1.0)


def photometric(crops: torch.Tensor, method: str) -> torch.Tensor:
    """(B, 1, H, W) crops in [0, 255] -> the model's pixel scale, by ``method`` (see the module docstring)."""
    if method == "equalize":
        return equalize(crops)
    if method == "standardize":
        return standardize(crops)
    if method == "none":
        return crops / 255.0
    raise ValueError(f"unknown photometric normalisation {method!r}; choose one of: {', '.join(PHOTOMETRIC)}")


def prepare(crops: torch.Tensor, config: InputConfig) -> torch.Tensor:
    """(B, 1, H, W) float crops in [0, 255] -> normalised model input, resized to ``config.input_size``."""
    x = crops.float()
    size = config.input_size
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True).clamp(0, 255)
    return (photometric(x, config.photometric) - config.mean) / config.std


def probabilities(logits: torch.Tensor, config: InputConfig) -> torch.Tensor:
    """Calibrated class probabilities: softmax of ``logits / config.temperature`` (fitted on validation)."""
    return F.softmax(logits.float() / config.temperature, dim=1)
