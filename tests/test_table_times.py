"""Times in the tables: CSV keeps frame precision however long the recording (6 significant digits do not), and
the time on screen (``visible_s``) comes from the frames' own times, right on variable frame rate video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

import fervid
from fervid.api import read_table
from fervid.io.tables import frame_durations, summarize_persons, summarize_tracks, write_table


def test_times_are_written_to_the_microsecond_and_empty_when_unknown(tmp_path: Path) -> None:
    # Two frames 1/30 s apart, three hours in: with "%.6g" both would read 10800.5.
    frame = pd.DataFrame({"time_s": [10800.5, 10800.533333, np.nan], "p_happy": [0.123456789, 0.5, 1.0],
                          "frame": [324015, 324016, 0]})  # fmt: skip
    path = tmp_path / "faces.csv"
    write_table(frame, path)
    lines = path.read_text().splitlines()
    assert lines[1:] == ["10800.5,0.123457,324015", "10800.533333,0.5,324016", ",1,0"]
    back = pd.read_csv(path)
    assert back["time_s"].iloc[1] - back["time_s"].iloc[0] == np.float64(10800.533333) - 10800.5
    assert np.isnan(back["time_s"].iloc[2])


# ------------------------------------------------------------------ time on screen (issue 36, item 2)
def _faces(times: list[float], face_ids: list[int], persons: list[int] | None = None) -> pd.DataFrame:
    """A faces table with the columns the summaries need (one class), rows in time order."""
    frame = pd.DataFrame({"frame": np.arange(len(times)), "time_s": np.asarray(times, dtype=np.float64),
                          "face_id": face_ids, "p_happy": np.float32(1.0)})  # fmt: skip
    if persons is not None:
        frame.insert(3, "person_id", persons)
    return frame


def test_each_frame_lasts_until_the_next_processed_frame() -> None:
    """Variable frame rate: 1/30 s steps, then 1/24 s steps; the last frame lasts the median step."""
    times = np.array([0, 1, 2, 3, 4]) / 30
    times = np.append(times, times[-1] + np.array([1, 2, 3]) / 24)
    t, durations = frame_durations(times[::-1])  # in any order
    np.testing.assert_allclose(t, times)
    np.testing.assert_allclose(durations, [1 / 30] * 4 + [1 / 24] * 3 + [np.median(np.diff(times))])
    for empty in ([], [np.nan, np.nan], [1.5]):  # photos have no time; one frame has no step
        assert np.isnan(frame_durations(np.array(empty))[1]).all()


def test_visible_s_uses_the_frames_own_times_not_the_average_rate() -> None:
    """face_noface.mov in small: 72 frames 1/30 s apart with a face, then slower frames without one.
    The file's average rate (26.4 fps) would give 72 / 26.4 = 2.727 s; the frames give 2.4 s."""
    with_face = np.arange(72) / 30
    without = with_face[-1] + np.cumsum(np.r_[1 / 30, np.full(16, 1 / 24)])
    faces = _faces(list(with_face), [1] * 72, [1] * 72)
    summary = summarize_tracks(faces, ["happy"], frame_times=np.r_[with_face, without])
    assert list(summary.columns[:6]) == ["face_id", "person_id", "first_time_s", "last_time_s", "frames", "visible_s"]
    assert summary["visible_s"].iloc[0] == pytest.approx(2.4)
    persons = summarize_persons(faces, ["happy"], np.r_[with_face, without])
    assert persons["visible_s"].iloc[0] == pytest.approx(2.4)
    # from a saved faces table (only frames with faces): the last face frame lasts the median step
    assert summarize_tracks(faces, ["happy"])["visible_s"].iloc[0] == pytest.approx(2.4)


def test_visible_s_with_every_gaps_and_two_tracks_of_one_person() -> None:
    """--every 3 at 30 fps: a frame stands for 0.1 s. Face 1 at 0-0.4 s, lost for two processed frames, face 2
    (the same person) at 0.7-0.9 s while face 3 is also there; no face at 1.0 s, the last processed frame."""
    frame_times = np.arange(11) * 0.1
    times = list(frame_times[[0, 1, 2, 3, 4, 7, 7, 8, 8, 9]])  # the same floats, as in a run
    faces = _faces(times, [1, 1, 1, 1, 1, 2, 3, 2, 3, 2], [1, 1, 1, 1, 1, 1, 2, 1, 2, 1])
    summary = summarize_tracks(faces, ["happy"], frame_times=frame_times).set_index("face_id")
    np.testing.assert_allclose(summary["visible_s"], [0.5, 0.3, 0.2])
    persons = summarize_persons(faces, ["happy"], frame_times).set_index("person_id")
    np.testing.assert_allclose(persons["visible_s"], [0.8, 0.2])  # a frame counts once per person
    # without the faceless frames' times, the gap from 0.4 to 0.7 s is no face frame of 0.3 s
    saved = summarize_tracks(faces, ["happy"]).set_index("face_id")
    np.testing.assert_allclose(saved["visible_s"], [0.5, 0.3, 0.2])


def test_photos_have_no_time_on_screen() -> None:
    faces = _faces([np.nan, np.nan], [1, 2], [1, 1]).assign(file=["a.jpg", "b c.jpg"])
    summary = summarize_tracks(faces, ["happy"], frame_times=np.array([np.nan, np.nan]))
    assert summary["visible_s"].isna().all()
    assert summarize_persons(faces, ["happy"])["visible_s"].isna().all()


def test_face_noface_mov_visible_s_follows_the_frames(tmp_path: Path) -> None:
    """The real variable-frame-rate file of the issue: --end 3 gives 72 face frames 1/30 s apart (0-2.367 s)."""
    source = shared_path("media/pyfeat/face_noface.mov")
    fervid.annotate(source, tmp_path, device="cpu", end=3, video=False, plots=False, report=False)
    summary = read_table(tmp_path / source.stem / f"{source.stem}.summary.csv")
    persons = read_table(tmp_path / source.stem / f"{source.stem}.persons.csv")
    face = summary.iloc[summary["frames"].argmax()]
    assert face["frames"] == 72 and face["last_time_s"] == pytest.approx(71 / 30, abs=1e-3)
    assert face["visible_s"] == pytest.approx(72 / 30, abs=0.01)  # was 72 / 26.4 = 2.727 (the average rate)
    assert persons["visible_s"].max() == pytest.approx(72 / 30, abs=0.01)
    corpus = fervid.summarize(tmp_path)
    assert corpus["visible_s"].max() == pytest.approx(72 / 30, abs=0.01)


def test_photo_tables_name_the_file_of_each_face() -> None:
    """Issue 36, item 4: summary has each face's photo, persons the photo of each of its face_ids."""
    faces = _faces([np.nan] * 4, [1, 2, 3, 4], [1, 2, 1, 1]).assign(file=["a.jpg", "a.jpg", "b c.jpg", "d.png"])
    summary = summarize_tracks(faces, ["happy"], frame_times=np.full(3, np.nan))
    assert list(summary.columns[:3]) == ["face_id", "person_id", "file"]
    assert list(summary["file"]) == ["a.jpg", "a.jpg", "b c.jpg", "d.png"]
    persons = summarize_persons(faces, ["happy"]).set_index("person_id")
    assert list(persons.columns[:2]) == ["face_ids", "files"]
    assert persons.loc[1, "face_ids"] == "1 3 4" and persons.loc[1, "files"] == "a.jpg | b c.jpg | d.png"
    assert persons.loc[2, "files"] == "a.jpg"
    empty = summarize_persons(faces.iloc[:0], ["happy"])
    assert "files" in empty.columns and "file" in summarize_tracks(faces.iloc[:0], ["happy"]).columns
