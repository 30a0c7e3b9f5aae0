"""time_s is the file's own timeline: a video that starts after its audio is not shifted to 0 (issue 13)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from PIL import Image
from typer.testing import CliRunner

from fervid.cli import app

VIDEO_START_S = 0.5  # the first video frame, on the file's timeline
BURST_S = 1.0  # a 440 Hz tone starts here in the otherwise silent audio
RATE = 16000


def late_video_clip(path: Path) -> Path:
    """A real face for 1 s of video starting at 0.5 s; audio (mostly silence) from 0 s, a tone from 1.0 s."""
    face = Image.open(shared_path("media/pyfeat/single_face.jpg")).convert("RGB").resize((320, 240))
    image = np.asarray(face)
    with av.open(str(path), "w") as container:
        audio = container.add_stream("aac", rate=RATE, layout="mono")  # added first: audio comes first
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        samples = np.zeros(round(1.6 * RATE), dtype=np.float32)
        t = np.arange(len(samples)) / RATE
        samples[t >= BURST_S] = 0.3 * np.sin(2 * np.pi * 440 * t[t >= BURST_S])
        pcm = (samples * 32767).astype(np.int16)
        for start in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[start : start + 1024][None, :], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round((VIDEO_START_S + i / 25) * 1000), Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode())
    return path


def first_video_time(path: Path) -> float:
    with av.open(str(path)) as container:
        return float(next(container.decode(video=0)).time)


def burst_onset(path: Path) -> float:
    """When the audio first gets loud, on the file's timeline."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
        start = float(frames[0].time)
        rate = frames[0].sample_rate
        audio = np.concatenate([f.to_ndarray()[0].astype(np.float64) for f in frames])
    return start + int(np.argmax(np.abs(audio) > 0.1 * np.abs(audio).max())) / rate


def test_times_are_the_files_own_and_the_annotated_video_stays_in_sync(tmp_path: Path) -> None:
    clip = late_video_clip(tmp_path / "late.mp4")
    assert first_video_time(clip) == pytest.approx(VIDEO_START_S, abs=1e-3)  # what ffprobe's pts_time says
    assert burst_onset(clip) == pytest.approx(BURST_S, abs=0.03)
    result = CliRunner().invoke(app, ["annotate", str(clip), "-o", str(tmp_path / "out"), "--no-plots"])
    assert result.exit_code == 0, result.output
    faces = pd.read_csv(tmp_path / "out" / "late" / "late.faces.csv")
    assert len(faces) >= 20
    assert faces["time_s"].min() == pytest.approx(VIDEO_START_S, abs=1e-3)  # not shifted to 0
    np.testing.assert_allclose(faces["time_s"], VIDEO_START_S + faces["frame"] / 25, atol=1e-3)
    annotated = tmp_path / "out" / "late" / "late.annotated.mp4"
    # the annotated video keeps the timeline: its frames are where the table says, its audio where it was
    assert first_video_time(annotated) == pytest.approx(VIDEO_START_S, abs=1e-3)
    assert burst_onset(annotated) == pytest.approx(burst_onset(clip), abs=0.025)


def test_start_cuts_a_segment_whose_video_and_audio_start_together(tmp_path: Path) -> None:
    clip = late_video_clip(tmp_path / "late.mp4")
    args = ["annotate", str(clip), "-o", str(tmp_path / "out"), "--no-plots", "--start", "0.8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    faces = pd.read_csv(tmp_path / "out" / "late" / "late.faces.csv")
    assert faces["time_s"].min() == pytest.approx(0.82, abs=1e-3)  # the first frame at or after 0.8 s
    annotated = tmp_path / "out" / "late" / "late.annotated.mp4"
    # the segment starts at 0 at --start; audio moved by the same 0.8 s
    assert first_video_time(annotated) == pytest.approx(0.02, abs=1e-3)
    assert burst_onset(annotated) == pytest.approx(BURST_S - 0.8, abs=0.025)
