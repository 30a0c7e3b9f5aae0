"""What video does to a face, as batched tensor ops: the robustness benchmark's conditions and training's.

A face in a video frame is rarely a FER photo: rooms are dim (dark, noisy crops), cameras
are soft or shaken (blur), faces are small (a 20 px face scaled up to 48 px), streams are
compressed (JPEG/H.264 blocks), and alignment is never perfect (shifted, scaled, rotated
crops). Each :class:`Degradation` applies one such condition to a (B, 1, H, W) batch in
[0, 1], with its strength drawn per image from a fixed range, and rounds the result to
8 bits as a camera would.

``benchmarks/robustness.py`` applies each condition on its own with a fixed seed, so its
table can be compared run to run; :func:`random_degradations` applies a random subset per
image during training, so the model learns the same conditions it is measured on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fervid.train.batch_ops import uniform, warp

Apply = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels, as a camera or codec would store the result."""
    return (x.clamp(0, 1) * 255).round() / 255


def low_light(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Brightness x0.25-0.4 plus sensor noise: shot noise (grows with the signal) and read noise."""
    dark = x * uniform(len(x), 0.25, 0.4, x.device, gen).view(-1, 1, 1, 1)
    sigma = torch.sqrt(0.002 * dark + 0.005**2)  # ~4 grey levels at 10 % brightness
    return quantize(dark + sigma * torch.randn(x.shape, device=x.device, generator=gen))


def low_contrast(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Contrast x0.3-0.5 around the crop's mean (haze, flat lighting, a washed-out webcam)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return quantize((x - mean) * uniform(len(x), 0.3, 0.5, x.device, gen).view(-1, 1, 1, 1) + mean)


def gamma(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """A tone curve: gamma 0.45-0.65 (lifted shadows) or 1.6-2.2 (crushed shadows), half each."""
    b = len(x)
    low = uniform(b, 0.45, 0.65, x.device, gen).view(b, 1, 1, 1)
    high = uniform(b, 1.6, 2.2, x.device, gen).view(b, 1, 1, 1)
    pick = torch.rand(b, device=x.device, generator=gen).view(b, 1, 1, 1) < 0.5
    return quantize(x.clamp_min(0).pow(torch.where(pick, low, high)))


def _filter_each(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image with its own (k, k) kernel (grouped conv, edge padding)."""
    b, _, h, w = x.shape
    k = kernels.shape[-1]
    padded = F.pad(x.transpose(0, 1), (k // 2,) * 4, mode="replicate")  # (1, B, H+k-1, W+k-1)
    return F.conv2d(padded, kernels.unsqueeze(1), groups=b).transpose(0, 1).view(b, 1, h, w)


def gaussian_blur(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Defocus: Gaussian blur with sigma 1.0-2.0 px at 48 px (a soft webcam, a face out of focus)."""
    b, k = len(x), 9
    sigma = uniform(b, 1.0, 2.0, x.device, gen).view(b, 1, 1)
    r = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    g = torch.exp(-(r.view(1, k, 1) ** 2 + r.view(1, 1, k) ** 2) / (2 * sigma**2))
    return quantize(_filter_each(x, g / g.sum(dim=(1, 2), keepdim=True)))


def motion_blur(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Camera or head motion: a line kernel 5-9 px long at a random angle."""
    b, k = len(x), 9
    length = uniform(b, 5.0, 9.0, x.device, gen).view(b, 1, 1)
    angle = (torch.rand(b, device=x.device, generator=gen) * math.pi).view(b, 1, 1)
    r = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    ys, xs = r.view(1, k, 1), r.view(1, 1, k)
    along = xs * torch.cos(angle) + ys * torch.sin(angle)
    across = -xs * torch.sin(angle) + ys * torch.cos(angle)
    line = (along.abs() <= length / 2) * torch.clamp(1 - across.abs(), min=0)
    return quantize(_filter_each(x, line / line.sum(dim=(1, 2), keepdim=True).clamp_min(1e-6)))


def downscale(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """A small face: down to 16-24 px (area-averaged) and back up (bilinear), as annotate upsamples it."""
    b, _, h, w = x.shape
    sizes = torch.randint(16, 25, (b,), device=x.device, generator=gen).tolist()
    out = torch.empty_like(x)
    for size in sorted(set(sizes)):
        members = torch.tensor([i for i, s in enumerate(sizes) if s == size], device=x.device)
        small = F.interpolate(x[members], size=(size, size), mode="area")
        out[members] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return quantize(out)


#: The JPEG standard's luminance quantisation table (quality 50).
_JPEG_LUMA = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float32,
)  # fmt: skip


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    m = torch.cos(math.pi * (2 * k.view(1, n) + 1) * k.view(n, 1) / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


def jpeg_luma(x: torch.Tensor, quality: int = 20) -> torch.Tensor:
    """JPEG's lossy step on the luma plane: 8x8 DCT, quantisation at ``quality``, inverse DCT.

    This is what a JPEG encoder loses (the rest of the codec is lossless), computed as two
    batched matrix products per block; crops whose size is not a multiple of 8 are padded.
    """
    b, _, h, w = x.shape
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    table = ((_JPEG_LUMA * scale + 50) // 100).clamp(1, 255).to(x.device)
    ph, pw = -h % 8, -w % 8
    img = F.pad(x * 255 - 128, (0, pw, 0, ph), mode="replicate")
    hh, ww = img.shape[-2:]
    blocks = img.view(b, hh // 8, 8, ww // 8, 8).permute(0, 1, 3, 2, 4)
    d = _dct_matrix().to(x.device)
    coef = d @ blocks @ d.T
    coef = torch.round(coef / table) * table
    back = (d.T @ coef @ d).permute(0, 1, 3, 2, 4).reshape(b, 1, hh, ww)[..., :h, :w]
    return quantize((back + 128) / 255)


def jpeg(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Heavy compression: JPEG at quality 15-25 (training draws it; the benchmark uses a real encoder at 20)."""
    quality = int(torch.randint(15, 26, (1,), generator=gen, device=gen.device if gen else "cpu"))
    return jpeg_luma(x, quality)


def crop_jitter(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Imperfect alignment: shift up to +-10 % of the crop, scale 0.9-1.1, rotation up to +-10 degrees."""
    b, dev = len(x), x.device
    angle = uniform(b, -10, 10, dev, gen) * (math.pi / 180)
    scale = uniform(b, 0.9, 1.1, dev, gen)
    shift = uniform(2 * b, -0.1, 0.1, dev, gen).view(b, 2)
    return quantize(warp(x, angle, scale, shift))


@dataclass(frozen=True)
class Degradation:
    name: str
    description: str
    apply: Apply


DEGRADATIONS: tuple[Degradation, ...] = (
    Degradation("low_light", "brightness x0.25-0.4 + sensor noise", low_light),
    Degradation("low_contrast", "contrast x0.3-0.5", low_contrast),
    Degradation("gamma", "gamma 0.45-0.65 or 1.6-2.2", gamma),
    Degradation("gaussian_blur", "Gaussian blur, sigma 1-2 px", gaussian_blur),
    Degradation("motion_blur", "motion blur, 5-9 px", motion_blur),
    Degradation("downscale", "face at 16-24 px, upscaled", downscale),
    Degradation("jpeg", "JPEG quality ~20", jpeg),
    Degradation("crop_jitter", "shift/scale +-10 %, rotation +-10 deg", crop_jitter),
)
BY_NAME = {d.name: d for d in DEGRADATIONS}


def random_degradations(x: torch.Tensor, p: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Training: each image undergoes each condition with probability ``p``, in the table's order.

    Every condition is computed for the whole batch and kept where chosen: at 48 px that is
    cheaper than gathering subsets, and it keeps the step free of per-image Python work.
    """
    if p <= 0:
        return x
    b = len(x)
    for degradation in DEGRADATIONS:
        chosen = (torch.rand(b, device=x.device, generator=gen) < p).view(b, 1, 1, 1)
        if chosen.any():
            x = torch.where(chosen, degradation.apply(x, gen), x)
    return x
