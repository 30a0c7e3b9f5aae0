"""Decode a video file into ``Frame``s in a background thread.

Correctness rules this reader keeps, because the CSV timelines depend on them:

* ``Frame.time_s`` comes from each frame's presentation timestamp relative to the
  video stream's start, so variable-frame-rate phone video is timed right.
  Streams without timestamps (raw ``.h264``/``.h265``) fall back to index / fps.
* ``Frame.index`` counts decoded frames over the whole stream, also after seeking
  to ``start_s`` (the frames before the seek point are counted from packets).
* Rotation metadata (the display matrix phones write) is applied, so faces are upright.
* Damaged files yield what can be decoded and set ``decode_error`` instead of raising;
  a file that cannot be opened at all raises ``InputError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.codec.context import CodecContext
from av.container import InputContainer
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from fervid.io._threads import Prefetcher, bounded_queue_size
from fervid.io.errors import InputError, check_file, library_reason
from fervid.types import Frame

#: Frame rate assumed for streams that declare none (FFmpeg's own default for raw streams).
DEFAULT_FPS = 25.0
_THREAD_TYPES = ("AUTO", "FRAME", "SLICE", "NONE")
#: Give up on a file after this many packets in a row fail to decode.
_MAX_FAILED_PACKETS = 100
#: Slack for comparing float times with start_s/end_s (well below any frame interval).
_EPS = 1e-6


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
        while failures < _MAX_FAILED_PACKETS:
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
    ) -> None:
        _validate_args(start_s, end_s, every, threads, queue_size)
        self.path = Path(path)
        self.start_s = start_s
        self.end_s = end_s
        self.every = every
        self._threads = threads
        self._queue_size = queue_size
        self._container, self._stream = open_video(self.path)
        try:
            first = _peek_first_frame(self.path, self._stream.index)
        except BaseException:
            self._container.close()
            raise
        self.rotation = 90 * _rotation_steps(first.rotation)
        self._coded_size = (first.width, first.height)
        self._read_metadata()
        self._configure_threads(self._stream)
        self.decode_error: str | None = None
        self._failed_packets = 0
        self._corrupt_frames = 0
        self._first_error = ""
        self._packets_read = 0
        self._seeked = False
        self._last_time: float | None = None
        self._prefetcher: Prefetcher[Frame] | None = None
        self._closed = False
        # One converter for the whole stream: a fresh SwsContext per frame costs ~4 ms at 640x360.
        self._reformatter = VideoReformatter()

    # ----------------------------------------------------------------- metadata
    def _read_metadata(self) -> None:
        """Snapshot stream facts now, so properties never touch the container the thread decodes."""
        stream, container = self._stream, self._container
        self._origin = stream.start_time or 0
        self.fps = next(
            (float(r) for r in (stream.average_rate, stream.guessed_rate, stream.base_rate) if r and r > 0),
            DEFAULT_FPS,
        )
        self.time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        if stream.duration and stream.time_base:
            self.duration_s: float | None = float(stream.duration * stream.time_base)
        elif container.duration:
            self.duration_s = container.duration / av.time_base
        else:
            self.duration_s = None
        self._header_frames = max(0, int(stream.frames or 0))
        if self._header_frames:
            self.frame_count: int | None = self._header_frames
        else:
            self.frame_count = round(self.duration_s * self.fps) if self.duration_s else None
        audio = container.streams.audio
        self.has_audio = bool(audio)
        self.audio_codec = audio[0].codec_context.codec.canonical_name if audio else None
        self.video_codec = stream.codec_context.codec.canonical_name

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
    def expected_frames(self) -> int | None:
        """Estimate of how many frames this reader will yield (start/end/every applied), for progress."""
        total = self.frame_count
        if total is None:
            return None
        first = math.ceil((self.start_s or 0.0) * self.fps)
        last = total if self.end_s is None else min(total, math.floor(self.end_s * self.fps) + 1)
        return max(0, math.ceil((last - first) / self.every))

    # ---------------------------------------------------------------- iteration
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise RuntimeError(f"{self.path}: reader is closed")
        if self._prefetcher is None:
            size = bounded_queue_size(self._queue_size, self.width * self.height * 3)
            self._prefetcher = Prefetcher(self._produce, size, name=f"decode:{self.path.name}")
        return self._prefetcher

    def close(self) -> None:
        """Stop and join the decode thread, then release the file; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._prefetcher is not None:
            self._prefetcher.close()
        else:
            self._container.close()  # the thread owns the container once it started

    # --------------------------------------------------------- decode thread
    def _configure_threads(self, stream: VideoStream) -> None:
        if isinstance(self._threads, int):
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self._threads
        else:
            stream.thread_type = self._threads.upper()

    def _produce(self, emit: Callable[[Frame], bool]) -> None:
        """Decode thread body: filter by time and ``every``, convert, hand frames to the consumer."""
        try:
            self._emit_frames(emit)
        finally:
            self._container.close()

    def _emit_frames(self, emit: Callable[[Frame], bool]) -> None:
        start = self.start_s or 0.0
        first_kept: int | None = None
        for index, vframe in self._indexed_frames(start):
            time_s = self._time_of(vframe, index)
            self._last_time = time_s
            if time_s < start - _EPS:
                continue
            if self.end_s is not None and time_s > self.end_s + _EPS:
                return
            if vframe.is_corrupt:
                self._note_corrupt(time_s)
            if first_kept is None:
                first_kept = index
            if (index - first_kept) % self.every:
                continue
            if not emit(Frame(index=index, time_s=time_s, image=self._to_rgb(vframe))):
                return
        self._check_complete()

    def _indexed_frames(self, start_s: float) -> Iterator[tuple[int, av.VideoFrame]]:
        """Frames with their stream-wide index; seeks near ``start_s`` when the file allows it."""
        if start_s > 0 and self._seek(start_s):
            frames = self._decoded_frames()
            first = next(frames, None)
            if first is None:
                return
            if first.pts is not None and self._time_of(first, 0) <= start_s + _EPS:
                index = _frames_before(self.path, self._stream.index, first.pts)
                yield index, first
                for offset, frame in enumerate(frames, start=1):
                    yield index + offset, frame
                return
            frames.close()  # the seek landed after the target: decode from the beginning instead
            self._reopen()
        for index, frame in enumerate(self._decoded_frames()):
            yield index, frame

    def _seek(self, start_s: float) -> bool:
        """Seek to the keyframe at or before ``start_s``; False when the stream has no timestamps."""
        stream = self._stream
        if stream.start_time is None or not stream.time_base:
            return False
        target = stream.start_time + int(start_s / stream.time_base)
        try:
            self._container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError:
            self._reopen()
            return False
        self._seeked = True
        return True

    def _reopen(self) -> None:
        """Start over from a fresh open: the most reliable rewind for every format."""
        self._container.close()
        self._container, self._stream = open_video(self.path)
        self._configure_threads(self._stream)
        self._seeked = False
        self._packets_read = 0

    def _decoded_frames(self) -> Iterator[av.VideoFrame]:
        """Demux and decode, skipping packets that fail; records where damage was found.

        After a failure, the next keyframe starts a fresh decoder (the old one is
        drained first): FFmpeg's decoder can stay in its error state and refuse every
        later packet, keyframes included, which would lose the rest of a file damaged
        in one place. Until that keyframe the old decoder goes on, since it usually
        recovers and conceals the damage, which a fresh one without references cannot.
        """
        packets = self._container.demux(self._stream)
        decoder = self._stream.codec_context
        failed_in_a_row = 0
        damaged = False
        while failed_in_a_row < _MAX_FAILED_PACKETS:
            try:
                packet = next(packets)
            except StopIteration:
                break  # demux ends with an empty packet that already flushed the decoder
            except (av.FFmpegError, OSError) as exc:
                self._note_error("reading failed", exc, None)
                yield from self._flush_decoder(decoder)
                return
            if packet.size:
                self._packets_read += 1
            if damaged and packet.is_keyframe:
                yield from self._flush_decoder(decoder)
                decoder, damaged = _fresh_decoder(decoder), False
            try:
                frames = decoder.decode(packet)
            except av.FFmpegError as exc:
                self._note_error("decoding failed", exc, packet)
                failed_in_a_row += 1
                damaged = True
                continue
            failed_in_a_row = 0
            yield from frames
        else:
            yield from self._flush_decoder(decoder)

    def _flush_decoder(self, decoder: CodecContext) -> Iterator[av.VideoFrame]:
        """Frames still inside the decoder when reading stopped early."""
        try:
            yield from decoder.decode(None)
        except av.FFmpegError:
            return

    def _note_error(self, what: str, exc: BaseException, packet: av.Packet | None) -> None:
        """Keep the first failure's place and reason; count the rest."""
        self._failed_packets += 1
        where = self._last_time
        if packet is not None and packet.pts is not None and packet.time_base:
            where = float((packet.pts - self._origin) * packet.time_base)
        at = f"at {where:.3f} s" if where is not None else "at the start"
        if self.decode_error is None:
            self._first_error = f"{what} {at} ({library_reason(exc)})"
        self._describe_damage()

    def _note_corrupt(self, time_s: float) -> None:
        """A frame the decoder flagged corrupt (it concealed damaged data): kept, but the file is marked.

        H.264/HEVC decoders paper over flipped or missing bytes without raising, so
        this flag is the only sign of a corrupt stretch inside an otherwise readable file.
        """
        self._corrupt_frames += 1
        if self.decode_error is None:
            self._first_error = f"corrupt data at {time_s:.3f} s (the decoder concealed it)"
        self._describe_damage()

    def _describe_damage(self) -> None:
        """``decode_error``: the first problem, then how much damage there was in all (one line)."""
        failed, corrupt = self._failed_packets, self._corrupt_frames
        counts = [
            f"{n} {what}{'s' if n > 1 else ''}"
            for n, what in ((failed, "failed packet"), (corrupt, "corrupt frame"))
            if n
        ]
        self.decode_error = self._first_error + (f"; {', '.join(counts)}" if failed + corrupt > 1 else "")

    def _check_complete(self) -> None:
        """Flag a file that ended before its header said it would (truncated download/copy)."""
        expected = self._header_frames
        if self.decode_error is not None or expected <= 0:
            return
        if not self._seeked and self._packets_read < expected:
            self.decode_error = f"file ended after {self._packets_read} of {expected} frames (truncated?)"
            return
        duration = self.duration_s
        last = self._last_time
        if self._seeked and duration and last is not None and last < duration - max(1.0, 3.0 / self.fps):
            self.decode_error = f"file ended at {last:.3f} s of {duration:.3f} s (truncated?)"

    def _time_of(self, frame: av.VideoFrame, index: int) -> float:
        """Presentation time relative to the stream start; index / fps when there is no timestamp."""
        if frame.pts is None or not frame.time_base:
            return index / self.fps
        return float((frame.pts - self._origin) * frame.time_base)

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """RGB24 array at the first frame's size (mid-stream size changes are rescaled), upright."""
        width, height = self._coded_size
        rgb = self._reformatter.reformat(frame, width=width, height=height, format="rgb24")
        image = rgb.to_ndarray()
        steps = self.rotation // 90
        if steps:
            image = np.rot90(image, steps)
        return np.ascontiguousarray(image)


def _fresh_decoder(old: CodecContext) -> CodecContext:
    """A new decoder like ``old`` (codec, extradata, threading); else ``old``, reset after its drain."""
    try:
        new = av.CodecContext.create(old.codec.name, "r")
        if old.extradata:
            new.extradata = old.extradata
        new.thread_type = old.thread_type
        new.thread_count = old.thread_count
    except (av.FFmpegError, ValueError, TypeError, RuntimeError):
        old.flush_buffers()  # a drained decoder takes no packets until reset
        return old
    return new


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
