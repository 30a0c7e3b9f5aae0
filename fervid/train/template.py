"""Measure where faces sit in a 48x48 expression dataset: the templates ``annotate`` frames faces with.

Why: ``annotate`` places every detected face in its crop before classifying it, and the
crop must look like the training crops (FER faces are loosely cropped and centred). Rather
than guess, we measure: run our own detector on the dataset's images (upscaled and padded,
so the face does not touch the border) and take medians in 48x48 crop pixels, of the five
landmarks (:func:`fit_template`) and of the detector's box (:func:`fit_box_template`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from fervid.detect import FaceDetector

UPSCALE = 4  # 48 px -> 192 px: well inside RetinaFace's anchor range
PAD = 96  # grey border so faces that fill the crop are not cut by the image edge


def detect_dataset_faces(
    images: np.ndarray,
    detector: FaceDetector,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (N, 5, 2) and boxes (N, 4, xyxy) of each image's main face, in the images' own
    pixel coordinates; NaN where no face was found (the detector's own score threshold).
    ``on_batch(n)`` is called after each batch of ``n`` images (for a progress bar)."""
    out = np.full((len(images), 5, 2), np.nan, dtype=np.float32)
    boxes = np.full((len(images), 4), np.nan, dtype=np.float32)
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
                boxes[start + i] = (dets.xyxy[best] - PAD) / UPSCALE
        if on_batch:
            on_batch(len(x))
    return out, boxes


def fit_template(landmarks: np.ndarray) -> np.ndarray:
    """Per-point median over the faces that were found: robust to the odd bad detection."""
    found = ~np.isnan(landmarks).any(axis=(1, 2))
    if not found.any():
        raise ValueError("no face was detected in any image; cannot fit a template")
    return np.median(landmarks[found], axis=0)


def fit_box_template(boxes: np.ndarray) -> tuple[np.ndarray, float]:
    """Median box centre (x, y) and median ``sqrt(width * height)`` over the faces that were found."""
    found = ~np.isnan(boxes).any(axis=1)
    if not found.any():
        raise ValueError("no face was detected in any image; cannot fit a box template")
    b = boxes[found].astype(np.float64)
    centre = np.median((b[:, :2] + b[:, 2:]) / 2, axis=0)
    size = float(np.median(np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))))
    return centre.astype(np.float32), size
