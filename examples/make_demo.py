"""Render examples/astronaut.mp4: a short demo clip made by the project itself.

The source is scikit-image's public-domain ``astronaut`` photo (Eileen Collins, NASA).
A slow zoom and pan over it gives a moving face for `fervid annotate` to detect, track
and classify on any machine, without downloading anything.

    python examples/make_demo.py            # needs scikit-image (pip install -e '.[test]')
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data

OUT = Path(__file__).with_name("astronaut.mp4")
WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 25, 4


def frames() -> list[np.ndarray]:
    """Crops of the photo along a smooth zoom/pan path, resized to the output size."""
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float()[None]  # 512x512
    n = FPS * SECONDS
    out = []
    for i in range(n):
        t = 0.5 - 0.5 * np.cos(np.pi * i / (n - 1))  # ease in/out
        crop_w = 500 - 180 * t  # zoom in
        crop_h = crop_w * HEIGHT / WIDTH
        cx, cy = 250 + 10 * t, 200 - 60 * t  # drift towards the face
        x0, y0 = int(np.clip(cx - crop_w / 2, 0, 512 - crop_w)), int(np.clip(cy - crop_h / 2, 0, 512 - crop_h))
        crop = photo[..., y0 : y0 + int(crop_h), x0 : x0 + int(crop_w)]
        frame = F.interpolate(crop, size=(HEIGHT, WIDTH), mode="bilinear", antialias=True, align_corners=False)
        out.append(frame[0].permute(1, 2, 0).clamp(0, 255).round().byte().numpy())
    return out


def main() -> None:
    with av.open(str(OUT), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.time_base = Fraction(1, FPS)
        stream.options = {"crf": "26", "preset": "slow"}
        for i, image in enumerate(frames()):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
