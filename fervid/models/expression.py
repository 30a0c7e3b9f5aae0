"""Expression classifier: a small residual CNN for 48x48 grayscale faces.

Why this design: the default model runs once per face per frame inside the video
pipeline and on laptop CPUs, so accuracy per FLOP matters more than raw size.
A ResNet-style stack (3x3 convs, batch norm, identity shortcuts) trains well from
scratch on FER-sized data and runs fast on oneDNN/cuDNN; global average pooling keeps
the head tiny. Input normalisation, class names and the crop template live in the
weight file's config, not here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fervid.models.expression_interface import LinearHead


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut; a 1x1 projection when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ExpressionNet(LinearHead):
    """Residual CNN: stem at full resolution, then one stage per width, each halving the size.

    ``forward`` takes normalised (B, 1, H, W) float images and returns logits (B, num_classes); the rest of
    its interface is :class:`~fervid.models.expression_interface.ExpressionNetwork`'s.
    """

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (32, 64, 128, 256),
        blocks: Sequence[int] = (1, 1, 1),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if len(blocks) != len(widths) - 1:
            raise ValueError(f"need one block count per stage: {len(widths) - 1} stages, got {len(blocks)}")
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(True)
        )
        stages = []
        for in_ch, out_ch, n in zip(widths[:-1], widths[1:], blocks):
            layers = [BasicBlock(in_ch, out_ch, stride=2)] + [BasicBlock(out_ch, out_ch) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block: blocks start as identity
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled (B, widths[-1]) features: what every classification head reads."""
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)
