"""Decode a video file into ``Frame``s in a background thread.

Correctness rules this reader keeps, because the CSV timelines depend on them:

* ``Frame.time_s`` is each frame's presentation time on the file's own timeline
  (``pts * time_base``, what ffprobe prints as ``pts_time``, and what players and ELAN
  show), so variable-frame-rate phone video is timed right and a video stream that starts
  after the audio (0.85 s in short_hamilton_clip.mp4) is not shifted to 0. Streams without
  timestamps (raw ``.h264``/``.h265``) fall back to index / fps.
* ``Frame.index`` counts decoded frames over the whole stream, also after seeking
  to ``start_s`` (the frames before the seek point are counted from packets).
* Rotation metadata (the display matrix phones write) is applied, so faces are upright.
* Damaged files yield what can be decoded and set ``decode_error`` instead of raising
  (``fervid.io.tolerant_decode``); a file that cannot be opened at all raises ``InputError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
from av.container import InputContainer
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from fervid.concurrency import background
from fervid.io.errors import InputError, check_file, library_reason
from fervid.io.tolerant_decode import MAX_FAILED_PACKETS, DamageLog, TolerantDecoder
from fervid.types import Frame

if TYPE_CHECKING:
    from fervid.io.media_info import MediaInfo

#: Frame rate assumed for streams that declare none (FFmpeg's own default for raw streams).
DEFAULT_FPS = 25.0
_THREAD_TYPES = ("AUTO", "FRAME", "SLICE", "NONE")
#: Slack for comparing float times with start_s/end_s (well below any frame interval).
_EPS = 1e-6


def bounded_queue_size(requested: int, item_bytes: int, budget_bytes: int = 128 * 2**20) -> int:
    """Shrink a queue length so queued frames stay within a memory budget (64 4K frames are 1.6 GB).

    128 MiB holds 64 frames up to 720p and 21 at 1080p: decoding runs far ahead of the
    models, so a deeper queue only absorbs jitter, while at 1080p the earlier 512 MiB budget
    made a short clip's run peak at 1.8 GB.
    """
    return max(1, min(requested, budget_bytes // max(1, item_bytes)))


def count_in_range(
    frame_count: int | None, fps: float, start_s: float | None, end_s: float | None, every: int
) -> int | None:
    """How many of ``frame_count`` frames at ``fps`` lie in [start, end] taking every Nth (None: unknown)."""
    if frame_count is None:
        return None
    first = math.ceil((start_s or 0.0) * fps)
    last = frame_count if end_s is None else min(frame_count, math.floor(end_s * fps) + 1)
    return max(0, math.ceil((last - first) / every))


def open_video(path: Path) -> tuple[InputContainer, VideoStream]:
    """Open ``path`` with PyAV and pick its video stream, or raise InputError saying why not."""
    check_file(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable video file ({library_reason(exc)})") from None
    stream = _pick_video_stream(container)
    if stream is None:
        what = "audio only" if container.streams.audio else "no streams PyAV can decode"
        if container.streams.video:
            what = "only a cover picture"
        container.close()
        raise InputError(path, f"no video stream ({what})")
    return container, stream


def _pick_video_stream(container: InputContainer) -> VideoStream | None:
    """First real video stream; album-art pictures in audio files do not count."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _rotation_steps(degrees: float | int | None) -> int:
    """Counter-clockwise quarter turns for a display-matrix angle (PyAV reports CCW degrees)."""
    if not degrees or not math.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) % 4


def _peek_first_frame(path: Path, stream_index: int) -> av.VideoFrame:
    """Decode the first frame in a separate, single-threaded open (fast) to learn size and rotation."""
    failures = 0
    reason = "the stream has no frames"
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams[stream_index]
        packets = container.demux(stream)
        while failures < MAX_FAILED_PACKETS:
            try:
                packet = next(packets)
                for frame in packet.decode():
                    return frame
            except StopIteration:
                break
            except av.FFmpegError as exc:
                failures += 1
                reason = library_reason(exc)
    raise InputError(path, f"no video frame could be decoded ({reason})")


def _frames_before(path: Path, stream_index: int, pts: int) -> int:
    """Number of frames presented before ``pts``, counted from packets (no decoding).

    Used after a seek to give the first decoded frame its index in the whole stream.
    Packets are in decode order with non-decreasing dts and dts <= pts, so once a
    packet's dts reaches ``pts`` no later packet can be presented before it.
    Packets an edit list marks as discarded are never shown, so they do not count.
    """
    count = 0
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams[stream_index]
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            decode_ts = packet.dts if packet.dts is not None else packet.pts
            if decode_ts is not None and decode_ts >= pts:
                break
            if packet.pts is not None and packet.pts < pts and not packet.is_discard:
                count += 1
    return count


def _orientation(path: Path, stream_index: int, info: MediaInfo | None) -> tuple[int, tuple[int, int]]:
    """Rotation (CCW degrees) and coded (width, height) of the frames, from ``info`` or else the first frame."""
    if info is not None and info.kind == "video" and info.width and info.height:
        # probed already: no need to decode the first frame again
        turned = info.rotation in (90, 270)
        return info.rotation, ((info.height, info.width) if turned else (info.width, info.height))
    first = _peek_first_frame(path, stream_index)
    return 90 * _rotation_steps(first.rotation), (first.width, first.height)


@dataclass(frozen=True)
class _StreamFacts:
    """What a video stream's headers say, as ``VideoReader`` reports it.

    Read once, before decoding starts, so the reader's attributes never touch the
    container its decode thread is using.
    """

    start_s: float  # the stream's first presentation time on the file's timeline
    fps: float
    time_base: Fraction
    duration_s: float | None
    header_frames: int  # frame count the header declares (0: none)
    frame_count: int | None  # header_frames, else estimated from the duration
    has_audio: bool
    audio_codec: str | None
    video_codec: str

    @classmethod
    def read(cls, container: InputContainer, stream: VideoStream) -> _StreamFacts:
        fps = next(
            (float(r) for r in (stream.average_rate, stream.guessed_rate, stream.base_rate) if r and r > 0),
            DEFAULT_FPS,
        )
        duration_s: float | None
        if stream.duration and stream.time_base:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base
        else:
            duration_s = None
        header_frames = max(0, int(stream.frames or 0))
        if header_frames:
            frame_count: int | None = header_frames
        else:
            frame_count = round(duration_s * fps) if duration_s else None
        audio = container.streams.audio
        return cls(
            start_s=float((stream.start_time or 0) * stream.time_base) if stream.time_base else 0.0,
            fps=fps,
            time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000),
            duration_s=duration_s,
            header_frames=header_frames,
            frame_count=frame_count,
            has_audio=bool(audio),
            audio_codec=audio[0].codec_context.codec.canonical_name if audio else None,
            video_codec=stream.codec_context.codec.canonical_name,
        )


class VideoReader:
    """Iterate the frames of one video file as ``Frame``s (uint8 RGB), decoded ahead in a thread.

    Args:
        path: any file FFmpeg can demux (mp4, mov, mkv, webm, gif, raw h264/h265, ...).
        start_s: first time to keep, seconds from the stream start; seeks there.
        end_s: last time to keep (inclusive).
        every: keep every Nth decoded frame, counted from the first kept one;
            timestamps and indices stay those of the original stream.
        threads: FFmpeg decoder thread type ("AUTO", "FRAME", "SLICE", "NONE") or a
            thread count (used with "AUTO").
        queue_size: decoded frames buffered ahead of the consumer; lowered for large
            frames so the queue stays under ~128 MiB.
        info: the file's :func:`~fervid.io.probe.probe` result, when known: saves decoding
            the first frame again to learn its size and rotation.

    Use as a context manager (or call ``close()``) so the decode thread is joined
    even when the loop stops early. One pass only. After iteration ``decode_error``
    says where a damaged file stopped decoding (None when the file was fine).
    """

    def __init__(
        self,
        path: str | Path,
        start_s: float | None = None,
        end_s: float | None = None,
        every: int = 1,
        threads: str | int = "AUTO",
        queue_size: int = 64,
        info: MediaInfo | None = None,
    ) -> None:
        _validate_args(start_s, end_s, every, threads, queue_size)
        self.path = Path(path)
        self.start_s = start_s
        self.end_s = end_s
        self.every = every
        self._queue_size = queue_size
        self._source = _SeekingDecoder(self.path, threads)
        try:
            self.rotation, self._coded_size = _orientation(self.path, self._source.stream.index, info)
        except BaseException:
            self._source.close()
            raise
        facts = _StreamFacts.read(self._source.container, self._source.stream)  # copied to plain attributes
        self.fps, self.time_base, self.duration_s = facts.fps, facts.time_base, facts.duration_s
        self.frame_count, self._header_frames = facts.frame_count, facts.header_frames
        self.stream_start_s = facts.start_s  # the first frame's time on the file's timeline (header)
        self.has_audio, self.audio_codec, self.video_codec = facts.has_audio, facts.audio_codec, facts.video_codec
        self._frames: Generator[Frame, None, None] | None = None
        self._closed = False
        # One converter for the whole stream: a fresh SwsContext per frame costs ~4 ms at 640x360.
        self._reformatter = VideoReformatter()

    # ----------------------------------------------------------------- metadata
    @property
    def width(self) -> int:
        """Width of the frames this reader yields (after rotation)."""
        w, h = self._coded_size
        return h if self.rotation in (90, 270) else w

    @property
    def height(self) -> int:
        """Height of the frames this reader yields (after rotation)."""
        w, h = self._coded_size
        return w if self.rotation in (90, 270) else h

    @property
    def decode_error(self) -> str | None:
        """Where a damaged file stopped decoding or was corrupt, in one line; None when the file was fine."""
        return self._source.damage.message

    @property
    def expected_frames(self) -> int | None:
        """Estimate of how many frames this reader will yield (start/end/every applied), for progress."""
        return count_in_range(self.frame_count, self.fps, self.start_s, self.end_s, self.every)

    # ---------------------------------------------------------------- iteration
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise RuntimeError(f"{self.path}: reader is closed")
        if self._frames is None:
            size = bounded_queue_size(self._queue_size, self.width * self.height * 3)
            self._frames = background(self._produce(), size, name=f"decode:{self.path.name}")
        return self._frames

    def close(self) -> None:
        """Stop and join the decode thread, then release the file; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._frames is not None:
            self._frames.close()  # a generator: joins the thread, closes the file
        else:
            self._source.close()  # the thread owns the container once it started

    # --------------------------------------------------------- decode thread
    def _produce(self) -> Iterator[Frame]:
        """What the decode thread runs: filter by time and ``every``, convert; the file is closed at the end."""
        try:
            yield from self._kept_frames()
        finally:
            self._source.close()

    def _kept_frames(self) -> Iterator[Frame]:
        start = self.start_s or 0.0
        first_kept: int | None = None
        damage = self._source.damage
        for index, vframe in self._source.indexed_frames(start, self._time_of):
            time_s = self._time_of(vframe, index)
            damage.last_time = time_s
            if time_s < start - _EPS:
                continue
            if self.end_s is not None and time_s > self.end_s + _EPS:
                return
            if vframe.is_corrupt:
                damage.note_corrupt(time_s)
            if first_kept is None:
                first_kept = index
            if (index - first_kept) % self.every:
                continue
            yield Frame(index=index, time_s=time_s, image=self._to_rgb(vframe))
        end_s = self.stream_start_s + self.duration_s if self.duration_s else None
        self._source.check_complete(self._header_frames, end_s, self.fps)

    def _time_of(self, frame: av.VideoFrame, index: int) -> float:
        """Presentation time on the file's timeline; index / fps when there is no timestamp."""
        if frame.pts is None or not frame.time_base:
            return index / self.fps
        return float(frame.pts * frame.time_base)

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """RGB24 array at the first frame's size (mid-stream size changes are rescaled), upright."""
        width, height = self._coded_size
        rgb = self._reformatter.reformat(frame, width=width, height=height, format="rgb24")
        image = rgb.to_ndarray()
        steps = self.rotation // 90
        if steps:
            image = np.rot90(image, steps)
        return np.ascontiguousarray(image)


class _SeekingDecoder:
    """The reader's open file: decodes it from a start time, giving frames their stream-wide index.

    Seeking is the fast way to a start time; when a file cannot seek, or the seek lands
    after the target, the file is opened again and decoded from the beginning, the most
    reliable rewind for every format. Damage found on the way goes to ``damage``. Once
    the reader's iteration starts, only its decode thread uses this.

    Args:
        path: the video file.
        threads: FFmpeg decoder thread type or count, as ``VideoReader`` takes it.
    """

    def __init__(self, path: Path, threads: str | int) -> None:
        self.path = path
        self._threads = threads
        self.container, self.stream = open_video(path)
        self._configure_threads()
        self.damage = DamageLog()
        self._decoder = TolerantDecoder(self.container, self.stream, self.damage)
        self._seeked = False

    def indexed_frames(
        self, start_s: float, time_of: Callable[[av.VideoFrame, int], float]
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """Frames with their stream-wide index; seeks near ``start_s`` when the file allows it.

        ``time_of(frame, index)`` is the reader's presentation time of a frame.
        """
        if start_s > 0 and self._seek(start_s):
            frames = self._decoder.frames()
            first = next(frames, None)
            if first is None:
                return
            if first.pts is not None and time_of(first, 0) <= start_s + _EPS:
                index = _frames_before(self.path, self.stream.index, first.pts)
                yield index, first
                for offset, frame in enumerate(frames, start=1):
                    yield index + offset, frame
                return
            frames.close()  # the seek landed after the target: decode from the beginning instead
            self._reopen()
        for index, frame in enumerate(self._decoder.frames()):
            yield index, frame

    def check_complete(self, header_frames: int, end_s: float | None, fps: float) -> None:
        """After the last frame: note in ``damage`` when the file ended early (see ``DamageLog.check_complete``)."""
        self.damage.check_complete(header_frames, self._decoder.packets_read, self._seeked, end_s, fps)

    def close(self) -> None:
        self.container.close()

    def _seek(self, start_s: float) -> bool:
        """Seek to the keyframe at or before ``start_s``; False when the stream has no timestamps."""
        stream = self.stream
        if stream.start_time is None or not stream.time_base:
            return False
        target = int(start_s / stream.time_base)
        try:
            self.container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError:
            self._reopen()
            return False
        self._seeked = True
        return True

    def _reopen(self) -> None:
        """Start over from a fresh open: the most reliable rewind for every format."""
        self.container.close()
        self.container, self.stream = open_video(self.path)
        self._configure_threads()
        self._seeked = False
        self._decoder = TolerantDecoder(self.container, self.stream, self.damage)  # packets_read from 0

    def _configure_threads(self) -> None:
        if isinstance(self._threads, int):
            self.stream.thread_type = "AUTO"
            self.stream.codec_context.thread_count = self._threads
        else:
            self.stream.thread_type = self._threads.upper()


def _validate_args(start_s: float | None, end_s: float | None, every: int, threads: str | int, queue_size: int) -> None:
    """Reject bad arguments early with the allowed range in the message."""
    if start_s is not None and not (start_s >= 0 and math.isfinite(start_s)):
        raise ValueError(f"start_s must be a finite number >= 0, got {start_s}")
    if end_s is not None and not (end_s >= 0 and math.isfinite(end_s)):
        raise ValueError(f"end_s must be a finite number >= 0, got {end_s}")
    if start_s is not None and end_s is not None and end_s < start_s:
        raise ValueError(f"end_s ({end_s}) must be >= start_s ({start_s})")
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an integer >= 1, got {every!r}")
    if isinstance(threads, str):
        if threads.upper() not in _THREAD_TYPES:
            raise ValueError(f"threads must be one of {_THREAD_TYPES} or a thread count, got {threads!r}")
    elif not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be a thread type or a count >= 0, got {threads!r}")
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, got {queue_size}")
