"""Encode annotated frames to H.264 MP4 with the input's timing and original audio.

Why it is built this way:

* Each frame's pts comes from its ``Frame.time_s`` in a fine time base, so VFR
  input and ``--every`` subsampling keep true timestamps and stay in sync with audio.
* Audio packets are copied without re-encoding when MP4 can hold the codec (no
  quality loss, no time); otherwise they are transcoded to AAC. Only the audio of
  the processed range is kept, shifted by the same amount as the video.
* Encoding runs in a writer thread behind a bounded queue, so x264 (which releases
  the GIL) overlaps with detection in the main thread.
* The file is written under a temporary name and renamed when complete, so an
  error or Ctrl-C never leaves a truncated ``.mp4`` that looks like a result.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import cast

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from fervid.concurrency import BoundedStage
from fervid.io.atomic import atomic_path
from fervid.io.errors import library_reason
from fervid.io.video import bounded_queue_size, open_video
from fervid.types import Frame

#: Audio codecs MP4 holds as they are (checked again against the muxer before copying).
MP4_COPYABLE_AUDIO = frozenset({"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"})
#: Time base used when none (or a coarse one) is given: divisible by 24, 25, 30, 50, 60, 100 fps.
FINE_TIME_BASE = Fraction(1, 90000)
_AAC_LAYOUTS = frozenset({"mono", "stereo", "5.1", "5.1(side)", "7.1"})
# BT.709 tags (AVCOL_* values) written on the stream to match the RGB->YUV matrix used.
_BT709 = 1
_LIMITED_RANGE = 1


@functools.cache
def nvenc_available() -> bool:
    """True when an NVIDIA H.264 encoder opens here; tried once per process."""
    try:
        context = av.CodecContext.create("h264_nvenc", "w")
        context.width, context.height = 256, 256
        context.pix_fmt = "yuv420p"
        context.time_base = Fraction(1, 25)
        context.open()
    except Exception:  # no GPU, no driver, no NVENC unit, or FFmpeg built without it
        return False
    return True


def choose_encoder(codec: str) -> str:
    """Resolve "auto" to h264_nvenc when it works, else libx264; other names pass through."""
    if codec == "auto":
        return "h264_nvenc" if nvenc_available() else "libx264"
    return codec


def _encoder_options(encoder: str, crf: int, preset: str) -> dict[str, str]:
    if encoder == "h264_nvenc":
        return {"preset": "p4", "rc": "vbr", "cq": str(crf)}  # nvenc presets are p1..p7
    if encoder == "libx264":
        return {"crf": str(crf), "preset": preset}
    return {}


class _AudioTrack:
    """Moves the input's audio into the output, copying packets or transcoding to AAC.

    Times are shifted so that the origin (an input time on the file's timeline, as every
    ``Frame.time_s``: 0, or ``--start``) becomes 0 in the output, as the video's are.
    Audio that ends before the origin is dropped except one packet of decoder
    pre-roll (MP4 keeps its negative timestamp in an edit list, as ``ffmpeg -c copy``
    does, so AAC priming survives); audio from ``end_s`` on is cut.
    """

    def __init__(self, source: Path, output: OutputContainer, end_s: float | None) -> None:
        self._input: InputContainer
        self._input, _ = open_video(source)
        self.source = source
        self._in: AudioStream = self._input.streams.audio[0]
        # A demuxed stream always has a time base; PyAV types it Optional for streams still being set up.
        assert self._in.time_base is not None
        self._tb: Fraction = self._in.time_base
        self._end_s = end_s
        self.codec = self._in.codec_context.codec.canonical_name
        self.mode = "copy" if self.codec in MP4_COPYABLE_AUDIO else "aac"
        self._out = self._add_output_stream(output)
        self._output = output
        self._origin = 0
        self._end: int | None = None
        self._packets: Iterator[av.Packet[AudioStream]] | None = None
        self._pending: av.Packet[AudioStream] | None = None
        self._preroll: av.Packet[AudioStream] | None = None
        self._writing = False
        self._done = False
        self._samples_in = 0
        self.error: str | None = None
        self.packets_written = 0

    def _add_output_stream(self, output: OutputContainer) -> AudioStream:
        if self.mode == "copy":
            try:
                return output.add_stream_from_template(self._in)
            except ValueError:  # the muxer refuses this codec after all
                self.mode = "aac"
        layout = self._in.layout.name if self._in.layout.name in _AAC_LAYOUTS else "stereo"
        return output.add_stream("aac", rate=self._in.sample_rate or 48000, layout=layout)

    @property
    def started(self) -> bool:
        return self._packets is not None

    def start(self, origin_s: float) -> None:
        """Fix the input time that becomes 0 and position the audio reader just before it."""
        tb = self._tb
        self._origin = round(origin_s / tb)
        if self._end_s is not None:
            self._end = round(self._end_s / tb)
        if origin_s > 0:
            # Land a little early so the pre-roll packet is read too. Unseekable input:
            # reading from the start still works, just slower.
            with contextlib.suppress(av.FFmpegError):
                self._input.seek(self._origin - round(1.0 / tb), stream=self._in, backward=True)
        self._packets = self._input.demux(self._in)

    def _next_packet(self) -> av.Packet[AudioStream] | None:
        """The next non-empty packet with a pts (None at the end or after a read error)."""
        if self._pending is not None:
            packet, self._pending = self._pending, None
            return packet
        while not self._done and self._packets is not None:
            try:
                packet = next(self._packets)
            except StopIteration:
                self._done = True
            except (av.FFmpegError, OSError) as exc:
                self.error = f"{self.source}: audio stopped early ({library_reason(exc)})"
                self._done = True
            else:
                if packet.size and packet.pts is not None:
                    return packet
        return None

    def pump(self, until_s: float | None) -> None:
        """Write audio up to output time ``until_s`` (None: to the end); keeps A/V interleaved."""
        limit = None if until_s is None else self._origin + until_s / self._tb
        while (packet := self._next_packet()) is not None:
            assert packet.pts is not None  # _next_packet returns only packets with a pts
            if self._end is not None and packet.pts >= self._end:
                self._done = True
                return
            if limit is not None and packet.pts > limit:
                self._pending = packet
                return
            if not self._writing and packet.pts + (packet.duration or 0) <= self._origin:
                self._preroll = packet  # entirely before the origin: keep only the latest
                continue
            if not self._writing:
                self._writing = True
                if self._preroll is not None:
                    self._write(self._preroll)
            self._write(packet)

    def _write(self, packet: av.Packet[AudioStream]) -> None:
        assert packet.pts is not None  # only packets from _next_packet come here
        if self.mode == "copy":
            dts = packet.dts if packet.dts is not None else packet.pts
            packet.pts, packet.dts = packet.pts - self._origin, dts - self._origin
            packet.stream = self._out
            self._output.mux(packet)
            self.packets_written += 1
            return
        try:
            frames = packet.decode()
        except av.FFmpegError:
            return  # one damaged audio packet: skip it rather than lose the whole track
        for frame in frames:
            if frame.pts is not None and frame.pts + frame.samples * self._ticks_per_sample() <= self._origin:
                continue  # pre-roll output
            if self._samples_in == 0:
                self._pad_start(frame)
            self._samples_in += frame.samples
            frame.pts = None  # the encoder's FIFO counts samples; it rejects gaps in pts
            self._output.mux(self._out.encode(frame))
            self.packets_written += 1

    def _ticks_per_sample(self) -> float:
        rate = self._in.sample_rate or 48000
        return float(1 / (self._tb * rate))

    def _pad_start(self, frame: av.AudioFrame) -> None:
        """Audio that starts after the video gets leading silence, so it stays in sync."""
        if frame.pts is None:
            return
        delay_s = float((frame.pts - self._origin) * self._tb)
        samples = round(delay_s * frame.sample_rate)
        if samples <= 0:
            return
        silence = av.AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=samples)
        silence.sample_rate = frame.sample_rate
        for plane in silence.planes:
            plane.update(bytes(plane.buffer_size))
        self._samples_in += samples
        self._output.mux(self._out.encode(silence))

    def finish(self) -> None:
        """Write the rest of the audio range and flush the AAC encoder when transcoding."""
        if not self.started:
            return
        self.pump(None)
        if self.mode == "aac":
            self._output.mux(self._out.encode(None))

    def close(self) -> None:
        self._input.close()


class VideoWriter:
    """Context manager that encodes ``(Frame, image)`` pairs to an H.264 MP4.

    Args:
        path: output file; written as ``.name.partial-<pid>.ext`` and renamed when done.
        width, height: size of the images passed to ``write``; odd sizes are padded
            by one pixel (edge-replicated) to even, as yuv420p needs (``padded`` says so).
        fps: nominal frame rate, stored as the stream's rate (players and x264's rate
            control use it; actual timing comes from each frame's pts).
        time_base: unit of the output timestamps; pass the reader's ``time_base`` for an
            exact round trip. Coarser than 1/1000 s (or None) means FINE_TIME_BASE.
        audio_from: input file whose first audio stream is copied (or transcoded to AAC).
        end_s: cut the audio here (input seconds, the reader's ``end_s``); None keeps it all.
        origin_s: the input time (file timeline, as ``Frame.time_s``) that becomes 0 in the
            output, for video and audio alike; None: the first written frame's time. Pass 0
            to keep the input's own timeline (the first frame at 0.85 s stays at 0.85 s).
        codec: "auto" (NVENC if it opens, else libx264), "libx264", "h264_nvenc", ...
        crf, preset: quality (lower crf = better, larger) and x264 speed preset.
        threads: encoder threads, 0 = let the encoder decide.
        queue_size: frames buffered for the writer thread; lowered for large frames so
            the queue stays under ~256 MiB.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float = 25.0,
        time_base: Fraction | None = None,
        audio_from: str | Path | None = None,
        end_s: float | None = None,
        codec: str = "auto",
        crf: int = 23,
        preset: str = "veryfast",
        threads: int = 0,
        queue_size: int = 32,
        origin_s: float | None = None,
    ) -> None:
        _validate(width, height, fps, crf, queue_size)
        self.path = Path(path)
        self.width, self.height = width, height
        self.padded = _needs_padding(self.path, width, height)
        self.time_base = _fine_time_base(time_base)
        self._origin_s: float | None = origin_s  # this input time becomes 0 in the output
        self.encoder = choose_encoder(codec)
        self.frames_written = 0
        self._last_pts = -1
        self._abort = threading.Event()
        size = bounded_queue_size(queue_size, width * height * 3, budget_bytes=96 * 2**20)
        self._closed = False
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        try:
            self._output = _EncodedFile(
                self._tmp, self.path.suffix, width, height, self.time_base, self.encoder, fps, crf, preset, threads,
                audio_from, end_s,
            )  # fmt: skip
        except BaseException:
            self._stack.__exit__(*_exc_info())
            raise
        self.audio = self._output.audio
        self._stage: BoundedStage[tuple[int, np.ndarray], None] = BoundedStage(
            self._encode_item, workers=1, capacity=size, name=f"encode:{self.path.name}"
        )

    @property
    def audio_mode(self) -> str | None:
        """ "copy", "aac" (transcoded) or None (no audio written)."""
        return self.audio.mode if self.audio is not None else None

    # --------------------------------------------------------------- main thread
    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc_type, exc, tb)

    def write(self, frame: Frame, image: np.ndarray) -> None:
        """Queue ``image`` (H, W, 3 uint8 RGB, the writer's size) shown at ``frame.time_s``.

        An error of the encoding thread is raised here (or at ``close``).
        """
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(f"image must be ({self.height}, {self.width}, 3) uint8, got {image.shape} {image.dtype}")
        if self._origin_s is None:
            self._origin_s = frame.time_s
        pts = round((frame.time_s - self._origin_s) / self.time_base)
        pts = max(pts, self._last_pts + 1)  # encoders need strictly increasing pts
        self._last_pts = pts
        self._stage.put((pts, image))

    def close(self) -> None:
        """Finish: drain the queue, flush the encoder, finish audio, close, rename into place."""
        if self._closed:
            return
        self._closed = True
        try:
            try:
                self._stage.finish()
            finally:
                self._stage.close()
            if self.frames_written == 0:
                raise ValueError(f"{self.path}: no frames were written")
            self._output.finish()
        except BaseException:
            self._output.close()
            self._stack.__exit__(*_exc_info())
            raise
        self._output.close()
        self._stack.close()

    def abort(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        """Stop without finishing: the partial file is deleted, nothing appears at ``path``."""
        if self._closed:
            return
        self._closed = True
        self._abort.set()
        self._stage.close()
        self._output.close()
        error = exc or RuntimeError("aborted")
        with contextlib.suppress(BaseException):
            self._stack.__exit__(exc_type or RuntimeError, error, tb)

    # ------------------------------------------------------------- writer thread
    def _encode_item(self, item: tuple[int, np.ndarray]) -> None:
        """Runs in the encoding stage's thread; frames queued after an abort or a failure are dropped."""
        if self._abort.is_set():
            return
        pts, image = item
        try:
            self._output.encode(pts, image)
            self.frames_written += 1
            self._output.audio_until(pts, self._origin_s or 0.0)
        except BaseException:
            self._abort.set()  # the container is in an unknown state: encode nothing more
            raise


class _EncodedFile:
    """The output container: one H.264 stream (yuv420p, BT.709 tags) and, optionally, the input's audio.

    Everything that talks to PyAV's muxer and encoders is here, so that ``VideoWriter`` is
    left with the queue, the timestamps and the temporary file. Once frames flow, only the
    writer thread calls ``encode`` and ``audio_until``; ``finish`` and ``close`` run after it stopped.

    Args:
        tmp: where to write (the writer's temporary name).
        suffix: the final file's extension; MP4-like ones get ``+faststart``.
        width, height: the frames' size; odd sizes are padded by one edge-replicated pixel.
        time_base: unit of the frames' pts.
        encoder, fps, crf, preset, threads, audio_from, end_s: as in ``VideoWriter``.
    """

    def __init__(
        self,
        tmp: Path,
        suffix: str,
        width: int,
        height: int,
        time_base: Fraction,
        encoder: str,
        fps: float,
        crf: int,
        preset: str,
        threads: int,
        audio_from: str | Path | None,
        end_s: float | None,
    ) -> None:
        self._pad = ((0, height % 2), (0, width % 2), (0, 0))
        self._padded = bool(width % 2 or height % 2)
        self._time_base = time_base
        # One RGB->YUV converter for all frames: a fresh SwsContext per frame is ~8x slower.
        self._reformatter = VideoReformatter()
        self.audio: _AudioTrack | None = None
        options: dict[str, str] = {"movflags": "+faststart"} if suffix.lower() in (".mp4", ".mov", ".m4v") else {}
        self._container: OutputContainer = av.open(str(tmp), "w", options=options)
        try:
            # ``encoder`` is a video encoder's name (choose_encoder); PyAV types a name not in its list as any stream.
            self._video = cast(
                VideoStream, self._container.add_stream(encoder, rate=Fraction(fps).limit_denominator(100000))
            )
            self._video.width = width + width % 2
            self._video.height = height + height % 2
            self._video.pix_fmt = "yuv420p"
            self._video.time_base = time_base
            context = self._video.codec_context
            context.time_base = time_base
            context.thread_count = threads
            context.colorspace = context.color_primaries = context.color_trc = _BT709
            context.color_range = _LIMITED_RANGE
            # PyAV's stub types options as dict[str, object] (invariant), though it wants str values.
            self._video.options = _encoder_options(encoder, crf, preset)  # type: ignore[assignment]  # PyAV stub: dict[str, object]
            if audio_from is not None:
                self.audio = _open_audio(Path(audio_from), self._container, end_s)
        except BaseException:
            self._container.close()
            raise

    def encode(self, pts: int, image: np.ndarray) -> None:
        """Convert one RGB image to yuv420p and encode it at ``pts``."""
        if self._padded:
            image = np.pad(image, self._pad, mode="edge")
        rgb = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame = self._reformatter.reformat(
            rgb,
            format="yuv420p",
            dst_colorspace="itu709",  # type: ignore[arg-type]  # PyAV takes the name too; its stub says int only
            dst_color_range="MPEG",
        )
        frame.pts = pts
        frame.time_base = self._time_base
        self._container.mux(self._video.encode(frame))

    def audio_until(self, pts: int, origin_s: float) -> None:
        """Write the audio up to video ``pts``, so audio and video stay interleaved in the file.

        The first call starts the audio at ``origin_s``, the input time of the first frame.
        """
        if self.audio is not None:
            if not self.audio.started:
                self.audio.start(origin_s)
            self.audio.pump(float(pts * self._time_base))

    def finish(self) -> None:
        """Flush the video encoder and write the rest of the audio."""
        self._container.mux(self._video.encode(None))
        if self.audio is not None:
            self.audio.finish()

    def close(self) -> None:
        """Release the audio input and the output file (errors closing a failed file are ignored)."""
        if self.audio is not None:
            self.audio.close()
        with contextlib.suppress(av.FFmpegError, OSError):
            self._container.close()


def _open_audio(source: Path, output: OutputContainer, end_s: float | None) -> _AudioTrack | None:
    """The audio track of ``source``, or None when it has none."""
    container, _ = open_video(source)
    has_audio = bool(container.streams.audio)
    container.close()
    return _AudioTrack(source, output, end_s) if has_audio else None


def _needs_padding(path: Path, width: int, height: int) -> bool:
    """True for an odd width or height, which yuv420p cannot hold; warns (at the caller of ``VideoWriter``)."""
    if not (width % 2 or height % 2):
        return False
    warnings.warn(
        f"{path.name}: {width}x{height} is odd; padding to {width + width % 2}x{height + height % 2} for yuv420p",
        stacklevel=3,
    )
    return True


def _fine_time_base(time_base: Fraction | None) -> Fraction:
    if time_base is None:
        return FINE_TIME_BASE
    time_base = Fraction(time_base)
    return time_base if 0 < time_base <= Fraction(1, 1000) else FINE_TIME_BASE


def _validate(width: int, height: int, fps: float, crf: int, queue_size: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be >= 1, got {width}x{height}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in 0..51, got {crf}")
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, got {queue_size}")


def _exc_info() -> tuple[type[BaseException] | None, BaseException | None, TracebackType | None]:
    return sys.exc_info()
