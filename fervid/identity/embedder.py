"""The identity models of a run: dlib's descriptor network on the run's device, and the known people."""

from __future__ import annotations

import numpy as np
import torch

from fervid.identity import face_descriptors
from fervid.models.face_embedding_weights import cached_face_embedding
from fervid.models.weights_info import WeightsInfo


class FaceEmbedder:
    """``embedder(images, landmarks)``: one 128-d descriptor per (image, five landmarks) pair, batched."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        loaded = cached_face_embedding(device)  # loads (and checks) the weights now, not mid-run
        self.config = loaded.config
        #: The descriptor network's provenance (run.json's ``models.identity``).
        self.weights: WeightsInfo = loaded.info

    def __call__(self, images: list[np.ndarray], landmarks: np.ndarray) -> np.ndarray:
        index = np.arange(len(images))
        return face_descriptors([torch.as_tensor(i) for i in images], index, landmarks, device=self.device)
