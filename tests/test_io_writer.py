"""VideoWriter and atomic_path: true timestamps out, audio copied or transcoded, nothing partial left."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
from _io_media import make_clip, packets, stream_facts
from conftest import shared_path

from fervid.io.atomic import atomic_path, clean_partials, partial_path
from fervid.io.video import VideoReader
from fervid.io.video_writer import VideoWriter, choose_encoder, nvenc_available
from fervid.types import Frame

VFR_TIMES = [0.0, 0.040, 0.050, 0.170, 0.200, 0.450, 0.460, 0.470, 0.900, 1.000, 1.333, 1.500]


def transcode(src: Path, dst: Path, **reader_args: object) -> tuple[VideoWriter, list[float]]:
    """Reader -> writer with the pipeline's wiring; returns the writer and the times written."""
    times = []
    with (
        VideoReader(src, **reader_args) as reader,
        VideoWriter(
            dst,
            reader.width,
            reader.height,
            fps=reader.fps,
            time_base=reader.time_base,
            audio_from=src,
            end_s=reader.end_s,
            crf=30,
            preset="ultrafast",
        ) as writer,
    ):
        for frame in reader:
            writer.write(frame, frame.image)
            times.append(frame.time_s)
    return writer, times


def read_times(path: Path) -> list[float]:
    with VideoReader(path) as reader:
        return [f.time_s for f in reader]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ atomic_path
def test_atomic_path_renames_on_success(tmp_path: Path) -> None:
    final = tmp_path / "out.mp4"
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp.name.startswith(".out.partial-")
        tmp.write_text("done")
        assert not final.exists()
    assert final.read_text() == "done" and listing(tmp_path) == ["out.mp4"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_path_leaves_nothing_on_error(tmp_path: Path, error: type[BaseException]) -> None:
    final = tmp_path / "out.csv"
    final.write_text("previous result")
    with pytest.raises(error), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise error()
    assert listing(tmp_path) == ["out.csv"] and final.read_text() == "previous result"


def test_clean_partials_removes_only_dead_runs(tmp_path: Path) -> None:
    dead = tmp_path / ".a.partial-999999999.mp4"
    dead.write_text("x")
    mine = partial_path(tmp_path / "b.mp4")
    mine.write_text("x")
    (tmp_path / "c.mp4").write_text("x")
    assert clean_partials(tmp_path) == [dead]
    assert listing(tmp_path) == sorted([mine.name, "c.mp4"])


# ---------------------------------------------------------------- VideoWriter
def test_wolfgang_roundtrip_keeps_frames_timestamps_and_audio(tmp_path: Path) -> None:
    src = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    out = tmp_path / "annotated.mp4"
    writer, times = transcode(src, out)
    assert writer.encoder in ("libx264", "h264_nvenc") and writer.audio_mode == "copy"
    assert listing(tmp_path) == ["annotated.mp4"]
    assert read_times(out) == pytest.approx(times, abs=1e-9) and len(times) == 472
    src_audio, out_audio = packets(src, "audio"), packets(out, "audio")
    assert len(out_audio) == len(src_audio) == 923
    assert [p.pts for p in out_audio] == [p.pts for p in src_audio]
    codec, duration = stream_facts(out, "audio")
    assert codec == "aac" and duration == pytest.approx(stream_facts(src, "audio")[1], abs=0.03)


def test_range_and_every_keep_true_timing_and_cut_audio(tmp_path: Path) -> None:
    src = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    out = tmp_path / "part.mp4"
    _, times = transcode(src, out, start_s=5.0, end_s=8.0, every=3)
    assert len(times) == 24
    assert read_times(out) == pytest.approx([t - times[0] for t in times], abs=1e-9)
    _, audio_seconds = stream_facts(out, "audio")
    assert audio_seconds == pytest.approx(3.0, abs=0.05)


def test_vfr_roundtrip(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "vfr.mp4", VFR_TIMES, audio="aac")
    out = tmp_path / "out.mp4"
    writer, _ = transcode(src, out)
    assert read_times(out) == pytest.approx(VFR_TIMES, abs=1e-9)
    assert writer.audio_mode == "copy"
    transcode(src, tmp_path / "every.mp4", every=2)
    assert read_times(tmp_path / "every.mp4") == pytest.approx(VFR_TIMES[::2], abs=1e-9)


def test_pcm_audio_is_transcoded_to_aac(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "pcm.mov", [i / 25 for i in range(25)], audio="pcm_s16le", audio_seconds=1.0)
    out = tmp_path / "out.mp4"
    writer, _ = transcode(src, out)
    assert writer.audio_mode == "aac"
    codec, seconds = stream_facts(out, "audio")
    assert codec == "aac" and seconds == pytest.approx(1.0, abs=0.1)


def test_odd_size_is_padded_to_even(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "src.mp4", [0.0, 0.04, 0.08])
    out = tmp_path / "odd.mp4"
    image = np.full((31, 63, 3), 128, np.uint8)
    with pytest.warns(UserWarning, match="padding to 64x32"), VideoWriter(out, 63, 31, audio_from=src) as writer:
        for i in range(3):
            writer.write(Frame(i, i / 25, image), image)
    assert writer.padded and writer.audio_mode is None  # the source has no audio
    with VideoReader(out) as reader:
        assert (reader.width, reader.height, reader.frame_count) == (64, 32, 3)


@pytest.mark.parametrize("start_s", [None, 3.0])
def test_audio_stays_in_sync_when_video_starts_late(tmp_path: Path, start_s: float | None) -> None:
    """short_hamilton's video starts 0.852 s after its audio: output audio must shift with it."""
    src = shared_path("media/face_recognition/short_hamilton_clip.mp4")
    out = tmp_path / "out.mp4"
    _, times = transcode(src, out, start_s=start_s, end_s=6.0)
    src_start, src_audio, rate = decoded_audio(src)
    out_start, out_audio, _ = decoded_audio(out)
    video_start = times[0]  # the first frame's time on the source's timeline (>= 0.852 s: video starts late)
    assert video_start >= 10214 / 11988 - 1e-9
    j = 2 * rate  # compare 4000 samples two seconds into the output
    k = round((video_start + out_start + j / rate - src_start) * rate)
    piece = out_audio[j : j + 4000]
    lags = range(-200, 201)
    best = max(lags, key=lambda d: float(np.dot(piece, src_audio[k + d : k + d + 4000])))
    assert best == 0


def decoded_audio(path: Path) -> tuple[float, np.ndarray, int]:
    """(time of the first decoded sample, first channel as float, sample rate)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        return frames[0].time, np.concatenate([f.to_ndarray()[0] for f in frames]), stream.sample_rate


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_error_inside_the_block_leaves_no_file(tmp_path: Path, error: type[BaseException]) -> None:
    src = shared_path("media/pyfeat/single_face.mp4")
    out = tmp_path / "out.mp4"
    with (
        pytest.raises(error, match="detector exploded"),
        VideoReader(src) as reader,
        VideoWriter(out, reader.width, reader.height, audio_from=src) as writer,
    ):
        for frame in reader:
            writer.write(frame, frame.image)
            if frame.index == 10:
                raise error("detector exploded")
    assert listing(tmp_path) == []


def test_bad_image_and_no_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(48, 64, 3\) uint8"), VideoWriter(tmp_path / "a.mp4", 64, 48) as w:
        w.write(Frame(0, 0.0, np.zeros((10, 10, 3), np.uint8)), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="no frames"), VideoWriter(tmp_path / "b.mp4", 64, 48):
        pass
    assert listing(tmp_path) == []


def test_auto_codec_falls_back_to_libx264() -> None:
    assert choose_encoder("auto") == ("h264_nvenc" if nvenc_available() else "libx264")
    assert choose_encoder("libx264") == "libx264"
    assert os.environ.get("FERVID_EXPECT_NVENC") != "1" or nvenc_available()
