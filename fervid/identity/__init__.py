"""Person identity: 128-d face descriptors (dlib's ResNet, ported) from frames and our landmarks.

Two tracks whose descriptors are closer than ``--identity-threshold``
(:attr:`fervid.options.IdentityOptions.identity_threshold`, default 0.5, Euclidean) are taken as one
person; dlib's own threshold, 0.6, merges people fervid must keep apart (docs/identity.md). The chips
are cut on the device by :func:`~fervid.identity.chips.face_chips`; the network is loaded once per device.
"""

from __future__ import annotations

import numpy as np
import torch

from fervid.identity.chips import CHIP_SIZE, DLIB_CHIP_TEMPLATE_150, Frames, face_chips
from fervid.models.face_embedding_weights import cached_face_embedding


def face_descriptors(
    frames: Frames,
    frame_index: torch.Tensor | np.ndarray,
    landmarks: torch.Tensor | np.ndarray,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
) -> np.ndarray:
    """(n, 128) float32 raw dlib descriptors for n faces given by their frame and five landmarks.

    Faces go through the network ``batch_size`` at a time, so memory stays bounded for
    frames with many faces.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    loaded = cached_face_embedding(device)
    model, config = loaded.model, loaded.config
    landmarks = torch.as_tensor(landmarks, dtype=torch.float32, device=device)
    frame_index = np.asarray(torch.as_tensor(frame_index).cpu(), dtype=np.int64).reshape(-1)
    out = np.zeros((len(landmarks), model.embedding_dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(landmarks), batch_size):
            stop = start + batch_size
            chips = face_chips(frames, frame_index[start:stop], landmarks[start:stop], size=config.input_size)
            batch = config.normalize(chips).contiguous(memory_format=torch.channels_last)
            out[start:stop] = model(batch).float().cpu().numpy()
    return out


__all__ = ["CHIP_SIZE", "DLIB_CHIP_TEMPLATE_150", "face_chips", "face_descriptors"]
