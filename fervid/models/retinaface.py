"""RetinaFace with a MobileNet-0.25 backbone, FPN and SSH context modules.

The attribute names (``body``, ``fpn``, ``ssh1..3``, ``ClassHead``, ``BboxHead``,
``LandmarkHead`` and the numbered ``nn.Sequential`` children) follow the original
biubug6/Pytorch_Retinaface implementation so its published checkpoints load with
``strict=True``. The module holds no paths and no preprocessing: input mean, anchor
sizes and variances live in the weights' config (see ``retinaface_weights``).

Every conv is followed by a batch norm at the same ``nn.Sequential`` index as in the
original. A *fused* model (``fused=True`` or after :meth:`RetinaFace.fuse_batchnorm`)
folds each batch norm into the conv's bias and leaves an ``nn.Identity`` in its
place, so the indices and therefore the state-dict keys of the convs do not change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Negative slope of every LeakyReLU in the 0.25-width model (the original uses 0.1
#: whenever a block has at most 64 output channels, which is all of them here).
LEAKY = 0.1


# --- blocks -------------------------------------------------------------------------------------


def conv_bn(
    inp: int,
    oup: int,
    kernel: int = 3,
    stride: int = 1,
    groups: int = 1,
    leaky: float | None = LEAKY,
    fused: bool = False,
) -> list[nn.Module]:
    """Conv, batch norm (or Identity when fused) and an optional LeakyReLU, as a layer list.

    Returned as a list so callers can splice two of them into one ``nn.Sequential``
    and keep the original child indices (0 conv, 1 norm, 2 activation, 3 conv, ...).
    """
    layers: list[nn.Module] = [
        nn.Conv2d(inp, oup, kernel, stride, padding=kernel // 2, groups=groups, bias=fused),
        nn.Identity() if fused else nn.BatchNorm2d(oup),
    ]
    if leaky is not None:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return layers


def conv_dw(inp: int, oup: int, stride: int, fused: bool = False) -> nn.Sequential:
    """MobileNet depthwise-separable block: 3x3 depthwise then 1x1 pointwise (keys .0/.1, .3/.4)."""
    return nn.Sequential(
        *conv_bn(inp, inp, 3, stride, groups=inp, fused=fused),
        *conv_bn(inp, oup, 1, 1, fused=fused),
    )


class MobileNetV1Body(nn.Module):
    """MobileNet-0.25 trunk returning the stride 8, 16 and 32 feature maps.

    Plays the role of the original's ``IntermediateLayerGetter`` over MobileNetV1:
    only ``stage1..3`` exist (the classifier layers are never used, nor stored in
    the checkpoint).
    """

    def __init__(self, fused: bool = False) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            nn.Sequential(*conv_bn(3, 8, 3, 2, fused=fused)),
            conv_dw(8, 16, 1, fused),
            conv_dw(16, 32, 2, fused),
            conv_dw(32, 32, 1, fused),
            conv_dw(32, 64, 2, fused),
            conv_dw(64, 64, 1, fused),
        )
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2, fused), *(conv_dw(128, 128, 1, fused) for _ in range(5)))
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2, fused), conv_dw(256, 256, 1, fused))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        return c1, c2, c3


class FPN(nn.Module):
    """Feature pyramid: 1x1 lateral convs, top-down nearest upsampling, 3x3 merge convs."""

    def __init__(self, in_channels: tuple[int, ...] = (64, 128, 256), out_channels: int = 64, fused: bool = False):
        super().__init__()
        self.output1 = nn.Sequential(*conv_bn(in_channels[0], out_channels, 1, fused=fused))
        self.output2 = nn.Sequential(*conv_bn(in_channels[1], out_channels, 1, fused=fused))
        self.output3 = nn.Sequential(*conv_bn(in_channels[2], out_channels, 1, fused=fused))
        self.merge1 = nn.Sequential(*conv_bn(out_channels, out_channels, 3, fused=fused))
        self.merge2 = nn.Sequential(*conv_bn(out_channels, out_channels, 3, fused=fused))

    def forward(
        self, features: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        o1 = self.output1(features[0])
        o2 = self.output2(features[1])
        o3 = self.output3(features[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return o1, o2, o3


class SSH(nn.Module):
    """Single Stage Headless context module: 3x3, 5x5 and 7x7 receptive fields (as stacked 3x3s)."""

    def __init__(self, in_channels: int = 64, out_channels: int = 64, fused: bool = False) -> None:
        super().__init__()
        half, quarter = out_channels // 2, out_channels // 4
        self.conv3X3 = nn.Sequential(*conv_bn(in_channels, half, leaky=None, fused=fused))
        self.conv5X5_1 = nn.Sequential(*conv_bn(in_channels, quarter, fused=fused))
        self.conv5X5_2 = nn.Sequential(*conv_bn(quarter, quarter, leaky=None, fused=fused))
        self.conv7X7_2 = nn.Sequential(*conv_bn(quarter, quarter, fused=fused))
        self.conv7x7_3 = nn.Sequential(*conv_bn(quarter, quarter, leaky=None, fused=fused))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c3 = self.conv3X3(x)
        c5_1 = self.conv5X5_1(x)
        c5 = self.conv5X5_2(c5_1)
        c7 = self.conv7x7_3(self.conv7X7_2(c5_1))
        return F.relu(torch.cat([c3, c5, c7], dim=1))


class Head(nn.Module):
    """1x1 conv predicting ``values`` numbers per anchor, flattened to (B, H*W*anchors, values)."""

    def __init__(self, in_channels: int, num_anchors: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(in_channels, num_anchors * values, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


# --- model --------------------------------------------------------------------------------------


class RetinaFace(nn.Module):
    """RetinaFace MobileNet-0.25: returns per-anchor box offsets, face probability and landmarks.

    ``forward(x)`` takes a float (B, 3, H, W) BGR image minus the weights' mean and
    returns ``loc`` (B, N, 4), ``conf`` (B, N, 2) softmaxed (column 1 is "face") and
    ``landm`` (B, N, 10), with N anchors ordered as ``geometry.prior_boxes(H, W)``.
    """

    def __init__(self, fused: bool = False, num_anchors: int = 2, channels: int = 64) -> None:
        super().__init__()
        self.body = MobileNetV1Body(fused)
        self.fpn = FPN((64, 128, 256), channels, fused)
        self.ssh1 = SSH(channels, channels, fused)
        self.ssh2 = SSH(channels, channels, fused)
        self.ssh3 = SSH(channels, channels, fused)
        self.ClassHead = nn.ModuleList(Head(channels, num_anchors, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(Head(channels, num_anchors, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(Head(channels, num_anchors, 10) for _ in range(3))

    @property
    def is_fused(self) -> bool:
        """True when no batch norm is left (weights hold folded biases)."""
        return not any(isinstance(m, nn.BatchNorm2d) for m in self.modules())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.fpn(self.body(x))
        levels = (self.ssh1(features[0]), self.ssh2(features[1]), self.ssh3(features[2]))
        conf = torch.cat([head(f) for head, f in zip(self.ClassHead, levels)], dim=1)
        loc = torch.cat([head(f) for head, f in zip(self.BboxHead, levels)], dim=1)
        landm = torch.cat([head(f) for head, f in zip(self.LandmarkHead, levels)], dim=1)
        return loc, F.softmax(conf, dim=-1), landm

    @torch.no_grad()
    def fuse_batchnorm(self) -> RetinaFace:
        """Fold every batch norm into the conv before it (inference speed-up); returns self.

        Uses the running statistics, i.e. eval-mode behaviour. The norm becomes an
        ``nn.Identity`` so the model's structure matches ``RetinaFace(fused=True)``.
        """
        for seq in self.modules():
            if not isinstance(seq, nn.Sequential):
                continue
            for i in range(len(seq) - 1):
                conv, norm = seq[i], seq[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    seq[i] = fold_batchnorm(conv, norm)
                    seq[i + 1] = nn.Identity()
        return self


def fold_batchnorm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias computing ``norm(conv(x))`` in eval mode."""
    mean, var = norm.running_mean, norm.running_var
    assert mean is not None and var is not None  # None only without track_running_stats, which RetinaFace keeps
    scale = norm.weight / torch.sqrt(var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(mean)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]  # torch's stub: a conv's tuple[int, ...] is no 2-tuple
        conv.stride,  # type: ignore[arg-type]  # (as above)
        conv.padding,  # type: ignore[arg-type]  # (as above)
        conv.dilation,  # type: ignore[arg-type]  # (as above)
        conv.groups,
        bias=True,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    fused.weight.copy_(conv.weight * scale[:, None, None, None])
    assert fused.bias is not None  # bias=True
    fused.bias.copy_((bias - mean) * scale + norm.bias)
    return fused


# --- checkpoint filter --------------------------------------------------------------------------


def filter_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the ``module.`` prefix that ``nn.DataParallel`` training left in the original keys."""
    return {k.removeprefix("module."): v for k, v in state_dict.items()}
