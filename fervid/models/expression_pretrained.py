"""Start a :class:`FaceResNetExpressionNet` from dlib's face-recognition weights (``fervid train --arch face-resnet``).

dlib's network reads RGB chips as ``(pixel - mean_c) / 256`` per channel. Our crops are grey,
so the three input channels would be the same image; the stem is made one-channel by summing
its weights over the colour channels, and the per-channel mean differences are folded into
its bias. That is exact because dlib's stem has no padding: every output sees only image
pixels. With the config's mean and std set to the grey equivalent of dlib's scale (below),
the trunk computes on a grey crop exactly what dlib's trunk computes on that crop repeated
in three channels (``tests/test_expression_face_resnet.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from fervid.models.expression_face_resnet import DLIB_TRUNK_SIZE, FaceResNetExpressionNet
from fervid.models.face_embedding import DLIB_UNITS, DLIB_WIDTHS
from fervid.models.face_embedding_weights import load_face_embedding


@dataclass(frozen=True)
class PretrainedTrunk:
    """A face-resnet expression network with dlib's trunk, and the input scale its config must record."""

    net: FaceResNetExpressionNet
    mean: float  # config mean and std: (pixel / 255 - mean) / std == (pixel - dlib's grey mean) / 256
    std: float
    sha256: str  # of the dlib weight file the trunk came from


def pretrained_face_resnet(
    num_classes: int, dropout: float = 0.3, trunk_size: int = DLIB_TRUNK_SIZE, path: str | Path | None = None
) -> PretrainedTrunk:
    """A network whose trunk is dlib's (``path``, default the packaged file) and whose classifier is new."""
    loaded = load_face_embedding(path)
    dlib, config = loaded.model, loaded.config
    net = FaceResNetExpressionNet(num_classes, DLIB_WIDTHS, DLIB_UNITS, dropout, trunk_size)
    mean_rgb = torch.tensor(config.mean_rgb, dtype=torch.float32)
    grey_mean = float(mean_rgb.mean())
    with torch.no_grad():
        weight = dlib.stem.weight  # (out, 3, 7, 7)
        # dlib's channel c sees (pixel - mean_c) * scale = ours + (grey_mean - mean_c) * scale.
        offsets = (grey_mean - mean_rgb) * config.scale
        assert net.stem.bias is not None and dlib.stem.bias is not None  # dlib_trunk's stems have a bias
        net.stem.weight.copy_(weight.sum(dim=1, keepdim=True))
        net.stem.bias.copy_(dlib.stem.bias + (weight * offsets.view(1, 3, 1, 1)).sum(dim=(1, 2, 3)))
        net.units.load_state_dict(dlib.units.state_dict())
    return PretrainedTrunk(net, mean=grey_mean / 255.0, std=1.0 / (255.0 * config.scale), sha256=loaded.info.sha256)


__all__ = ["PretrainedTrunk", "pretrained_face_resnet"]
