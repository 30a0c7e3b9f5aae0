"""A corpus of good, damaged and awkward inputs, built from the real clips in ../shared/media.

Every file is written into a test's tmp folder (nothing is copied into the repo).
Clips are short (four to eight frames) and small (320x180) so a whole batch runs in seconds.
Damage is placed by packet layout, not by guessed byte offsets, so the expected
outcome of each file does not depend on the encoder's exact output size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from _io_media import _write_tone, make_audio_only
from PIL import Image, ImageOps

TIME_BASE = Fraction(1, 1000)


def real_frames(source: Path, n: int, width: int = 320, height: int = 180) -> list[np.ndarray]:
    """The first ``n`` frames of a real clip, resized, as RGB arrays."""
    frames = []
    with av.open(str(source)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(width=width, height=height, format="rgb24"))
            if len(frames) == n:
                break
    return frames


def encode(
    path: Path,
    frames: Sequence[np.ndarray],
    times_s: Sequence[float] | None = None,
    rotation: int | None = None,
    faststart: bool = True,
    audio: bool = False,
    gop: int = 4,
) -> Path:
    """H.264 in MP4 (yuv444p for odd sizes, which yuv420p cannot hold), with optional display rotation."""
    height, width = frames[0].shape[:2]
    odd = width % 2 or height % 2
    times = list(times_s) if times_s is not None else [i / 30 for i in range(len(frames))]
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = width, height, "yuv444p" if odd else "yuv420p"
        video.time_base = video.codec_context.time_base = TIME_BASE
        # one thread: the same bytes on every machine, so damage lands where the test expects
        video.options = {"preset": "ultrafast", "crf": "23", "g": str(gop), "keyint_min": str(gop), "threads": "1"}
        if rotation is not None:
            video.set_display_rotation(rotation)
        tone = container.add_stream("aac", rate=16000, layout="mono") if audio else None
        for image, t in zip(frames, times):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = round(t / TIME_BASE), TIME_BASE
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if tone is not None:
            _write_tone(container, tone, times[-1] + 0.05)
    return path


def video_packets(path: Path) -> list[tuple[int, int, bool]]:
    """(byte offset, size, keyframe) of each video packet, in file order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(int(p.pos), int(p.size), bool(p.is_keyframe)) for p in container.demux(stream) if p.size]
    return sorted(packets)


def truncate_in_packet(source: Path, path: Path, packet: int) -> Path:
    """Copy cut in the middle of video packet ``packet`` (a download that stopped)."""
    pos, size, _ = video_packets(source)[packet]
    path.write_bytes(source.read_bytes()[: pos + size // 2])
    return path


def flip_packet(source: Path, path: Path, packet: int) -> Path:
    """Copy with every byte of the second half of video packet ``packet`` inverted (bit rot)."""
    pos, size, _ = video_packets(source)[packet]
    data = bytearray(source.read_bytes())
    for offset in range(pos + size // 2, pos + size):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@dataclass
class Corpus:
    """The built folder and what each input must come out as (labels as the CLI prints them)."""

    root: Path
    failed: set[str] = field(default_factory=set)
    partial: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    vfr_times: list[float] = field(default_factory=list)

    def labels(self) -> Iterator[str]:
        yield from sorted(self.failed | self.partial | self.done)


def build_corpus(root: Path, media: Path) -> Corpus:
    """Write the batch corpus under ``root`` from ``media`` (the ../shared/media folder)."""
    root.mkdir(parents=True)
    c = Corpus(root)
    name = root.name
    face = real_frames(media / "pyfeat/single_face.mp4", 8)
    clip = encode(root / "clip.mp4", face, audio=True)
    c.done.add(f"{name}/clip.mp4")

    nomoov = encode(root.parent / "nomoov.mp4", face, faststart=False)
    for packet in (2, 4, 6):  # a download cut short at three places: the frames before the cut survive
        truncate_in_packet(clip, root / f"cut-{packet}.mp4", packet)
        c.partial.add(f"{name}/cut-{packet}.mp4")
    truncate_in_packet(nomoov, root / "cut-nomoov.mp4", 6)  # index at the end: nothing to read
    nomoov.unlink()
    flip_packet(clip, root / "flipped.mp4", 6)
    c.partial.add(f"{name}/flipped.mp4")
    (root / "headless.mp4").write_bytes(clip.read_bytes()[1024:])
    (root / "notes.mp4").write_text("meeting notes, not a video\n" * 20)
    (root / "empty.mp4").write_bytes(b"")
    make_audio_only(root / "voice.m4a")
    c.failed |= {f"{name}/{n}" for n in ("cut-nomoov.mp4", "headless.mp4", "notes.mp4", "empty.mp4", "voice.m4a")}

    # stored sideways with a display matrix: the reader must turn it upright
    encode(root / "rotated.mp4", [np.rot90(f, -1) for f in face[:4]], rotation=90)
    encode(root / "odd.mp4", [f[:179, :319] for f in face[:4]])  # 319x179: the writer pads, and says so
    c.vfr_times = [0.0, 0.02, 0.1, 0.13, 0.4, 0.41, 0.75, 0.9]
    encode(root / "vfr.mp4", face[: len(c.vfr_times)], times_s=c.vfr_times)
    encode(root / "noface.mp4", real_frames(media / "pyfeat/no_face.mp4", 4))
    raw = (media / "dlib_ffmpeg/MOT17-13-SDP-raw.h265").read_bytes()
    (root / "raw.h265").write_bytes(raw[:60_000])  # elementary stream: no container, no timestamps
    c.done |= {f"{name}/{n}" for n in ("rotated.mp4", "odd.mp4", "vfr.mp4", "noface.mp4", "raw.h265")}

    justin = Image.open(media / "fer/justin.jpg")
    justin.save(root / "poster.jpg")  # a loose image next to the videos: one more input
    c.done.add(f"{name}/ (images)")
    build_photos(root / "photos", justin)
    c.partial.add(f"{name}/photos/")
    return c


PHOTO_NAMES = ("plain.jpg", "cmyk.jpg", "gray16.png", "alpha.png", "gray.jpg", "exif6.jpg", "wide.jpg")


def build_photos(folder: Path, face: Image.Image) -> Path:
    """An image folder with every awkward format, plus an unreadable file (skipped with a warning)."""
    folder.mkdir()
    rgb = face.convert("RGB")
    rgb.save(folder / "plain.jpg")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    gray16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "gray16.png")  # mode I;16
    rgba = rgb.convert("RGBA")
    alpha = np.full(rgb.size[::-1], 255, np.uint8)
    alpha[:, : rgb.width // 8] = 0  # a transparent strip
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(folder / "alpha.png")
    rgb.convert("L").save(folder / "gray.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": pixels are stored turned the other way
    rgb.rotate(90, expand=True).save(folder / "exif6.jpg", exif=exif)
    wide = Image.new("RGB", (8000, 1200), (90, 90, 90))
    wide.paste(ImageOps.contain(rgb, (1000, 1000)), (3500, 100))
    wide.save(folder / "wide.jpg", quality=80)
    data = (folder / "plain.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(data[: len(data) // 3])  # header fine, pixels cut off
    return folder
