"""Small synthetic media built with PyAV for the fervid.io tests (no ffmpeg binary needed).

Each frame carries its number in its pixels (a gray level), so tests can tell which
frame came back, and clips can have irregular timestamps, rotation and audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TIME_BASE = Fraction(1, 1000)


def frame_image(i: int, width: int, height: int) -> np.ndarray:
    """Frame ``i``: flat gray level 8*i (mod 240) with a white 8x8 marker at the top-left."""
    image = np.full((height, width, 3), (8 * i) % 240, dtype=np.uint8)
    image[:8, :8] = 255
    return image


def make_clip(
    path: Path,
    times_s: Sequence[float],
    width: int = 64,
    height: int = 48,
    rotation: int | None = None,
    audio: str | None = None,
    audio_seconds: float | None = None,
    faststart: bool = False,
) -> Path:
    """Encode an H.264 clip whose frame ``i`` is shown at ``times_s[i]`` (ms precision).

    ``audio`` is an encoder name ("aac", "pcm_s16le", ...) for a 440 Hz mono tone
    lasting ``audio_seconds`` (default: the video's length).
    """
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = video.codec_context.time_base = TIME_BASE
        video.options = {"preset": "ultrafast", "crf": "18"}
        if rotation is not None:
            video.set_display_rotation(rotation)
        tone = None
        if audio is not None:
            tone = container.add_stream(audio, rate=16000, layout="mono")
        for i, t in enumerate(times_s):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
            frame.pts, frame.time_base = round(t / TIME_BASE), TIME_BASE
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if tone is not None:
            seconds = audio_seconds if audio_seconds is not None else (times_s[-1] if times_s else 1.0) + 0.1
            _write_tone(container, tone, seconds)
    return path


def _write_tone(container: av.container.OutputContainer, stream: av.stream.Stream, seconds: float) -> None:
    rate, chunk = 16000, 1024
    samples = np.sin(2 * np.pi * 440 * np.arange(round(seconds * rate)) / rate) * 0.3
    pcm = (samples * 32767).astype(np.int16)
    for start in range(0, len(pcm), chunk):
        piece = pcm[start : start + chunk][None, :]
        frame = av.AudioFrame.from_ndarray(piece, format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts, frame.time_base = start, Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An AAC .m4a with no video stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        _write_tone(container, stream, seconds)
    return path


def packets(path: Path, kind: str) -> list[av.Packet]:
    """All non-empty packets of the first stream of ``kind`` ("video"/"audio")."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [p for p in container.demux(stream) if p.size]


def stream_facts(path: Path, kind: str) -> tuple[str, float]:
    """(codec name, duration in seconds) of the first stream of ``kind``."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return stream.codec_context.codec.canonical_name, float(stream.duration * stream.time_base)
