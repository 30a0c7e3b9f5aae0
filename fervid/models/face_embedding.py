"""Face-identity embedding: dlib's metric-learning ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

Why a port instead of calling dlib: the network then runs batched on the same device as
the rest of the pipeline (CPU or CUDA), on chips we cut ourselves with ``grid_sample``,
and dlib becomes a test-only dependency. The weights are read at run time from dlib's
own ``.dat`` file (see ``face_embedding_weights``); the tests prove the port gives dlib's
descriptors to float precision.

The architecture follows dlib's ``anet_type`` (tools/python/src/face_recognition.cpp):

    input 150x150 RGB -> con 32 7x7/2 (no padding) -> affine -> relu -> max_pool 3x3/2 (no padding)
    -> 3 x res(32) -> res_down(64) + 3 x res(64) -> res_down(128) + 2 x res(128)
    -> res_down(256) + 2 x res(256) -> res_down(256) -> avg_pool_everything -> fc_no_bias 128

Each residual unit is ``relu(affine(conv3x3(relu(affine(conv3x3(x))))) + shortcut(x))``.
dlib's ``affine`` layer is a frozen batch norm (a per-channel scale and shift), so the
loader folds it into the preceding conv's weight and bias and this module has plain convs.
Two dlib details matter for exactness and are reproduced here:

* strided layers have **no padding** (dlib's default padding is ``size // 2`` only for
  stride 1), so sizes go 150 -> 72 -> 35 -> 17 -> 8 -> 3|4 -> 1|2;
* the shortcut of a down-sampling unit is a 2x2/2 average pool of the input, and the sum
  of two tensors of different shapes zero-pads the smaller one at the end of every axis
  (dlib's ``tt::add``): the extra channels of the branch pass unchanged, and where the
  strided branch is smaller than the pooled shortcut (3x3 vs 4x4, 1x1 vs 2x2) its
  missing bottom/right cells count as zero.

The output is dlib's raw descriptor: ``loss_metric`` does **not** L2-normalise (its norm
is only roughly 1), and dlib's 0.6 same-person threshold is a Euclidean distance between
these raw vectors. ``forward`` takes already normalised input; the mean and scale belong
to the weights' config, not to this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: dlib's anet_type: one width per level (input side first) and the residual units in each
#: level; every level but the first starts with a down-sampling unit.
DLIB_WIDTHS = (32, 64, 128, 256, 256)
DLIB_UNITS = (3, 4, 3, 3, 1)


# --- blocks -------------------------------------------------------------------------------------


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` for (B, C, H, W) tensors of different C, H or W, the smaller padded with zeros at the end.

    This is what dlib's ``add_prev`` does when the residual branch and the shortcut differ in
    shape (more channels after a width change, one row/column fewer after a strided conv
    of an even-sized map).
    """
    if a.shape == b.shape:
        return a + b
    channels, height, width = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, width - t.shape[3], 0, height - t.shape[2], 0, channels - t.shape[1]))

    return pad(a) + pad(b)


class ResidualUnit(nn.Module):
    """dlib's ``ares`` / ``ares_down``: two 3x3 convs (affine folded in) plus a shortcut, then relu.

    A down-sampling unit has a stride-2 unpadded first conv and an average-pooled shortcut
    that may have fewer channels than the branch (no projection: the sum zero-pads it).
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool) -> None:
        super().__init__()
        if not downsample and in_channels != out_channels:
            raise ValueError(f"an identity unit needs in_channels == out_channels, got {in_channels} -> {out_channels}")
        self.downsample = downsample
        stride, padding = (2, 0) if downsample else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(add_zero_padded(branch, shortcut))


# --- model --------------------------------------------------------------------------------------


class FaceEmbeddingNet(nn.Module):
    """(B, 3, 150, 150) normalised RGB chips -> (B, embedding_dim) raw dlib face descriptors.

    ``units`` is a flat sequence of residual units in the order dlib applies them, so the
    state-dict keys are ``stem.weight``, ``units.<i>.conv1.weight`` ... ``fc.weight``.
    """

    def __init__(
        self,
        widths: Sequence[int] = DLIB_WIDTHS,
        units: Sequence[int] = DLIB_UNITS,
        embedding_dim: int = 128,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.stem, self.units = dlib_trunk(widths, units, in_channels)
        self.fc = nn.Linear(widths[-1], embedding_dim, bias=False)

    @property
    def embedding_dim(self) -> int:
        """Values per descriptor (128 for dlib's network)."""
        return self.fc.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(trunk_features(self.stem, self.units, x))


def dlib_trunk(widths: Sequence[int], units: Sequence[int], in_channels: int = 3) -> tuple[nn.Conv2d, nn.Sequential]:
    """The stem conv and the residual units of dlib's ResNet, everything before its pooling and ``fc``.

    Shared by the identity network and the expression network that starts from its weights
    (:mod:`fervid.models.expression_face_resnet`), so both are the same trunk by construction.
    """
    if len(widths) != len(units) or not widths:
        raise ValueError(f"need one unit count per width: {len(widths)} widths, {len(units)} unit counts")
    if any(n < 1 for n in units):
        raise ValueError(f"every level needs at least one unit, got {tuple(units)}")
    stem = nn.Conv2d(in_channels, widths[0], 7, 2, 0)
    layers: list[ResidualUnit] = []
    previous = widths[0]
    for level, (width, count) in enumerate(zip(widths, units)):
        for k in range(count):
            down = level > 0 and k == 0
            layers.append(ResidualUnit(previous if down else width, width, downsample=down))
        previous = width
    return stem, nn.Sequential(*layers)


def trunk_features(stem: nn.Conv2d, units: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) input -> (B, widths[-1]) pooled features: dlib's stem, max pool, units, global average."""
    x = F.max_pool2d(F.relu(stem(x)), 3, 2)
    return units(x).mean(dim=(2, 3))


# --- factory ------------------------------------------------------------------------------------


def dlib_resnet_v1() -> FaceEmbeddingNet:
    """The architecture of ``dlib_face_recognition_resnet_model_v1.dat`` (untrained)."""
    return FaceEmbeddingNet(DLIB_WIDTHS, DLIB_UNITS, embedding_dim=128)


__all__ = [
    "DLIB_UNITS",
    "DLIB_WIDTHS",
    "FaceEmbeddingNet",
    "ResidualUnit",
    "add_zero_padded",
    "dlib_resnet_v1",
    "dlib_trunk",
    "trunk_features",
]
