"""Clips for the identity tests, built from ../shared/media with PyAV (nothing is stored in the repo)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

WOLFGANG = "media/pyfeat/WolfgangLanger_Pexels.mp4"
SINGLE_FACE = "media/pyfeat/single_face.mp4"


def decoded(path: Path, size: tuple[int, int] = (640, 360)) -> list[np.ndarray]:
    """Every frame of ``path`` as RGB, resized to ``size`` when it differs."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            if (image.shape[1], image.shape[0]) != size:
                image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
            frames.append(image)
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {"preset": "veryfast", "crf": "20"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def a_b_a_clip(shared: Path, path: Path) -> Path:
    """WolfgangLanger frames 0-149, all of single_face.mp4 (72 frames) at 640x360, WolfgangLanger 300-449."""
    wolfgang = decoded(shared / WOLFGANG)
    other = decoded(shared / SINGLE_FACE)
    return write_clip(path, wolfgang[0:150] + other + wolfgang[300:450])
