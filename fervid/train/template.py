"""Fit the canonical 5-landmark template of a 48x48 expression dataset.

Why: ``annotate`` aligns every detected face onto a template before classifying it,
and the crop must look like the training crops (FER faces are loosely cropped and
centred). Rather than guess a template, we measure it: run our own detector on the
training images (upscaled and padded, so the face does not touch the border) and take
the per-point median of the landmarks, in 48x48 crop pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fervid.detect import FaceDetector

UPSCALE = 4  # 48 px -> 192 px: well inside RetinaFace's anchor range
PAD = 96  # grey border so faces that fill the crop are not cut by the image edge


def detect_dataset_landmarks(images: np.ndarray, detector: FaceDetector, batch_size: int = 64) -> np.ndarray:
    """Landmarks (N, 5, 2) in the images' own pixel coordinates; NaN where no confident face was found."""
    out = np.full((len(images), 5, 2), np.nan, dtype=np.float32)
    size = images.shape[-1] * UPSCALE
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).float().unsqueeze(1)
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 255)
        x = F.pad(x, (PAD, PAD, PAD, PAD), value=128.0)
        rgb = x.round().to(torch.uint8).expand(-1, 3, -1, -1).permute(0, 2, 3, 1).contiguous()
        for i, dets in enumerate(detector.detect(rgb)):
            if len(dets):
                best = int(np.argmax(dets.area * dets.score))
                out[start + i] = (dets.landmarks[best] - PAD) / UPSCALE  # continuous pixel coordinates
    return out


def fit_template(landmarks: np.ndarray) -> np.ndarray:
    """Per-point median over the faces that were found: robust to the odd bad detection."""
    found = ~np.isnan(landmarks).any(axis=(1, 2))
    if not found.any():
        raise ValueError("no face was detected in any image; cannot fit a template")
    return np.median(landmarks[found], axis=0)
