"""Expression classification of detected faces, batched over all faces of a batch of frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fervid.align import FER_TEMPLATE_48, crop_faces, to_gray
from fervid.models.expression_weights import load_weights
from fervid.types import Detections, Predictions

Frames = torch.Tensor | Sequence[torch.Tensor]


class ExpressionClassifier:
    """Aligns each face with its landmarks, crops it like the training data, and classifies it.

    One forward pass for all faces of a frame batch. ``crops()`` exposes the exact model
    input (before normalisation) so tests and users can look at what the model sees.
    """

    def __init__(self, model: str | Path = "ferplus", device: str | torch.device = "cpu", max_batch: int = 1024):
        self.device = torch.device(device)
        net, self.config = load_weights(model)
        self.model_name = str(model)
        self.model = net.to(self.device).eval()
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        size = self.config.input_size
        self.template = torch.from_numpy(FER_TEMPLATE_48 * (size / 48.0)).to(self.device)
        self.max_batch = max_batch

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    def crops(self, frames: Frames, detections: Sequence[Detections]) -> torch.Tensor:
        """(n, 1, S, S) aligned grayscale crops in [0, 255] for all faces, frame by frame in order.

        ``frames`` is a (B, H, W, 3) uint8 tensor, or a list of (1, H, W, 3) tensors of
        different sizes (photos), which are cropped one by one.
        """
        if isinstance(frames, (list, tuple)):
            parts = [self.crops(f, [d]) for f, d in zip(frames, detections)]
            return torch.cat(parts) if parts else self.crops(torch.zeros((0, 1, 1, 3), dtype=torch.uint8), [])
        counts = [len(d) for d in detections]
        if sum(counts) == 0:
            return torch.zeros((0, 1, self.config.input_size, self.config.input_size), device=self.device)
        frame_index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts)).to(self.device)
        landmarks = torch.from_numpy(np.concatenate([d.landmarks for d in detections])).to(self.device)
        gray = to_gray(frames.to(self.device))
        return crop_faces(gray, frame_index, landmarks, self.template, self.config.input_size)

    @torch.inference_mode()
    def classify(self, frames: Frames, detections: Sequence[Detections]) -> list[Predictions]:
        """Probabilities for every face; frames are (B, H, W, 3) uint8 RGB, one Detections per frame."""
        crops = self.crops(frames, detections)
        probs = self._probs(crops)
        out, start = [], 0
        for d in detections:
            out.append(Predictions(probs[start : start + len(d)], self.classes))
            start += len(d)
        return out

    def _probs(self, crops: torch.Tensor) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        x = ((crops / 255.0) - self.config.mean) / self.config.std
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        parts = [
            F.softmax(self.model(x[i : i + self.max_batch]).float(), dim=1) for i in range(0, len(x), self.max_batch)
        ]
        return torch.cat(parts).cpu().numpy()
