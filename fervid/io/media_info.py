"""What :func:`fervid.io.probe.probe` says about an input, in a module of its own.

Both the prober and the video reader use ``MediaInfo`` (the reader skips decoding a frame when the input was probed
already), and the prober opens a reader; keeping the type here lets each import it without importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MediaKind = Literal["video", "image", "image_folder"]


@dataclass(frozen=True)
class MediaInfo:
    """Facts about an input. Sizes are as displayed (after rotation / EXIF orientation).

    For images ``fps``/``duration_s`` are None and ``frame_count`` is the number of
    images; ``video_codec`` holds the image format (``jpeg``, ``png``) for a single
    image and None for a folder.
    """

    path: Path
    kind: MediaKind
    width: int | None
    height: int | None
    fps: float | None
    duration_s: float | None
    frame_count: int | None
    has_audio: bool
    audio_codec: str | None
    video_codec: str | None
    rotation: int
