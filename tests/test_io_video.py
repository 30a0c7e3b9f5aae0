"""VideoReader and probe: frame counts, true timestamps, seeking, rotation, damaged and bad input."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from _io_media import make_audio_only, make_clip
from conftest import shared_path

from fervid.io.errors import InputError
from fervid.io.probe import probe
from fervid.io.video import VideoReader

WOLFGANG = "media/pyfeat/WolfgangLanger_Pexels.mp4"
VFR_TIMES = [0.0, 0.040, 0.050, 0.170, 0.200, 0.450, 0.460, 0.470, 0.900, 1.000, 1.333, 1.500]


def read_all(path: Path, **kwargs: object) -> list[tuple[int, float]]:
    with VideoReader(path, **kwargs) as reader:
        return [(f.index, f.time_s) for f in reader]


@pytest.fixture(scope="module")
def wolfgang_full() -> list[tuple[int, float]]:
    return read_all(shared_path(WOLFGANG))


@pytest.fixture
def vfr_clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "vfr.mp4", VFR_TIMES)


def test_wolfgang_counts_size_audio_and_timestamps(wolfgang_full: list[tuple[int, float]]) -> None:
    with VideoReader(shared_path(WOLFGANG)) as reader:
        assert (reader.width, reader.height) == (640, 360)
        assert reader.has_audio and reader.audio_codec == "aac"
        assert reader.fps == pytest.approx(24000 / 1001)
        assert reader.frame_count == 472
        assert reader.rotation == 0
        first = next(iter(reader))
    assert first.image.shape == (360, 640, 3) and first.image.dtype == np.uint8
    assert len(wolfgang_full) == 472
    assert [i for i, _ in wolfgang_full] == list(range(472))
    times = np.array([t for _, t in wolfgang_full])
    np.testing.assert_allclose(times, np.arange(472) * 1001 / 24000, atol=1e-9)
    assert reader.decode_error is None


@pytest.mark.parametrize(
    ("start_s", "end_s", "every"),
    [(None, None, 5), (5.0, 6.0, 1), (0.0, 1.0, 2), (10.3, None, 7), (19.6, None, 1), (3.0, 3.0, 1)],
)
def test_wolfgang_range_and_every_match_a_full_read(
    wolfgang_full: list[tuple[int, float]], start_s: float | None, end_s: float | None, every: int
) -> None:
    """Seeking and subsampling give the same indices and times as filtering a full decode."""
    lo = -1.0 if start_s is None else start_s - 1e-6
    hi = np.inf if end_s is None else end_s + 1e-6
    expected = [x for x in wolfgang_full if lo <= x[1] <= hi][::every]
    assert read_all(shared_path(WOLFGANG), start_s=start_s, end_s=end_s, every=every) == expected


def test_seek_index_is_counted_over_the_whole_stream_with_an_edit_list() -> None:
    """no_face.mp4 starts with edit-list-discarded packets; seeking must not count them."""
    path = shared_path("media/pyfeat/no_face.mp4")
    full = read_all(path)
    assert read_all(path, start_s=2.0) == [x for x in full if x[1] >= 2.0 - 1e-6]


def test_vfr_timestamps_are_the_presentation_times(vfr_clip: Path) -> None:
    frames = read_all(vfr_clip)
    assert [i for i, _ in frames] == list(range(len(VFR_TIMES)))
    np.testing.assert_allclose([t for _, t in frames], VFR_TIMES, atol=1e-9)


def test_vfr_every_keeps_true_timestamps(vfr_clip: Path) -> None:
    frames = read_all(vfr_clip, every=3)
    assert frames == [(i, pytest.approx(VFR_TIMES[i])) for i in range(0, len(VFR_TIMES), 3)]


def test_vfr_start_end(vfr_clip: Path) -> None:
    frames = read_all(vfr_clip, start_s=0.3, end_s=1.0)
    assert [i for i, _ in frames] == [5, 6, 7, 8, 9]


def test_frames_carry_the_right_pictures(vfr_clip: Path) -> None:
    with VideoReader(vfr_clip, start_s=0.45) as reader:
        levels = [int(np.median(f.image[20:, 20:, 0])) for f in reader]
    assert [round(v / 8) for v in levels] == list(range(5, len(VFR_TIMES)))


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path: Path, degrees: int) -> None:
    """A clip with a display matrix comes out upright: size swapped, marker moved like np.rot90."""
    path = make_clip(tmp_path / "rot.mp4", [0.0, 0.04], width=64, height=32, rotation=degrees)
    with VideoReader(path) as reader:
        image = next(iter(reader)).image
        assert reader.rotation == degrees % 360
    steps = (degrees // 90) % 4
    expected = np.rot90(np.zeros((32, 64), bool), steps).shape
    assert image.shape[:2] == expected
    assert (reader.width, reader.height) == (expected[1], expected[0])
    marker = np.zeros((32, 64), bool)
    marker[:8, :8] = True
    where = np.argwhere(np.rot90(marker, steps))
    corner = tuple(where.mean(axis=0).round().astype(int))
    assert image[corner].min() > 200  # the white marker is where a CCW rotation puts it


def test_truncated_file_yields_frames_then_decode_error(tmp_path: Path) -> None:
    times = [i / 25 for i in range(100)]
    full = make_clip(tmp_path / "full.mp4", times, width=160, height=120, faststart=True)
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with VideoReader(cut) as reader:
        frames = list(reader)
    assert 0 < len(frames) < 100
    assert [f.index for f in frames] == list(range(len(frames)))
    assert reader.decode_error is not None and "\n" not in reader.decode_error


def test_corrupt_bytes_in_the_middle_do_not_raise(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "c.mp4", [i / 25 for i in range(50)], width=160, height=120, faststart=True)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)
    path.write_bytes(bytes(data))
    with VideoReader(path) as reader:
        frames = list(reader)
    assert len(frames) > 25


def test_stopping_early_joins_the_decode_thread() -> None:
    before = threading.active_count()
    with VideoReader(shared_path(WOLFGANG), queue_size=2) as reader:
        for frame in reader:
            if frame.index == 3:
                break
    assert threading.active_count() == before


def test_decode_thread_errors_reach_the_consumer(vfr_clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: VideoReader, frame: object) -> np.ndarray:
        raise MemoryError("out of memory in the decode thread")

    monkeypatch.setattr(VideoReader, "_to_rgb", broken)
    with VideoReader(vfr_clip) as reader, pytest.raises(MemoryError, match="decode thread"):
        list(reader)


def test_raw_h265_gets_timestamps_from_the_rate() -> None:
    with VideoReader(shared_path("media/dlib_ffmpeg/MOT17-13-SDP-raw.h265"), end_s=1.0) as reader:
        assert reader.fps == 25.0 and reader.duration_s is None
        frames = [(f.index, f.time_s) for f in reader]
    assert frames == [(i, pytest.approx(i / 25)) for i in range(26)]


def test_gif_frames_and_delays() -> None:
    frames = read_all(shared_path("media/dlib_ffmpeg/elon-musk-smoke.gif"))
    assert len(frames) == 35
    np.testing.assert_allclose([t for _, t in frames], np.arange(35) * 0.05, atol=1e-9)


def one_line_error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        VideoReader(path)
    message = str(info.value)
    assert "\n" not in message and path.name in message
    return message


def test_bad_inputs_raise_one_line_input_errors(tmp_path: Path) -> None:
    text = tmp_path / "clip.mp4"
    text.write_text("this is not a video\n" * 20)
    assert "not a readable video" in one_line_error(text)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    assert "empty" in one_line_error(empty)
    assert "no such file" in one_line_error(tmp_path / "missing.mp4")
    assert "no video stream" in one_line_error(make_audio_only(tmp_path / "song.m4a"))
    assert "folder" in one_line_error(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"every": 0}, "every"), ({"start_s": -1.0}, "start_s"), ({"start_s": 2.0, "end_s": 1.0}, "end_s")],
)
def test_bad_arguments(vfr_clip: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VideoReader(vfr_clip, **kwargs)


def test_probe_kinds(tmp_path: Path, vfr_clip: Path) -> None:
    video = probe(shared_path(WOLFGANG))
    assert (video.kind, video.width, video.height, video.frame_count) == ("video", 640, 360, 472)
    assert video.has_audio and video.audio_codec == "aac" and video.video_codec == "h264"
    assert probe(shared_path("media/dlib_ffmpeg/elon-musk-smoke.gif")).kind == "video"
    still = probe(shared_path("media/fer/justin.jpg"))
    assert still.kind == "image" and still.video_codec == "jpeg"
    renamed = tmp_path / "clip.dat"
    renamed.write_bytes(vfr_clip.read_bytes())
    assert probe(renamed).kind == "video"  # sniffed, not by extension
    bad = tmp_path / "notes.mp4"
    bad.write_text("hello")
    with pytest.raises(InputError, match="notes.mp4"):
        probe(bad)
