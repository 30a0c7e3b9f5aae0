"""Say what an input is before processing it: video, one image, or a folder of images.

The kind is sniffed from the content (Pillow, then PyAV), never from the file
extension, so ``clip.dat`` works and a text file renamed ``clip.mp4`` is refused
with a clear one-line reason. Animated GIF/PNG/WebP count as video when FFmpeg
can decode them, so their frame timing is kept.
"""

from __future__ import annotations

from pathlib import Path

from fervid.io.errors import InputError, check_file
from fervid.io.images import image_size, is_animated, list_images, open_image
from fervid.io.media_info import MediaInfo  # MediaInfo lives in a leaf module: video.py needs it too
from fervid.io.video import VideoReader, count_in_range

_NOT_VIDEO = "not a readable video file"


def probe(path: str | Path) -> MediaInfo:
    """Describe ``path`` or raise InputError with the reason it cannot be used."""
    path = Path(path)
    if path.is_dir():
        return _probe_folder(path)
    check_file(path)
    image_problem: str | None = None
    try:
        animated = is_animated(path)
    except InputError as exc:
        image_problem = exc.reason
        animated = False
    if image_problem is None and not animated:
        return _probe_image(path)
    try:
        return _probe_video(path)
    except InputError as exc:
        if animated:
            return _probe_image(path)  # an animation FFmpeg cannot decode: use its first frame
        if exc.reason.startswith(_NOT_VIDEO):  # neither library could read it: say both
            raise InputError(path, exc.reason.replace(_NOT_VIDEO, "not a readable video or image file")) from None
        raise


def _probe_video(path: Path) -> MediaInfo:
    with VideoReader(path) as reader:
        return MediaInfo(
            path=path,
            kind="video",
            width=reader.width,
            height=reader.height,
            fps=reader.fps,
            duration_s=reader.duration_s,
            frame_count=reader.frame_count,
            has_audio=reader.has_audio,
            audio_codec=reader.audio_codec,
            video_codec=reader.video_codec,
            rotation=reader.rotation,
        )


def _probe_image(path: Path) -> MediaInfo:
    with open_image(path) as image:
        fmt = (image.format or "image").lower()
    width, height = image_size(path)
    return MediaInfo(path, "image", width, height, None, None, 1, False, None, fmt, 0)


def _probe_folder(path: Path) -> MediaInfo:
    images = list_images(path, on_skip=lambda skipped, reason: None)  # readers report skips later
    if not images:
        raise InputError(path, "no images found in folder")
    width, height = image_size(images[0])
    return MediaInfo(path, "image_folder", width, height, None, None, len(images), False, None, None, 0)


def expected_frames(info: MediaInfo, start_s: float | None, end_s: float | None, every: int) -> int | None:
    """How many frames a run over this input will process (for a progress bar; None: unknown)."""
    if info.kind != "video":
        return info.frame_count
    return count_in_range(info.frame_count, info.fps or 0.0, start_s, end_s, every)
