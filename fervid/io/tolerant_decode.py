"""Decoding that survives damaged video: skip what fails, go on, and say where in one line.

``VideoReader`` yields what can be decoded from a damaged file instead of raising. This
module is that part: ``TolerantDecoder`` decides how to go on after a failure, and
``DamageLog`` keeps the record that becomes the reader's ``decode_error``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import cast

import av
from av.container import InputContainer
from av.video.codeccontext import VideoCodecContext
from av.video.stream import VideoStream

from fervid.io.errors import library_reason

#: Give up on a file after this many packets in a row fail to decode.
MAX_FAILED_PACKETS = 100


class DamageLog:
    """Where decoding one file went wrong, summed up in one line: ``message`` (None while it is fine).

    The message names the first problem with its time and reason, then how much damage
    there was in all, so a batch report has one readable line per file. ``last_time`` is
    kept up to date by the reader (the time of the newest decoded frame): it places a
    failure whose packet has no timestamp, and tells how far a truncated file got.

    Times are on the file's timeline (``pts * time_base``), as the reader's frame times.
    """

    def __init__(self) -> None:
        self.message: str | None = None
        self.last_time: float | None = None
        self._failed_packets = 0
        self._corrupt_frames = 0
        self._first_error = ""

    def note_error(self, what: str, exc: BaseException, packet: av.Packet | None) -> None:
        """Keep the first failure's place and reason; count the rest."""
        self._failed_packets += 1
        where = self.last_time
        if packet is not None and packet.pts is not None and packet.time_base:
            where = float(packet.pts * packet.time_base)
        at = f"at {where:.3f} s" if where is not None else "at the start"
        if self.message is None:
            self._first_error = f"{what} {at} ({library_reason(exc)})"
        self._describe()

    def note_corrupt(self, time_s: float) -> None:
        """A frame the decoder flagged corrupt (it concealed damaged data): kept, but the file is marked.

        H.264/HEVC decoders paper over flipped or missing bytes without raising, so
        this flag is the only sign of a corrupt stretch inside an otherwise readable file.
        """
        self._corrupt_frames += 1
        if self.message is None:
            self._first_error = f"corrupt data at {time_s:.3f} s (the decoder concealed it)"
        self._describe()

    def check_complete(
        self, header_frames: int, packets_read: int, seeked: bool, end_s: float | None, fps: float
    ) -> None:
        """Flag a file that ended before its header said it would (truncated download/copy).

        Without a seek, every packet was read, so fewer than the header's frame count means
        the file is short. After a seek the packets before it were not read; then the last
        frame's time is compared with the stream's end (start + duration) instead, with a few
        frames' slack.
        """
        if self.message is not None or header_frames <= 0:
            return
        if not seeked and packets_read < header_frames:
            self.message = f"file ended after {packets_read} of {header_frames} frames (truncated?)"
            return
        last = self.last_time
        if seeked and end_s and last is not None and last < end_s - max(1.0, 3.0 / fps):
            self.message = f"file ended at {last:.3f} s of {end_s:.3f} s (truncated?)"

    def _describe(self) -> None:
        """``message``: the first problem, then how much damage there was in all (one line)."""
        failed, corrupt = self._failed_packets, self._corrupt_frames
        counts = [
            f"{n} {what}{'s' if n > 1 else ''}"
            for n, what in ((failed, "failed packet"), (corrupt, "corrupt frame"))
            if n
        ]
        self.message = self._first_error + (f"; {', '.join(counts)}" if failed + corrupt > 1 else "")


class TolerantDecoder:
    """Decodes one opened video stream past damage, noting each failure in a ``DamageLog``.

    One per opened container: ``packets_read`` counts the non-empty packets demuxed from
    it, which is how ``DamageLog.check_complete`` tells a truncated file from a whole one.
    """

    def __init__(self, container: InputContainer, stream: VideoStream, damage: DamageLog) -> None:
        self._container = container
        self._stream = stream
        self._damage = damage
        self.packets_read = 0

    def frames(self) -> Generator[av.VideoFrame, None, None]:
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
        while failed_in_a_row < MAX_FAILED_PACKETS:
            try:
                packet = next(packets)
            except StopIteration:
                break  # demux ends with an empty packet that already flushed the decoder
            except (av.FFmpegError, OSError) as exc:
                self._damage.note_error("reading failed", exc, None)
                yield from flush_decoder(decoder)
                return
            if packet.size:
                self.packets_read += 1
            if damaged and packet.is_keyframe:
                yield from flush_decoder(decoder)
                decoder, damaged = fresh_decoder(decoder), False
            try:
                frames = decoder.decode(packet)
            except av.FFmpegError as exc:
                self._damage.note_error("decoding failed", exc, packet)
                failed_in_a_row += 1
                damaged = True
                continue
            failed_in_a_row = 0
            yield from frames
        else:
            yield from flush_decoder(decoder)


def flush_decoder(decoder: VideoCodecContext) -> Iterator[av.VideoFrame]:
    """Frames still inside the decoder when reading stopped early."""
    try:
        yield from decoder.decode(None)
    except av.FFmpegError:
        return


def fresh_decoder(old: VideoCodecContext) -> VideoCodecContext:
    """A new decoder like ``old`` (codec, extradata, threading); else ``old``, reset after its drain."""
    try:
        # A decoder for a video codec is a video one; PyAV types a name not in its list as any context.
        new = cast(VideoCodecContext, av.CodecContext.create(old.codec.name, "r"))
        if old.extradata:
            new.extradata = old.extradata
        new.thread_type = old.thread_type
        new.thread_count = old.thread_count
    except (av.FFmpegError, ValueError, TypeError, RuntimeError):
        old.flush_buffers()  # a drained decoder takes no packets until reset
        return old
    return new
