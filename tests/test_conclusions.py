"""Issue 30, item 4: every conclusion rests only on readable faces whose p_correct reaches ``--min-p-correct``.

The faces table keeps every face with its raw probabilities; the summaries, persons, the report (numbers,
timelines, moments, gallery), the ELAN file, the timeline PNG, the annotated video, ``fervid summarize`` and
the corpus index count only the faces :func:`fervid.io.tables.trusted` keeps. Synthetic faces tables carry
``readable``/``p_correct`` of their own, so these tests do not depend on any fitted reliability model.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fervid.api import read_table
from fervid.io.tables import summarize_persons, summarize_tracks, trusted, write_table
from fervid.types import Detections

CLASSES = ("happy", "sad", "neutral")


def faces_table(
    probs: list[list[float]], face_ids: list[int], readable: list[bool] | None = None,
    p_correct: list[float] | None = None, persons: list[int] | None = None, step: float = 0.1,
) -> pd.DataFrame:  # fmt: skip
    """A faces table with the columns the consumers read: one face per frame, ``step`` seconds apart."""
    n = len(face_ids)
    table = pd.DataFrame({"frame": np.arange(n), "time_s": np.arange(n) * step, "face_id": face_ids})
    if persons is not None:
        table["person_id"] = persons
    for name, value in zip(("x1", "y1", "x2", "y2"), (10.0, 10.0, 60.0, 70.0)):
        table[name] = np.float32(value)
    table["det_score"] = np.float32(0.9)
    for k in range(1, 6):
        table[f"lm{k}_x"], table[f"lm{k}_y"] = np.float32(20 + 5 * k), np.float32(30 + 3 * k)
    p = np.asarray(probs, dtype=np.float32)
    table["emotion"] = np.asarray(CLASSES, dtype=object)[p.argmax(axis=1)]
    table["confidence"] = p.max(axis=1)
    for j, c in enumerate(CLASSES):
        table[f"p_{c}"] = p[:, j]
    if readable is not None:
        table["readable"] = np.asarray(readable, dtype=bool)
        table["p_correct"] = np.asarray(p_correct, dtype=np.float32)
    return table


HAPPY, SAD, NEUTRAL = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]


# ------------------------------------------------------------------------------ the rule
def test_trusted_is_readable_and_p_correct_at_or_above_the_threshold() -> None:
    table = faces_table([HAPPY] * 5, [1] * 5, [True, True, False, True, True], [0.9, 0.5, 0.9, 0.49, np.nan])
    np.testing.assert_array_equal(trusted(table, 0.5), [True, True, False, False, False])
    np.testing.assert_array_equal(trusted(table, 0.0), [True] * 5)  # 0 turns the filter off
    np.testing.assert_array_equal(trusted(table.drop(columns=["readable", "p_correct"]), 0.5), [True] * 5)
    data = {"readable": np.array([True, False]), "p_correct": np.array([0.7, 0.9], dtype=np.float32)}
    dets = Detections(np.zeros((2, 4)), np.ones(2), np.zeros((2, 5, 2)), data=data)
    np.testing.assert_array_equal(trusted(dets, 0.5), [True, False])
    np.testing.assert_array_equal(trusted(Detections(np.zeros((2, 4)), np.ones(2), np.zeros((2, 5, 2))), 0.5),
                                  [True, True])  # fmt: skip


def test_a_csv_faces_table_reads_back_with_readable_as_bool(tmp_path: Path) -> None:
    table = faces_table([HAPPY, SAD], [1, 1], [True, False], [0.9, 0.8])
    write_table(table, tmp_path / "x.faces.csv")
    back = read_table(tmp_path / "x.faces.csv")
    assert back["readable"].dtype == bool and list(back["readable"]) == [True, False]
    np.testing.assert_array_equal(trusted(back, 0.5), [True, False])


# ------------------------------------------------------------------------------ summaries
def test_summaries_count_only_trusted_faces_and_time_on_screen_counts_every_face() -> None:
    """Face 1: two happy faces it can read, three sad ones it cannot (unreadable, or p_correct too low);
    face 2 (person 2): never readable."""
    probs = [HAPPY, HAPPY, SAD, SAD, SAD, NEUTRAL, NEUTRAL]
    table = faces_table(probs, [1, 1, 1, 1, 1, 2, 2], [True, True, False, True, False, False, False],
                        [0.9, 0.6, 0.9, 0.3, 0.2, 0.9, 0.9], persons=[1, 1, 1, 1, 1, 2, 2])  # fmt: skip
    for summary in (summarize_tracks(table, CLASSES, min_p_correct=0.5).set_index("face_id"),
                    summarize_persons(table, CLASSES, min_p_correct=0.5).set_index("person_id")):  # fmt: skip
        assert list(summary.columns[summary.columns.get_loc("visible_s") :][:4]) == [
            "visible_s", "readable_frames", "readable_share", "dominant_emotion"]  # fmt: skip
        one, two = summary.loc[1], summary.loc[2]
        assert one["frames"] == 5 and one["readable_frames"] == 2 and one["readable_share"] == pytest.approx(0.4)
        assert one["visible_s"] == pytest.approx(0.5) and one["last_time_s"] == pytest.approx(0.4)
        assert one["dominant_emotion"] == "happy"  # 3 of its 5 faces are sad, none of them trusted
        assert one["mean_p_happy"] == pytest.approx(0.8) and one["share_sad"] == 0
        assert two["frames"] == 2 and two["readable_frames"] == 0 and two["readable_share"] == 0
        assert pd.isna(two["dominant_emotion"])
        assert np.isnan(two[[f"mean_p_{c}" for c in CLASSES]].to_numpy(float)).all()
        assert np.isnan(two[[f"share_{c}" for c in CLASSES]].to_numpy(float)).all()
        assert two["visible_s"] == pytest.approx(0.2)
    off = summarize_tracks(table, CLASSES, min_p_correct=0).set_index("face_id")
    assert off.loc[1, "dominant_emotion"] == "sad" and off.loc[1, "readable_frames"] == 5
    assert off.loc[2, "dominant_emotion"] == "neutral"


def test_a_table_without_reliability_counts_every_face() -> None:
    table = faces_table([HAPPY, SAD, SAD], [1, 1, 1])
    summary = summarize_tracks(table, CLASSES)
    assert summary.loc[0, "readable_frames"] == 3 and summary.loc[0, "readable_share"] == 1
    assert summary.loc[0, "dominant_emotion"] == "sad"


def test_summary_of_a_never_readable_face_writes_an_empty_dominant_emotion(tmp_path: Path) -> None:
    table = faces_table([HAPPY, SAD], [1, 2], [True, False], [0.9, 0.9])
    summary = summarize_tracks(table, CLASSES, min_p_correct=0.5)
    write_table(summary, tmp_path / "x.summary.csv")
    back = read_table(tmp_path / "x.summary.csv")
    assert back.loc[0, "dominant_emotion"] == "happy" and pd.isna(back.loc[1, "dominant_emotion"])
    assert back["readable_frames"].dtype == np.int64 and list(back["readable_frames"]) == [1, 0]
    assert "readable_frames" in summarize_tracks(table.iloc[:0], CLASSES).columns


# ------------------------------------------------------------------------------ smoothing (item 7)
def _random_faces(n: int = 90, seed: int = 3) -> pd.DataFrame:
    """Two tracks at 30 fps, random probabilities, a third of the faces untrusted (unreadable or unsure)."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=2 * n)
    table = faces_table(probs.tolist(), [1, 2] * n, list(rng.random(2 * n) > 0.2), list(rng.random(2 * n)),
                        step=1 / 60)  # fmt: skip
    table["time_s"] = np.repeat(np.arange(n) / 30, 2)
    table["frame"] = np.repeat(np.arange(n), 2)
    return table


@pytest.mark.parametrize("mode", ["centred", "causal"])
def test_smoothing_skips_untrusted_faces_and_leaves_them_empty(mode: str) -> None:
    from fervid.smooth import add_smoothed

    table = _random_faces()
    ok = trusted(table, 0.5)
    assert 0 < ok.sum() < len(table)
    smoothed = add_smoothed(table, CLASSES, 0.3, mode, min_p_correct=0.5)
    ps = [f"ps_{c}" for c in CLASSES]
    assert smoothed.loc[~ok, ps].isna().all().all()
    # the trusted faces' smoothed values are those of a table that never had the untrusted faces
    alone = add_smoothed(table[ok], CLASSES, 0.3, mode, min_p_correct=0)
    np.testing.assert_allclose(smoothed.loc[ok, ps].to_numpy(), alone[ps].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(smoothed[[f"p_{c}" for c in CLASSES]], table[[f"p_{c}" for c in CLASSES]])
    everything = add_smoothed(table, CLASSES, 0.3, mode, min_p_correct=0)
    assert not everything[ps].isna().any().any()


@pytest.mark.parametrize("mode", ["centred", "causal"])
def test_the_stream_smooths_trusted_faces_as_the_table_does(mode: str) -> None:
    from fervid.smooth import StreamSmoother, add_smoothed
    from fervid.types import Frame, FrameResult, Predictions

    table = _random_faces()
    results = []
    for index, rows in table.groupby("frame", sort=True):
        n = len(rows)
        data = {"readable": rows["readable"].to_numpy(), "p_correct": rows["p_correct"].to_numpy()}
        dets = Detections(np.zeros((n, 4)), np.ones(n), np.zeros((n, 5, 2)), rows["face_id"].to_numpy(), data=data)
        frame = Frame(int(index), float(rows["time_s"].iloc[0]), np.zeros((4, 4, 3), np.uint8))
        results.append(FrameResult(frame, dets, Predictions(rows[[f"p_{c}" for c in CLASSES]].to_numpy(), CLASSES)))
    streamed = np.concatenate([r.shown.probs for r in StreamSmoother(0.3, mode, min_p_correct=0.5)(results)])
    ok = trusted(table, 0.5)
    expected = add_smoothed(table, CLASSES, 0.3, mode, min_p_correct=0.5)[[f"ps_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(streamed[ok], expected[ok], rtol=1e-5, atol=1e-7)
    # an untrusted face is drawn as "?", and keeps its raw output in `shown`
    np.testing.assert_allclose(streamed[~ok], table.loc[~ok, [f"p_{c}" for c in CLASSES]].to_numpy(), rtol=1e-6)


# ------------------------------------------------------------------------------ annotated video (item 5)
def _two_faces(readable: list[bool], p_correct: list[float]) -> Detections:
    boxes = np.array([[100, 150, 200, 260], [400, 150, 500, 260]], dtype=np.float32)
    landmarks = np.repeat(((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None, :], 5, axis=1)
    data = {"readable": np.asarray(readable), "p_correct": np.asarray(p_correct, dtype=np.float32)}
    return Detections(boxes, np.full(2, 0.9), landmarks, np.array([1, 2]), np.array([1, 2]), data)


def test_an_untrusted_face_gets_a_dashed_grey_box_and_a_question_mark_tag_without_bars() -> None:
    from fervid.annotate import UNTRUSTED, FrameAnnotator, _label_text, colour_for
    from fervid.types import Predictions

    image = np.full((360, 640, 3), 40, np.uint8)
    probs = Predictions(np.tile(np.float32([0.8, 0.1, 0.1]), (2, 1)), CLASSES)
    out = FrameAnnotator(min_p_correct=0.5).annotate(image, _two_faces([True, True], [0.9, 0.3]), probs)
    edge = lambda x: (out[152:258, x] == UNTRUSTED).all(axis=1)  # noqa: E731  # a box's left edge, corners apart
    assert (out[152:258, 100] == colour_for(1)).all()  # face 1: solid, in its colour
    assert 0.3 < edge(400).mean() < 0.7 and not edge(100).any()  # face 2: grey dashes
    assert (out[150:260, 205:320] != image[150:260, 205:320]).any()  # face 1's bars
    np.testing.assert_array_equal(out[150:260, 505:620], image[150:260, 505:620])  # none for face 2
    tag = lambda x0: int((out[135:150, x0 : x0 + 200] == UNTRUSTED).all(axis=2).any(axis=0).sum())  # noqa: E731
    grey_tag, colour_tag = tag(400), int((out[135:150, 100:300] == colour_for(1)).all(axis=2).any(axis=0).sum())
    assert 0 < grey_tag < colour_tag  # "P2 ?" is a shorter tag than "P1 happy 0.80"
    assert _label_text("P2", probs, 1, untrusted=True) == "P2 ?"
    assert _label_text("P1", probs, 0) == "P1 happy 0.80"
    everything = FrameAnnotator(min_p_correct=0).annotate(image, _two_faces([False, False], [0.1, 0.1]), probs)
    assert (everything[152:258, 400] == colour_for(2)).all()  # 0: every face keeps its label


def test_the_redraw_from_the_faces_table_marks_the_same_faces() -> None:
    from fervid.annotate import UNTRUSTED, FrameAnnotator
    from fervid.sinks import TimelineFrames

    table = faces_table([HAPPY, HAPPY], [1, 2], [True, False], [0.9, 0.9])
    table["frame"] = 0
    table.loc[1, ["x1", "x2"]] = [300.0, 350.0]
    detections, shown = TimelineFrames(table, CLASSES).at(0)
    np.testing.assert_array_equal(detections.data["readable"], [True, False])
    out = FrameAnnotator(min_p_correct=0.5).annotate(np.full((200, 400, 3), 40, np.uint8), detections, shown)
    assert 0.3 < (out[12:68, 300] == UNTRUSTED).all(axis=1).mean() < 0.7  # face 2's left edge: grey dashes
    assert not (out[12:68, 10] == UNTRUSTED).all(axis=1).any()


# ------------------------------------------------------------------------------ report and ELAN (items 2, 3, 8)
def _two_persons() -> pd.DataFrame:
    """P1: happy 0-1 s, an unreadable stretch 1-2 s (where the model says sad), happy again 2-3 s; P2 beside
    them all along, never readable (dark, blurred). 10 fps."""
    n = 30
    probs, ids, readable, p_correct = [], [], [], []
    for i in range(n):
        unread = 10 <= i < 20
        probs += [SAD if unread else HAPPY, NEUTRAL]
        ids += [1, 2]
        readable += [not unread, False]
        p_correct += [0.9, 0.95]
    table = faces_table(probs, ids, readable, p_correct, persons=ids)
    table["time_s"] = np.repeat(np.arange(n) / 10, 2)
    table["frame"] = np.repeat(np.arange(n), 2)
    table.loc[table["face_id"] == 2, ["x1", "x2"]] = [300.0, 350.0]
    return table


def _report(tmp_path: Path, table: pd.DataFrame, **options: object) -> tuple[object, Path]:
    """The report of a synthetic video input (no models, no media): tables, gallery sheet, ELAN file, HTML."""
    from fervid.options import AnnotateOptions
    from fervid.report.sink import ReportSink
    from fervid.run import InputResult

    opts = AnnotateOptions.from_flat(**options)
    threshold = opts.classification.min_p_correct
    result = InputResult(
        source=Path("clip.mp4"), kind="video", timeline=table,
        summary=summarize_tracks(table, CLASSES, min_p_correct=threshold), frames=30, seconds=1.0,
        classes=CLASSES, time_range=(0.0, 2.9), run={"input": {"fps": 10.0, "kind": "video"}, "options": opts.flat()},
        persons=summarize_persons(table, CLASSES, min_p_correct=threshold),
    )  # fmt: skip
    result.outputs = ReportSink(opts).write(result, tmp_path, "clip")
    return result, tmp_path


def test_report_numbers_gallery_and_settings_rest_on_trusted_faces(tmp_path: Path) -> None:
    from fervid.report.context import NEVER_READABLE

    _, folder = _report(tmp_path, _two_persons())
    page = (folder / "clip.report.html").read_text()
    assert '<th scope="row">Conclusions</th><td>readable faces with p_correct ≥ 0.5 (--min-p-correct)</td>' in page
    rows = {r[0]: r for r in _table_rows(page, "persons")}
    head = _table_head(page, "persons")
    p1, p2 = (dict(zip(head, rows[k])) for k in ("P1", "P2"))
    assert p1["Frames"] == "30" and p1["Readable"] == "67 %" and p1["Dominant"] == "happy"
    assert p2["Frames"] == "30" and p2["Readable"] == "0 %" and p2["Dominant"] == "–"
    assert rows["P2"][-3:] == ["–", "–", "–"] and rows["P1"][-3:] == ["80", "10", "10"]  # happy, sad, neutral
    tiles = re.findall(r'<li class="tile" id="tile-(P\d)".*?</li>', page, flags=re.S)
    assert tiles == ["P1", "P2"]
    tile = {k: re.search(rf'id="tile-{k}".*?</li>', page, flags=re.S).group(0) for k in tiles}
    assert NEVER_READABLE in tile["P2"] and "happy" not in tile["P2"] and "neutral" not in tile["P2"]
    assert NEVER_READABLE not in tile["P1"] and "happy · readable 67 %" in tile["P1"]


def test_report_timelines_shade_untrusted_stretches_and_moments_and_elan_skip_them(tmp_path: Path) -> None:
    from fervid.report.elan import read_segments

    _, folder = _report(tmp_path, _two_persons(), elan_min_run=0.0)
    page = (folder / "clip.report.html").read_text()
    assert "Grey stripes: visible, but not readable or below the p_correct threshold" in page
    charts = dict(re.findall(r'<article class="subject" id="timeline-(P\d)".*?(<svg.*?</svg>)', page, flags=re.S))
    untrusted = {k: re.findall(r'<rect class="untrusted"[^>]*x="([\d.]+)"[^>]*width="([\d.]+)"', svg)
                 for k, svg in charts.items()}  # fmt: skip
    seen = {
        k: re.findall(r'<rect class="seen" x="([\d.]+)" y="\d+" width="([\d.]+)"', svg) for k, svg in charts.items()
    }
    assert len(untrusted["P1"]) == 1 and seen["P2"] == untrusted["P2"]  # P2: all of its time on screen
    x, w = (float(v) for v in untrusted["P1"][0])
    x0, w0 = (float(v) for v in seen["P1"][0])
    assert x == pytest.approx(x0 + w0 / 3, abs=1) and w == pytest.approx(w0 / 3, abs=1)  # 1-2 s of 0-3 s
    assert len(re.findall(r"<polyline", charts["P1"])) == 2 * len(CLASSES)  # broken at the unreadable stretch
    assert "<polyline" not in charts["P2"]
    assert "never readable" in charts["P2"]  # the chart's description
    assert "No moment: none of P2's faces could be read" in page
    tiers = read_segments(folder / "clip.eaf")
    assert tiers["P2"] == []
    labels = [(a, b, v) for a, b, v in tiers["P1"]]
    assert [v for *_, v in labels] == ["happy", "happy"]
    assert labels[0][1] <= 1000 and labels[1][0] >= 2000  # a gap where P1 could not be read


def test_report_of_a_run_without_the_filter_says_every_face(tmp_path: Path) -> None:
    _, folder = _report(tmp_path, _two_persons(), min_p_correct=0.0)
    page = (folder / "clip.report.html").read_text()
    assert "<td>every face (--min-p-correct 0)</td>" in page
    assert '<span class="badge">never readable: no expression reported</span>' not in page
    assert '<rect class="untrusted"' not in page
    rows = {r[0]: r for r in _table_rows(page, "persons")}
    assert rows["P2"][-1] == "80" and rows["P1"][-3:] == ["57", "33", "10"]  # every face counts


@pytest.mark.parametrize(
    ("times", "labels", "expected"),
    [
        ([0.0, 0.1, 0.2, 0.3, 0.4], ["a", "a", None, "a", "a"], [(0.0, 0.2, "a"), (0.3, 0.5, "a")]),
        ([0.0, 0.1, 0.2, 0.3], [None, None, "b", "b"], [(0.2, 0.4, "b")]),
        ([0.0, 0.1, 0.2], [None, None, None], []),
    ],
)
def test_an_untrusted_face_is_a_gap_in_the_elan_tier(times: list[float], labels: list, expected: list) -> None:
    from fervid.report.elan import label_runs

    got = [(round(s.start_s, 6), round(s.end_s, 6), s.label) for s in label_runs(np.array(times), labels, 0.1, 0.0)]
    assert got == expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["a", "a", "a", None, "b", "a", "a"], [(0.0, 0.7, "a")]),  # one untrusted frame: flicker, bridged
        (["a", "a", "a", None, None, "b", "b", "b"], [(0.0, 0.3, "a"), (0.5, 0.8, "b")]),  # 0.2 s: a gap
        ([None, "a", "a", "a", None], [(0.1, 0.4, "a")]),  # at a stretch's ends: gaps however short
        (["a", "a", None, "b", "b", "b", "b"], [(0.0, 0.3, "a"), (0.3, 0.7, "b")]),  # it joins the one before it
    ],
)
def test_an_untrusted_stretch_shorter_than_the_shortest_run_is_bridged(labels: list, expected: list) -> None:
    """--elan-min-run 0.15: p_correct wavering about the threshold for one frame does not cut the annotation."""
    from fervid.report.elan import label_runs

    times = np.arange(len(labels)) / 10
    got = [(round(s.start_s, 6), round(s.end_s, 6), s.label) for s in label_runs(times, labels, 0.1, 0.15)]
    assert got == expected


def _table_head(page: str, table_id: str) -> list[str]:
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, flags=re.S).group(1)
    head = re.search(r"<thead>\s*<tr>(.*?)</tr>", table, flags=re.S).group(1)
    return re.findall(r"<th[^>]*>(.*?)</th>", head)[:-1]  # less the "Mean probability" group header


def _table_rows(page: str, table_id: str) -> list[list[str]]:
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, flags=re.S).group(1)
    body = re.search(r"<tbody>(.*?)</tbody>", table, flags=re.S).group(1)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)]


@pytest.mark.parametrize(("window", "mode"), [(0.2, "centred"), (0.3, "causal")])
def test_moments_are_the_peaks_of_trusted_faces_only(window: float, mode: str) -> None:
    """The streamed peaks equal those of the whole timeline smoothed over trusted faces, at trusted faces."""
    from test_report_parts import _stream

    from fervid.report.moments import PeakCollector, Smoothing
    from fervid.smooth import smooth_probs
    from fervid.types import EMOTIONS

    items, times, tracks, probs = _stream(4)
    rng = np.random.default_rng(9)
    ok = rng.random(len(times)) > 0.35
    collector, start = PeakCollector(Smoothing(window, mode, True), threshold=0.3, min_p_correct=0.5), 0
    for frame, dets, preds in items:
        rows = slice(start, start + len(dets))
        data = {"readable": ok[rows], "p_correct": np.full(len(dets), 0.9, np.float32)}
        collector.add(frame, Detections(dets.xyxy, dets.score, dets.landmarks, dets.track_id, data=data), preds)
        start += len(dets)
    peaks = collector.finish()
    smoothed = smooth_probs(times, tracks, probs, window, mode, ok)
    expected = {}
    for k in (1, 2):
        rows = np.flatnonzero((tracks == k) & ok)
        for j, emotion in enumerate(EMOTIONS):
            best = rows[np.argmax(smoothed[rows, j])]
            if emotion != "neutral" and smoothed[best, j] >= 0.3:
                expected[(k, emotion)] = (smoothed[best, j], times[best])
    assert expected and set(peaks) == set(expected)
    for key, (value, time_s) in expected.items():
        assert peaks[key].value == pytest.approx(value, abs=1e-6) and peaks[key].time_s == time_s
    everything = PeakCollector(Smoothing(window, mode, True), threshold=0.3, min_p_correct=0.5)
    for frame, dets, preds in items:  # no readable/p_correct: every face counts
        everything.add(frame, dets, preds)
    assert {k: p.value for k, p in everything.finish().items()} != {k: p.value for k, p in peaks.items()}


# ------------------------------------------------------------------------------ timeline PNG (item 6)
def test_the_timeline_png_stripes_untrusted_stretches_and_draws_no_line_there(tmp_path: Path) -> None:
    from PIL import Image

    from fervid.plots import plot_timeline

    def column(path: Path, t: float) -> np.ndarray:
        """The pixel column at time ``t`` (axes from 1.15 in to 12 - 1.35 in, x range 0-2.9 s padded 1 %)."""
        image = np.asarray(Image.open(path).convert("RGB")).astype(int)
        left, right, pad = 115, 1200 - 135, 0.029
        return image[:, round(left + (t + pad) / (2.9 + 2 * pad) * (right - left))]

    def stripes(pixels: np.ndarray) -> int:  # the hatch's grey, #b0b0b0
        return int((np.abs(pixels - 176).max(axis=1) <= 12).sum())

    def colour(pixels: np.ndarray, rgb: tuple[int, int, int]) -> int:
        return int((np.abs(pixels - rgb).max(axis=1) <= 30).sum())

    table = _two_persons()
    on = plot_timeline(table, CLASSES, tmp_path / "on.png", time_range=(0, 2.9), frame_step=0.1, min_p_correct=0.5)
    off = plot_timeline(table, CLASSES, tmp_path / "off.png", time_range=(0, 2.9), frame_step=0.1, min_p_correct=0)
    p1, p2 = slice(100, 228), slice(300, 410)  # the panels' rows (0.95 in from the top, 1.6 in each)
    assert stripes(column(on, 1.5)[p1]) > 10 and stripes(column(off, 1.5)[p1]) == 0  # P1's unreadable second
    assert stripes(column(on, 0.5)[p2]) > 10 and stripes(column(off, 0.5)[p2]) == 0  # P2, never readable
    assert stripes(column(on, 0.5)[p1]) == 0
    happy, sad = (44, 160, 44), (31, 119, 180)  # their lines and band
    assert colour(column(on, 1.5)[p1], sad) == 0 < colour(column(off, 1.5)[p1], sad)  # nothing where P1 is unread
    assert colour(column(on, 1.5)[p1], happy) == 0 < colour(column(on, 0.5)[p1], happy)


# ------------------------------------------------------------------------------ fervid summarize and the index (item 4)
def _corpus(out: Path) -> Path:
    """An annotate -o folder with one input as the run leaves it (tables from _two_persons, then run.json)."""
    from fervid import metadata

    table = _two_persons()
    folder = out / "clip"
    folder.mkdir(parents=True)
    outputs = ["clip.faces.csv", "clip.summary.csv", "clip.persons.csv"]
    write_table(table, folder / outputs[0])
    write_table(summarize_tracks(table, CLASSES, min_p_correct=0.5), folder / outputs[1])
    write_table(summarize_persons(table, CLASSES, min_p_correct=0.5), folder / outputs[2])
    record = {"options": {"model": "ferplus-rule", "min_p_correct": 0.5}, "input": {"path": "/media/clip.mp4"},
              "identity": {"persons": 2}, "kind": "video", "frames_processed": 30,
              "time_range_s": [0.0, 2.9]}  # fmt: skip
    metadata.write_run(folder, "clip", {**record, "outputs": outputs})
    return out


def test_summarize_carries_readable_frames_and_no_dominant_emotion_without_a_trusted_face(tmp_path: Path) -> None:
    import fervid

    table = fervid.summarize(_corpus(tmp_path / "out")).set_index("person_id")
    head = list(table.columns)
    assert head[head.index("frames") :][:4] == ["frames", "readable_frames", "readable_share", "dominant_emotion"]
    assert table.loc[1, "readable_frames"] == 20 and table.loc[1, "readable_share"] == pytest.approx(2 / 3)
    assert table.loc[1, "dominant_emotion"] == "happy" and table.loc[1, "mean_p_happy"] == pytest.approx(0.8)
    assert table.loc[2, "readable_frames"] == 0 and pd.isna(table.loc[2, "dominant_emotion"])
    assert np.isnan(table.loc[2, "mean_p_neutral"])


def test_summarize_prints_the_readable_share_and_never_readable(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fervid.cli import app

    out = _corpus(tmp_path / "out")
    result = CliRunner().invoke(app, ["summarize", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert re.search(r"clip │ P1 │ 1 │ 0\.0-2\.9 │ 30 │ 67 % │ happy \(0\.80\)", text), text
    assert re.search(r"clip │ P2 │ 2 │ 0\.0-2\.9 │ 30 │ 0 % │ - \(never readable\)", text), text
    assert not re.search(r"\bnan\b", text), text
    back = read_table(out / "corpus.summary.csv").set_index("person_id")
    assert back.loc[2, "readable_frames"] == 0 and pd.isna(back.loc[2, "dominant_emotion"])
    index = (out / "index.html").read_text()
    row = re.search(r'<tr><th scope="row">clip</th>(.*?)</tr>', index, flags=re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row, flags=re.S)
    assert "33 % of faces, 1 person never readable" in cells and "happy (1)" in cells  # 20 of 60 faces


# ------------------------------------------------------------------------------ the option (items 8, 9)
@pytest.mark.parametrize("value", ["1.5", "-0.1", "abc"])
def test_a_threshold_out_of_range_is_a_usage_error_before_any_work(tmp_path: Path, value: str) -> None:
    from conftest import shared_path
    from typer.testing import CliRunner

    from fervid.cli import app

    clip = shared_path("media/pyfeat/no_face.mp4")
    result = CliRunner().invoke(app, ["annotate", str(clip), "-o", str(tmp_path / "out"), "--min-p-correct", value])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--min-p-correct'" in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="min_p_correct"):
        import fervid

        fervid.annotate(clip, min_p_correct=1.5)


def test_run_json_records_the_threshold(tmp_path: Path) -> None:
    import json

    from conftest import shared_path

    import fervid

    clip = shared_path("media/pyfeat/no_face.mp4")
    fervid.annotate(clip, tmp_path, device="cpu", end=0.5, video=False, plots=False, report=False, min_p_correct=0)
    record = json.loads((tmp_path / clip.stem / f"{clip.stem}.run.json").read_text())
    assert record["options"]["min_p_correct"] == 0


# ------------------------------------------------------------------------------ the real clip (item 5)
def test_the_hamilton_video_draws_untrusted_faces_as_grey_dashes_and_the_others_in_colour(tmp_path: Path) -> None:
    """Shot 2 (from 1.5 s) has dark, blurred audience faces; the first shot's faces are clear. The encoded video is
    lossy (a one-pixel coloured line loses most of its colour to chroma subsampling), so a box's left edge is judged
    against the input's own frame: drawn all along for a trusted face, on about half of it (dashes) otherwise."""
    import av
    from conftest import shared_path

    import fervid

    clip = shared_path("media/face_recognition/short_hamilton_clip.mp4")
    result = fervid.annotate(clip, tmp_path, device="cpu", end=2.7, plots=False, report=False, bars=False)
    faces = result.faces
    ok = trusted(faces, 0.5)
    tall = (faces["y2"] - faces["y1"] > 40) & (faces["x1"] > 4) & (faces["y1"] > 4)
    picks = {"trusted": faces[ok & tall].iloc[len(faces[ok & tall]) // 2],
             "untrusted": faces[~ok & tall].iloc[len(faces[~ok & tall]) // 2]}  # fmt: skip

    def frames_at(path: Path) -> dict[str, np.ndarray]:
        found = {}
        with av.open(str(path)) as video:
            for frame in video.decode(video=0):
                for kind, row in picks.items():
                    if abs(float(frame.time) - row["time_s"]) < 1e-3:
                        found[kind] = frame.to_ndarray(format="rgb24").astype(int)
        return found

    drawn, source = frames_at(tmp_path / clip.stem / f"{clip.stem}.annotated.mp4"), frames_at(clip)
    assert set(drawn) == set(source) == {"trusted", "untrusted"}
    for kind, row in picks.items():
        x, y0, y1 = round(float(row["x1"])), round(float(row["y1"])) + 3, round(float(row["y2"])) - 3
        changed = np.abs(drawn[kind] - source[kind])[y0:y1, x - 1 : x + 2].max(axis=(1, 2)) > 30  # a pixel either side
        if kind == "trusted":
            assert changed.mean() > 0.9, (kind, changed.mean())  # every face of the clip: 0.98-1
        else:
            assert 0.3 < changed.mean() < 0.8, (kind, changed.mean())  # every face of the clip: 0.55-0.75
