"""Issue 36, "Errors and messages": usage errors found before any model is loaded, and messages a user understands.

Each usage error must come before the models load, so those tests replace ``Pipeline`` with a
function that fails the test when called: the CLI imports it only when some input needs it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _io_media import make_clip
from conftest import shared_path
from PIL import Image
from typer.testing import CliRunner

from fervid import api
from fervid.batch import BatchInput, check_inputs, discover_inputs, range_problem
from fervid.cli import app
from fervid.io.probe import probe
from fervid.options import AnnotateOptions

SINGLE_FACE = "media/pyfeat/single_face.mp4"  # 2.4 s
WOLFGANG = "media/pyfeat/WolfgangLanger_Pexels.mp4"  # 19.7 s
QUICK = ["--no-video", "--no-plots", "--no-report", "--det-size", "320"]


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, " ".join(result.output.split())  # one line: Rich wraps at the test's width


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the CLI loads the models."""

    def loaded(*args: object, **kwargs: object) -> None:
        raise AssertionError("the models were loaded")

    monkeypatch.setattr("fervid.pipeline.Pipeline", loaded)


def _error_lines(output: str) -> list[str]:
    return re.findall(r"error: [^│]*?(?= error: |$)", output)


# --------------------------------------------------------------------- item 6: --start past the end
def test_start_past_the_end_is_a_usage_error_naming_the_duration(tmp_path: Path, no_models: None) -> None:
    clip = shared_path(SINGLE_FACE)
    code, output = _invoke(["annotate", clip, "-o", tmp_path / "out", "--start", "100"])
    assert code == 2, output
    assert output == "error: single_face.mp4: --start 100 s is past the end of the video (2.40 s long)"
    assert not (tmp_path / "out").exists()


def test_start_not_after_end_is_a_usage_error(tmp_path: Path, no_models: None) -> None:
    code, output = _invoke(["annotate", shared_path(SINGLE_FACE), "-o", tmp_path, "--start", "2", "--end", "2"])
    assert code == 2 and "end (2.0s) must be after start (2.0s)" in output, output


def test_in_a_batch_a_video_shorter_than_start_fails_alone(tmp_path: Path) -> None:
    """single_face (2.4 s) fails with the reason; WolfgangLanger (19.7 s) is processed; subfolders are counted."""
    folder = tmp_path / "videos"
    (folder / "later").mkdir(parents=True)
    (folder / "single_face.mp4").symlink_to(shared_path(SINGLE_FACE))
    (folder / "wolfgang.mp4").symlink_to(shared_path(WOLFGANG))
    out = tmp_path / "out"
    code, output = _invoke(["annotate", folder, "-o", out, "--start", "3", "--end", "3.1", *QUICK])
    assert code == 1, output
    assert "error: videos/single_face.mp4: --start 3 s is past the end of the video (2.40 s long)" in output
    assert (out / "wolfgang" / "wolfgang.run.json").exists() and not (out / "single_face").exists()
    assert "note: skipped 1 subfolder (videos/later): add --recursive to look inside" in output


def test_when_every_video_ends_before_start_the_batch_is_a_usage_error(tmp_path: Path, no_models: None) -> None:
    clip = shared_path(SINGLE_FACE)
    short = make_clip(tmp_path / "short.mp4", [i / 25 for i in range(10)])
    code, output = _invoke(["annotate", clip, short, "-o", tmp_path / "out", "--start", "50"])
    assert code == 2, output
    assert output == ("error: every video ends before --start; the longest, single_face.mp4: "
                      "--start 50 s is past the end of the video (2.40 s long)")  # fmt: skip


def test_start_is_on_the_file_timeline(tmp_path: Path) -> None:
    """A video whose frames run from 2.0 to 2.96 s: --start 2.5 and 2.96 read some, 3.5 none."""
    media = probe(make_clip(tmp_path / "late.mp4", [2 + i / 25 for i in range(25)]))
    assert media.duration_s == pytest.approx(1.0)
    for start in (None, 0.5, 2.5, 2.96):
        assert range_problem(media, start) is None, start
    assert range_problem(media, 3.5) == "--start 3.5 s is past the end of the video (1.00 s long, from 2.00 s)"


# ------------------------------------------------------------------ item 7: a path that does not exist
def test_a_missing_input_is_a_usage_error_before_loading_models(tmp_path: Path, no_models: None) -> None:
    clip = shared_path(SINGLE_FACE)
    code, output = _invoke(["annotate", clip, tmp_path / "nosuch.mp4", "-o", tmp_path / "out"])
    assert code == 2, output
    assert output == f"error: {tmp_path / 'nosuch.mp4'}: no such file or folder"
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------- item 8: --sequence on a video
def test_sequence_on_a_video_is_a_usage_error(tmp_path: Path, no_models: None) -> None:
    code, output = _invoke(["annotate", shared_path(SINGLE_FACE), "-o", tmp_path / "out", "--sequence"])
    assert code == 2, output
    assert output == "error: --sequence reads a folder of images as consecutive frames; single_face.mp4 is not one"


def test_sequence_with_image_folders_and_videos_applies_to_the_folders(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    make_clip(folder / "clip.mp4", [i / 25 for i in range(4)])
    for i in range(2):
        Image.new("RGB", (32, 32), (i * 90, 40, 40)).save(folder / f"frame{i}.png")
    items, notes = check_inputs(discover_inputs([folder]), AnnotateOptions.from_flat(sequence=True))
    assert sorted(i.kind for i in items) == ["file", "images"]
    assert notes == ["--sequence applies to the 1 image folder; the 1 other input is read as usual"]
    with pytest.raises(ValueError, match="none of the 2 inputs is one"):
        check_inputs([i for i in items if i.kind == "file"] * 2, AnnotateOptions.from_flat(sequence=True))


# ------------------------------------------------------------------------ item 9: summarize a file
def test_summarize_a_file_says_a_folder_is_expected(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, output = _invoke(["summarize", afile])
    assert code == 2
    assert output == f"error: {afile}: is a file; give the folder `fervid annotate -o` wrote"


# ------------------------------------------------------------- item 10: no library warning reaches the user
def test_people_nobody_matches_runs_without_warnings(tmp_path: Path) -> None:
    """Python's warnings as errors (-W error): a warning outside fervid's own handling is a traceback, and one
    a run records (printed as `warning:`) shows in stderr; neither may happen. Justin is not in single_face.mp4."""
    people = tmp_path / "people"
    people.mkdir()
    (people / "Justin.jpg").symlink_to(shared_path("media/fer/justin.jpg"))
    args = ["annotate", shared_path(SINGLE_FACE), "-o", tmp_path / "out", "--people", people, "--end", "1", *QUICK]
    done = subprocess.run([sys.executable, "-W", "error", "-m", "fervid", *map(str, args)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower() and "Traceback" not in done.stderr, done.stderr
    faces = pd.read_csv(tmp_path / "out" / "single_face" / "single_face.faces.csv", keep_default_na=False)
    assert (faces["person"] == "").all()  # --people: the name column is there, empty where nobody matched


def test_naming_no_one_adds_an_empty_name_column_without_a_warning() -> None:
    """The cause of item 10: the names of persons nobody matched were filled with "" in a float column."""
    import warnings

    import pandas as pd

    from fervid.io.tables import add_persons

    timeline = pd.DataFrame({"frame": [0, 1], "face_id": [1, 2], "x1": [0.0, 1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        named = add_persons(timeline, {1: 1, 2: 2}, names={})
    assert named["person"].tolist() == ["", ""]


# --------------------------------------------- paper cuts: summary line, resume with changed options
def test_resume_with_other_options_warns_and_loads_no_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = shared_path(SINGLE_FACE)
    out = tmp_path / "out"
    code, output = _invoke(["annotate", clip, "-o", out, "--end", "0.3", *QUICK])
    assert code == 0, output
    assert "fps (processing)" in output and "fps: while processing frames" not in output
    assert re.search(r"models loaded in \d+\.\d s before the first input", output), output

    monkeypatch.setattr("fervid.pipeline.Pipeline", lambda *a, **k: pytest.fail("the models were loaded"))
    code, output = _invoke(["annotate", clip, "-o", out, "--end", "0.5", "--smooth", "0.5", *QUICK])
    assert code == 0, output
    assert ("warning: single_face.mp4: its earlier run used other options (--end 0.3 then, 0.5 now; --smooth 0 then,"
            " 0.5 now): --overwrite redoes it") in output  # fmt: skip
    assert "complete (earlier run, other options)" in output
    assert "models loaded" not in output

    code, output = _invoke(["annotate", clip, "-o", out, "--end", "0.3", "--device", "cpu", *QUICK])
    assert code == 0 and "other options" not in output and "warning" not in output, output


# ---------------------------------------------------------------- paper cuts: batch subfolders, docs, API
def test_subfolders_left_out_without_recursive_are_counted(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    for name in ("b", "a", ".hidden", "out"):
        (folder / name).mkdir(parents=True)
    make_clip(folder / "clip.mp4", [0.0, 0.04])
    unvisited: list[Path] = []
    discover_inputs([folder], exclude=[folder / "out"], unvisited=unvisited)
    assert unvisited == [folder / "a", folder / "b"]
    unvisited.clear()
    discover_inputs([folder], recursive=True, unvisited=unvisited)
    assert unvisited == []
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (item,) = discover_inputs([empty], unvisited=unvisited)
    assert unvisited == [] and "add --recursive" in (item.problem or "")  # the folder's own failure says it


def test_outputs_doc_lists_every_api_option() -> None:
    from fervid.options import option_list_markdown

    doc = (Path(__file__).resolve().parents[1] / "docs" / "outputs.md").read_text()
    assert option_list_markdown() in doc, (
        "docs/outputs.md's list of API options is out of date: paste the output of "
        "python -c 'from fervid.options import option_list_markdown as m; print(m())'"
    )
    for name in api.option_names():
        assert f"`{name}`" in option_list_markdown()


def test_annotate_help_and_batch_doc_say_the_same_about_folders() -> None:
    result = CliRunner().invoke(app, ["annotate", "--help"], env={"COLUMNS": "300"})
    helptext = " ".join(result.output.replace("│", " ").split())
    doc = " ".join((Path(__file__).resolve().parents[1] / "docs" / "batch.md").read_text().split())
    for phrase in ("a folder of images only is one input", "each file that is not an image is one input"):
        assert phrase in helptext.lower(), phrase
    assert "| a folder with images and no video | **one** image-folder input" in doc
    assert "a batch: each file that is not an image is one input" in doc
    assert "each video one input" not in helptext


@pytest.mark.parametrize(
    ("keyword", "guess"),
    [("smoth", "did you mean 'smooth'?"), ("det_treshold", "did you mean 'det_threshold'?"),
     ("no_video", "did you mean video=False?"), ("colour", None)],
)  # fmt: skip
def test_an_unknown_keyword_gets_a_guess(keyword: str, guess: str | None) -> None:
    with pytest.raises(TypeError) as caught:
        api.options(**{keyword: 1})
    message = str(caught.value)
    assert message.startswith(f"unknown option(s) {keyword!r}") and "valid: bars, batch_size" in message
    assert (guess in message) if guess else "did you mean" not in message


def test_batch_input_kinds_are_what_check_inputs_reads() -> None:
    """check_inputs tells an image folder by kind; a file argument is never one."""
    item = BatchInput(Path("x.mp4"), "file", "x.mp4")
    assert item.kind == "file" and item.images is None
