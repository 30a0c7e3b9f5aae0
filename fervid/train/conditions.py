"""Video conditions at a chosen strength, for measuring where a model stops reading faces and how sure to be.

``fervid.train.degrade`` draws conditions at the strengths training uses; here each condition
is a function of its strength, so a benchmark can sweep it (``benchmarks/readability.py``)
and a fit can draw faces across the whole range, down to unreadable (``scripts/fit_reliability.py``,
``benchmarks/reliability.py``). Images are (N, 1, H, W) float tensors in [0, 1], FER's 48 px
framing; each result is rounded to 8-bit levels as a camera would store it.

What each condition does to the measurements of :mod:`fervid.quality` annotate takes:
darkness lowers ``brightness`` and ``contrast`` (and its sensor noise raises ``sharpness``),
blur lowers ``sharpness``, a small face has a small ``face_px`` (FER's eye distance times
``size / 48``), a turn has the ``yaw`` it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fervid.align import FER_TEMPLATE_48
from fervid.train.degrade import quantize

#: Eye distance of a face in FER's 48 px framing (the template's eye centres).
FER_EYE_PX = float(np.linalg.norm(FER_TEMPLATE_48[1] - FER_TEMPLATE_48[0]))
#: Strengths per condition, mild to unreadable (the first is the clean face).
STRENGTHS: dict[str, tuple[float, ...]] = {
    "darkness": (1.0, 0.5, 0.3, 0.2, 0.12, 0.08, 0.05, 0.03, 0.02, 0.01),  # brightness factor
    "blur": (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0),  # Gaussian sigma, px at 48
    "small face": (48, 36, 28, 24, 20, 16, 13, 10, 8, 6, 4),  # face size, px
    "turn": (0.0, 15.0, 30.0, 45.0, 55.0, 65.0, 75.0, 85.0),  # degrees
}


def darken(x: torch.Tensor, k: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Brightness times ``k`` plus shot and read noise (``degrade.low_light``'s noise model)."""
    dark = x * k
    sigma = torch.sqrt(0.002 * dark + 0.005**2)
    return quantize(dark + sigma * torch.randn(x.shape, generator=gen))


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``sigma`` px (separable, edge pixels repeated)."""
    if sigma <= 0:
        return x
    k = 2 * int(np.ceil(3 * sigma)) + 1
    r = torch.arange(k, dtype=x.dtype) - k // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    padded = F.pad(x, (k // 2,) * 4, mode="replicate")
    y = F.conv2d(padded, g.view(1, 1, 1, k))
    return quantize(F.conv2d(y, g.view(1, 1, k, 1)))


def shrink(x: torch.Tensor, size: float) -> torch.Tensor:
    """Down to ``size`` px (area-averaged) and back up (bilinear), as annotate upsamples a small face."""
    size = int(size)
    if size >= x.shape[-1]:
        return x
    small = F.interpolate(x, size=(size, size), mode="area")
    return quantize(F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False))


def turn(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Every face turned by ``degrees`` (alternately either way), wrapped round a cylinder as in training."""
    from fervid.train.augment import AugmentConfig, cylinder_yaw

    if degrees == 0:
        return x
    signs = torch.where(torch.arange(len(x)) % 2 == 0, 1.0, -1.0)
    return quantize(cylinder_yaw(x, signs * np.radians(degrees), AugmentConfig().yaw_radius))


def apply(x: torch.Tensor, condition: str, strength: float, seed: int = 0) -> torch.Tensor:
    """One condition at one strength on every face."""
    if condition == "darkness":
        return darken(x, strength, torch.Generator().manual_seed(seed))
    if condition == "blur":
        return blur(x, strength)
    if condition == "small face":
        return shrink(x, strength)
    if condition == "turn":
        return turn(x, strength)
    raise ValueError(f"unknown condition {condition!r}; choose one of: {', '.join(STRENGTHS)}")


@dataclass
class ConditionedFaces:
    """Faces each under one condition at one strength, with what annotate would measure of their geometry."""

    images: np.ndarray  # (N, H, W) uint8
    condition: np.ndarray  # (N,) str: "clean" or a STRENGTHS key
    strength: np.ndarray  # (N,) float
    face_px: np.ndarray  # (N,) eye distance the face had
    yaw: np.ndarray  # (N,) degrees: the face's own (landmarks) plus any turn applied
    roll: np.ndarray  # (N,) degrees, from the landmarks


def conditioned(
    images: np.ndarray, yaw: np.ndarray, roll: np.ndarray, seed: int, clean_share: float = 0.2
) -> ConditionedFaces:
    """Every face under a condition drawn at random (``clean_share`` left clean), at a strength drawn from the
    condition's whole range, so the faces span readable to unreadable evenly per condition."""
    rng = np.random.default_rng(seed)
    n = len(images)
    names = list(STRENGTHS)
    pick = rng.integers(0, len(names), n)
    clean = rng.uniform(size=n) < clean_share
    strength = np.array([rng.choice(STRENGTHS[names[k]][1:]) for k in pick], dtype=np.float64)
    x = torch.from_numpy(images).float().unsqueeze(1) / 255.0
    out = images.copy()
    condition = np.where(clean, "clean", np.array(names, dtype=object)[pick]).astype(object)
    face_px = np.full(n, FER_EYE_PX)
    yaw = np.nan_to_num(np.asarray(yaw, dtype=np.float64)).copy()
    for k, name in enumerate(names):
        for level in STRENGTHS[name][1:]:
            members = np.flatnonzero(~clean & (pick == k) & (strength == level))
            if len(members) == 0:
                continue
            y = apply(x[members], name, level, seed=seed * 1000 + k)
            out[members] = (y[:, 0] * 255).round().to(torch.uint8).numpy()
            if name == "small face":
                face_px[members] = FER_EYE_PX * level / 48
            if name == "turn":  # alternately either way, as ``turn`` does
                signs = np.where(np.arange(len(members)) % 2 == 0, 1.0, -1.0)
                yaw[members] = np.clip(yaw[members] + signs * level, -90, 90)
    strength[clean] = 0.0
    return ConditionedFaces(out, condition, strength, face_px, yaw, np.nan_to_num(np.asarray(roll, np.float64)))


def dataset_landmarks(images: np.ndarray, cache: Path) -> np.ndarray:
    """Five-point landmarks (N, 5, 2) of each dataset face from our detector (NaN: none found), cached by hash.

    Why cached: the detector takes minutes for a split on a CPU, and the faces never change.
    """
    from fervid.train.pose import images_digest

    digest = images_digest(images)
    if cache.exists():
        with np.load(cache) as stored:
            if str(stored["digest"]) == digest:
                return stored["landmarks"]
    from fervid.detect import FaceDetector
    from fervid.train.template import detect_dataset_faces

    detector = FaceDetector(det_size=None, score_threshold=0.9, device="cpu")
    landmarks, _ = detect_dataset_faces(images, detector)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, digest=digest, landmarks=landmarks)
    return landmarks
