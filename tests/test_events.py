"""``--events``: trials and stimuli read from a CSV or an ELAN tier, checked before any model loads, summarised per
person and window (issue 37, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from typer.testing import CliRunner

from fervid.api import read_table
from fervid.cli import app
from fervid.events import (
    EventsError,
    check_events,
    event_table,
    load_events,
    tier_rows,
    with_blink_rates,
)
from fervid.io.probe import MediaInfo

HAMILTON = "media/face_recognition/short_hamilton_clip.mp4"
CLASSES = ("happy", "sad", "neutral")


def _csv(tmp_path: Path, text: str, name: str = "trials.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------ reading the file
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("onset_s,offset_s\n1,2\n", "trials.csv line 1: the header needs onset_s, offset_s, event (missing event"),
        ("onset_s,offset_s,event\n0,1,a\n1,x,b\n", "trials.csv line 3: offset_s 'x' is not a number of seconds"),
        ("onset_s,offset_s,event\n0,1,a\n\n1,2\n", "trials.csv line 4: 2 fields, the header has 3"),
        ("onset_s,offset_s,event\n3,2,a\n", "trials.csv line 2: offset_s (2) must be after onset_s (3)"),
        ("onset_s,offset_s,event\n-1,2,a\n", "trials.csv line 2: onset_s must be a time >= 0 seconds, got -1"),
        ("onset_s,offset_s,event\n1,2, \n", "trials.csv line 2: the event has no name"),
        ("onset_s,offset_s,event\n", "trials.csv: no events in it"),
    ],
)
def test_a_malformed_csv_names_its_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(EventsError) as caught:
        load_events(_csv(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_csv_in_any_column_order_with_blank_lines_and_inputs(tmp_path: Path) -> None:
    path = _csv(tmp_path, "event,input,offset_s,onset_s,note\nA,a.mp4,2,0,x\n\nB,,3.5,1.5,y\n")
    events = load_events(path)
    assert events.event.tolist() == ["A", "B"] and events.input.tolist() == ["a.mp4", ""]
    assert events.onset_s.tolist() == [0.0, 1.5] and events.offset_s.tolist() == [2.0, 3.5]
    assert events.line.tolist() == [2, 4]  # the blank line counts: messages name the line in the file
    assert events.for_input("b", "b.mp4").event.tolist() == ["B"]  # a row without input applies to every input
    assert events.for_input("a", "a.mp4").event.tolist() == ["A", "B"]
    assert len(events.sha256) == 64 and events.record(2)["windows"] == 2


def _eaf(path: Path, tiers: dict[str, list[tuple[int, int, str]]]) -> Path:
    from pympi import Eaf

    eaf = Eaf(author="test")
    eaf.remove_tier("default")
    for tier, spans in tiers.items():
        eaf.add_tier(tier)
        for start, end, value in spans:
            eaf.add_annotation(tier, start, end, value)
    eaf.to_file(str(path))
    return path


def test_an_elan_tier_gives_the_events(tmp_path: Path) -> None:
    path = _eaf(tmp_path / "coded.eaf", {"Trials": [(1500, 3000, "B"), (0, 1500, "A")], "Notes": [(0, 10, "x")]})
    events = load_events(path, "Trials")
    assert events.event.tolist() == ["A", "B"] and events.onset_s.tolist() == [0.0, 1.5]
    assert events.offset_s.tolist() == [1.5, 3.0] and events.record()["tier"] == "Trials"
    with pytest.raises(EventsError, match=r"no tier 'Trial' \(tiers: Notes, Trials\)"):
        load_events(path, "Trial")
    with pytest.raises(EventsError, match=r"give --events-tier, the tier that holds the events \(tiers: Notes"):
        load_events(path)
    (tmp_path / "broken.eaf").write_text("<ANNOTATION_DOCUMENT")
    with pytest.raises(EventsError, match="broken.eaf: not a readable ELAN file"):
        load_events(tmp_path / "broken.eaf", "Trials")


# ------------------------------------------------------------------------------- checks against inputs
def _video(name: str, duration: float, fps: float = 25.0) -> MediaInfo:
    return MediaInfo(Path(f"/media/{name}"), "video", 64, 64, fps, duration, int(duration * fps), False, None,
                     "h264", 0)  # fmt: skip


def test_windows_outside_a_video_and_unknown_inputs_are_named(tmp_path: Path) -> None:
    path = _csv(tmp_path, "onset_s,offset_s,event,input\n0,5,A,a\n0,9,B,b.mp4\n8,10,C,b\n0,10.03,D,b\n")
    events = load_events(path)
    inputs = [("a", "a.mp4", _video("a.mp4", 6.0)), ("b", "b.mp4", _video("b.mp4", 10.0))]
    assert check_events(events, inputs) == []  # D ends within one frame step (0.04 s) of the end: rounding
    with pytest.raises(EventsError) as caught:
        check_events(events, [inputs[0], ("b", "b.mp4", _video("b.mp4", 8.5))])
    assert str(caught.value).startswith("3 windows outside b.mp4 (8.50 s long): ")
    assert "trials.csv line 3 'B' 0-9 s" in str(caught.value)
    assert "trials.csv line 4 'C' 8-10 s" in str(caught.value) and "line 5 'D' 0-10.03 s" in str(caught.value)
    with pytest.raises(EventsError, match=r"trials.csv line 2: input 'a' matches no input of this run; inputs: b"):
        check_events(events, inputs[1:])
    # an input that will fail anyway (not probed) is still known by its name; its windows are not checked
    assert check_events(events, [("a-2", "clips/a", None), inputs[1]]) == []


def test_photos_have_no_time(tmp_path: Path) -> None:
    photos = MediaInfo(Path("/media/photos"), "image_folder", 64, 64, None, None, 3, False, None, None, 0)
    events = load_events(_csv(tmp_path, "onset_s,offset_s,event,input\n0,1,A,\n"))
    assert check_events(events, [("photos", "photos/", photos)]) == [
        "--events: photos/ is photos, which have no time: no events table for it"
    ]
    named = load_events(_csv(tmp_path, "onset_s,offset_s,event,input\n0,1,A,photos\n"))
    with pytest.raises(EventsError, match="photos/ is a photo input with no time"):
        check_events(named, [("photos", "photos/", photos)])
    assert check_events(named, [("photos", "photos/", photos)], sequence_fps=2.0) == []  # --sequence: 1.5 s long


# ---------------------------------------------------------------------------------------- the numbers
def _timeline() -> pd.DataFrame:
    """Two persons over 0-2 s at 10 fps (person 2 from 1 s), a behaviour column added as issue 32 will."""
    rng = np.random.default_rng(0)
    rows = []
    for person in (1, 2):
        for t in np.arange(0.0 if person == 1 else 1.0, 2.0, 0.1).round(2):
            p = rng.dirichlet([2, 1, 1]).astype(np.float32)
            rows.append({"frame": int(round(t * 10)), "time_s": t, "face_id": person + 10, "person_id": person,
                         "p_happy": p[0], "p_sad": p[1], "p_neutral": p[2], "readable": bool(rng.random() > 0.2),
                         "p_correct": np.float32(rng.random()), "yaw": np.float32(rng.normal(0, 20)),
                         "valence": np.float32(p[0] - p[1]), "pitch": np.float32(rng.normal(0, 5))})  # fmt: skip
    return pd.DataFrame(rows)


def _by_hand(timeline: pd.DataFrame, onset: float, offset: float, person: int) -> dict[str, float]:
    """A window's numbers for one person, from the table alone (plain pandas; the rule: readable and p_correct >=
    0.5)."""
    rows = timeline[(timeline["time_s"] >= onset) & (timeline["time_s"] < offset) & (timeline["person_id"] == person)]
    kept = rows[rows["readable"] & (rows["p_correct"] >= 0.5)]
    top = kept[[f"p_{c}" for c in CLASSES]].to_numpy().argmax(axis=1)
    out = {"frames": len(rows), "readable_frames": len(kept), "mean_yaw": rows["yaw"].mean(),
           "mean_pitch": rows["pitch"].mean(), "mean_valence": kept["valence"].mean()}  # fmt: skip
    for k, c in enumerate(CLASSES):
        out[f"mean_p_{c}"] = kept[f"p_{c}"].mean()
        out[f"share_{c}"] = (top == k).mean() if len(kept) else np.nan
    return out


def test_event_rows_are_the_hand_computed_numbers_of_each_window(tmp_path: Path) -> None:
    timeline = _timeline()
    path = _csv(tmp_path, "onset_s,offset_s,event\n0,1,first\n1,2,second\n0.5,1.5,overlapping\n0,0.5,early\n")
    table = event_table(timeline, CLASSES, load_events(path), timeline["time_s"].unique(), 0.5)
    assert table["event"].tolist() == ["first"] * 2 + ["second"] * 2 + ["overlapping"] * 2 + ["early"] * 2
    assert table["person_id"].tolist() == [1, 2] * 4  # every person for every event, seen or not
    assert list(table.columns[-3:]) == ["mean_valence", "mean_yaw", "mean_pitch"]
    for row in table.itertuples(index=False):
        expected = _by_hand(timeline, row.onset_s, row.offset_s, row.person_id)
        for name, value in expected.items():
            np.testing.assert_allclose(getattr(row, name), value, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)
    # half-open windows: the frame at 1.0 s is in "second", not "first"
    assert table.loc[0, "frames"] == 10 and table.loc[2, "frames"] == 10
    absent = table[(table["event"] == "first") & (table["person_id"] == 2)].iloc[0]
    assert absent["frames"] == 0 and absent["visible_s"] == 0 and pd.isna(absent["dominant_emotion"])
    assert np.isnan(absent["readable_share"]) and np.isnan(absent["mean_p_happy"])
    np.testing.assert_allclose(table.loc[0, "visible_s"], 1.0)  # ten frames of 0.1 s


def test_event_rows_without_identity_and_with_names(tmp_path: Path) -> None:
    timeline = _timeline()
    path = _csv(tmp_path, "onset_s,offset_s,event\n0,2,all\n")
    tracks = event_table(timeline.drop(columns="person_id"), CLASSES, load_events(path))
    assert "person_id" not in tracks and tracks["face_id"].tolist() == [11, 12]
    named = event_table(timeline.assign(person=timeline["person_id"].map({1: "Ada", 2: ""})), CLASSES,
                        load_events(path))  # fmt: skip
    assert named.columns[4] == "person" and named["person"].tolist() == ["Ada", ""]
    empty = event_table(timeline.iloc[:0], CLASSES, load_events(path))
    assert len(empty) == 0 and "mean_p_happy" in empty and empty["frames"].dtype == np.int64


def test_blink_rates_count_blinks_starting_in_the_window_per_minute_on_screen(tmp_path: Path) -> None:
    timeline = _timeline()
    path = _csv(tmp_path, "onset_s,offset_s,event\n0,1,first\n1,2,second\n")
    table = event_table(timeline, CLASSES, load_events(path), timeline["time_s"].unique())
    blinks = pd.DataFrame({"face_id": [11, 11, 12, 11], "person_id": [1, 1, 2, 1], "start_s": [0.2, 0.95, 1.5, 1.0],
                           "end_s": [0.3, 1.1, 1.6, 1.1], "duration_s": [0.1, 0.15, 0.1, 0.1]})  # fmt: skip
    rates = with_blink_rates(table, blinks)["blinks_per_min"].to_numpy()
    # first: P1 two blinks in 1 s on screen, P2 absent; second: P1 one (starting at 1.0), P2 one in 1 s
    np.testing.assert_allclose(rates, [120.0, np.nan, 60.0, 60.0], equal_nan=True)
    assert with_blink_rates(table, None) is table


def test_overlapping_windows_spread_over_elan_tiers(tmp_path: Path) -> None:
    events = load_events(_csv(tmp_path, "onset_s,offset_s,event\n0,1,a\n1,2,b\n0.5,1.5,c\n0,2,d\n2,3,e\n"))
    assert tier_rows(events) == [[0, 1, 4], [3], [2]]


# ------------------------------------------------------------------------------- the CLI, bad input
def _annotate(args: list[str]) -> object:
    return CliRunner().invoke(app, ["annotate", *args, "--device", "cpu", "--no-video"], env={"COLUMNS": "300"})


@pytest.mark.parametrize(
    ("text", "tier", "message"),
    [
        ("onset_s,offset_s,event\n0,1,a\n1,2\n", None, "trials.csv line 3: 2 fields, the header has 3"),
        ("onset_s,offset_s,event\n0,1,a\n9,12,late\n", None,
         "1 window outside short_hamilton_clip.mp4 (9.18 s long, from 0.85 s): "),
        ("onset_s,offset_s,event,input\n0,1,a,short_hamilton_clip\n0,1,b,hamilton.mp4\n", None,
         "trials.csv line 3: input 'hamilton.mp4' matches no input of this run; inputs: short_hamilton_clip"),
        ("eaf", "Trial", "coded.eaf: no tier 'Trial' (tiers: Trials)"),
        ("onset_s,offset_s,event\n0,1,a\n", "Trials", "--events-tier names a tier of an ELAN .eaf file; this is a CSV"),
    ],
)  # fmt: skip
def test_bad_events_are_one_line_errors_before_any_work(tmp_path: Path, text: str, tier: str | None,
                                                        message: str) -> None:  # fmt: skip
    clip = shared_path(HAMILTON)
    events = _eaf(tmp_path / "coded.eaf", {"Trials": [(0, 1000, "a")]}) if text == "eaf" else _csv(tmp_path, text)
    out = tmp_path / "out"
    result = _annotate([str(clip), "-o", str(out), "--events", str(events), *(["--events-tier", tier] if tier else [])])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output and not out.exists()  # nothing written, not even the folder


def test_a_missing_events_file_and_a_tier_without_a_file(tmp_path: Path) -> None:
    clip = shared_path(HAMILTON)
    result = _annotate([str(clip), "-o", str(tmp_path / "out"), "--events", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "nope.csv: no such events file" in result.output
    result = _annotate([str(clip), "-o", str(tmp_path / "out"), "--events-tier", "Trials"])
    assert result.exit_code == 2 and "give --events too" in result.output
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------- end to end: the Hamilton clip
def shots(clip: Path) -> list[tuple[float, float]]:
    """The clip's shots on its own timeline, found with fervid.shots from the decoded frames (not from a run)."""
    from fervid.shots import ShotCutDetector

    detector, times, cuts = ShotCutDetector(), [], []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            times.append(float(frame.time))
            if detector.is_cut(frame.to_ndarray(format="rgb24")):
                cuts.append(times[-1])
        step = 1 / float(container.streams.video[0].average_rate)
    edges = [0.0, *cuts, times[-1] + step]
    return list(zip(edges[:-1], edges[1:]))


@pytest.fixture(scope="module")
def hamilton_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float]]]:
    """The Hamilton clip (every 3rd frame) with one window per shot and one overlapping them: one run for the
    module's tests."""
    clip = shared_path(HAMILTON)
    root = tmp_path_factory.mktemp("hamilton-events")
    windows = shots(clip)
    lines = ["onset_s,offset_s,event", *(f"{a!r},{b!r},shot {k}" for k, (a, b) in enumerate(windows, 1)),
             "3.0,6.0,chorus"]  # fmt: skip
    (root / "shots.csv").write_text("\n".join(lines) + "\n")
    result = _annotate([str(clip), "-o", str(root / "out"), "--every", "3", "--events", str(root / "shots.csv")])
    assert result.exit_code == 0, result.output
    return root, [*windows, (3.0, 6.0)]


@pytest.mark.slow
def test_hamilton_shots_match_hand_computed_means(hamilton_run: tuple[Path, list[tuple[float, float]]]) -> None:
    root, windows = hamilton_run
    folder = root / "out" / "short_hamilton_clip"
    assert len(windows) == 5  # four shots (cuts near 1.52, 3.59 and 7.89 s) and the chorus
    faces = pd.read_csv(folder / "short_hamilton_clip.faces.csv")
    events = pd.read_csv(folder / "short_hamilton_clip.events.csv")
    classes = [c[2:] for c in faces.columns if c.startswith("p_") and c != "p_correct"]
    persons = sorted(faces.loc[faces["person_id"] >= 1, "person_id"].unique())
    assert len(events) == len(windows) * len(persons)
    assert events["event"].unique().tolist() == ["shot 1", "shot 2", "shot 3", "shot 4", "chorus"]
    trusted = faces["readable"].astype(str).eq("True") & (faces["p_correct"] >= 0.5)
    checked = 0
    for row in events.itertuples(index=False):
        inside = (
            (faces["time_s"] >= row.onset_s) & (faces["time_s"] < row.offset_s) & (faces["person_id"] == row.person_id)
        )
        kept = faces[inside & trusted]
        assert row.frames == int(inside.sum()) and row.readable_frames == len(kept)
        np.testing.assert_allclose(row.mean_yaw, faces.loc[inside, "yaw"].mean(), rtol=1e-5, equal_nan=True)
        for c in classes:
            np.testing.assert_allclose(getattr(row, f"mean_p_{c}"), kept[f"p_{c}"].mean(), rtol=1e-5, atol=1e-6,
                                       equal_nan=True)  # fmt: skip
        if len(kept):
            top = kept[[f"p_{c}" for c in classes]].to_numpy().argmax(axis=1)
            counts = np.bincount(top, minlength=len(classes))
            for k, c in enumerate(classes):
                np.testing.assert_allclose(getattr(row, f"share_{c}"), counts[k] / len(kept), rtol=1e-5, atol=1e-6)
            if (counts == counts.max()).sum() == 1:  # no tie: the most frequent top label
                assert row.dominant_emotion == classes[int(counts.argmax())]
            checked += 1
        else:
            assert pd.isna(row.dominant_emotion)
    assert checked >= 8  # persons seen and readable in their windows: the numbers were really compared
    seen = events[events["frames"] > 0]
    assert set(seen.loc[seen["event"] == "shot 1", "person_id"]) != set(seen.loc[seen["event"] == "shot 4",
                                                                                "person_id"])  # fmt: skip


@pytest.mark.slow
def test_hamilton_events_in_run_json_report_and_elan(hamilton_run: tuple[Path, list[tuple[float, float]]]) -> None:
    import hashlib

    from fervid.api import load
    from fervid.report.elan import read_segments

    root, windows = hamilton_run
    folder = root / "out" / "short_hamilton_clip"
    record = json.loads((folder / "short_hamilton_clip.run.json").read_text())
    sha = hashlib.sha256((root / "shots.csv").read_bytes()).hexdigest()
    assert record["events"] == {"path": str((root / "shots.csv").resolve()), "sha256": sha, "windows": 5}
    assert "short_hamilton_clip.events.csv" in record["outputs"]
    tiers = read_segments(folder / "short_hamilton_clip.eaf")
    assert [v for _, _, v in tiers["Events"]] == ["shot 1", "shot 2", "shot 3", "shot 4"]
    assert tiers["Events 2"] == [(3000, 6000, "chorus")]  # it overlaps shots 2 and 3
    assert [(a, b) for a, b, _ in tiers["Events"]] == [(round(a * 1000), round(b * 1000)) for a, b in windows[:4]]
    html = (folder / "short_hamilton_clip.report.html").read_text()
    assert 'id="event-numbers"' in html and 'href="short_hamilton_clip.events.csv"' in html
    assert html.count('<rect class="event"') == 5 * html.count('<svg class="chart"') > 0  # every window, every chart
    assert "<title>chorus: 3.00-6.00 s</title>" in html
    loaded = load(folder)
    pd.testing.assert_frame_equal(loaded.events, read_table(folder / "short_hamilton_clip.events.csv"))
