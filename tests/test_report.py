"""The research report (issue 15): gallery, moments, ELAN file, ``<stem>.report.html`` and ``OUT/index.html``.

The real-media tests share one run of ``short_hamilton_clip.mp4`` (18 tracks, 15 persons, four
shots); ``tests/data/hamilton_persons.csv`` says who each track is. The browser test renders the
report in Debian's headless Chromium through Playwright and skips with the reason when either
is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _browser import NUMBERS_OVERFLOW
from conftest import shared_path
from PIL import Image
from typer.testing import CliRunner

import fervid
from fervid import metadata
from fervid.behaviour.valence import valence
from fervid.cli import app
from fervid.geometry import box_iou_np
from fervid.io.tables import trusted
from fervid.report.collect import KEY
from fervid.report.context import detection_schedule
from fervid.report.elan import label_runs, read_segments, stretches, valence_labels
from fervid.report.gallery import SPREAD, gallery_files, pick_gallery
from fervid.report.moments import DEFAULT_WINDOW_S
from fervid.report.sink import ReportSink
from fervid.report.subjects import subjects_of
from fervid.smooth import smooth_probs
from fervid.types import EMOTIONS

HAMILTON = "media/face_recognition/short_hamilton_clip.mp4"
STEM = "short_hamilton_clip"
LABELS = Path(__file__).parent / "data" / "hamilton_persons.csv"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
FRAME_STEP = 1 / 29.97


@pytest.fixture(scope="module")
def hamilton(tmp_path_factory: pytest.TempPathFactory) -> tuple[fervid.AnnotateResult, Path]:
    """The whole Hamilton clip, report on (the default), no annotated video."""
    out = tmp_path_factory.mktemp("hamilton")
    result = fervid.annotate(shared_path(HAMILTON), out, device="cpu", video=False)
    return result, out / STEM


def _label_of_tracks(faces: pd.DataFrame) -> dict[int, str]:
    """face_id -> the person a human gave that track (hamilton_persons.csv), matched by first frame and box IoU."""
    labels = pd.read_csv(LABELS)
    found = {}
    for face_id, track in faces.groupby("face_id"):
        first = track.sort_values("frame").iloc[0]
        near = labels[(labels["first_frame"] - first["frame"]).abs() <= 2]
        if len(near):
            iou = box_iou_np(near[["x1", "y1", "x2", "y2"]].to_numpy(), first[["x1", "y1", "x2", "y2"]].to_numpy(float))
            if iou.max() > 0.5:
                found[int(face_id)] = str(near.iloc[int(iou[:, 0].argmax())]["person"])
    return found


# ------------------------------------------------------------------------------------ outputs
def test_run_json_lists_the_report_outputs(hamilton: tuple[fervid.AnnotateResult, Path]) -> None:
    result, folder = hamilton
    record = json.loads((folder / f"{STEM}.run.json").read_text())
    for name in ("faces/", f"{STEM}.faces.png", "moments/", f"{STEM}.moments.csv", f"{STEM}.eaf",
                 f"{STEM}.report.html"):  # fmt: skip
        assert name in record["outputs"], name
    on_disk = {p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if p.name != f"{STEM}.run.json"}
    assert sorted(record["outputs"]) == sorted(on_disk)
    assert metadata.is_complete(folder, STEM)
    written = {p.relative_to(folder).as_posix() for p in result.outputs}
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == written


# ------------------------------------------------------------------------------------ gallery
def test_gallery_shows_each_person_their_own_face(hamilton: tuple[fervid.AnnotateResult, Path]) -> None:
    """Every person's best face comes from one of their tracks, from the same real person as their named
    tracks (never a '?' or false-positive track when the person has a named one), at a box of that track."""
    result, folder = hamilton
    faces = result.faces
    labels = _label_of_tracks(faces)
    subjects = subjects_of(faces)
    entries = pick_gallery(result._input.collected[KEY].tracks, subjects)
    assert [e.subject.label for e in entries] == [f"P{p}" for p in result.persons["person_id"]]
    for entry in entries:
        best, tracks = entry.best, entry.subject.tracks
        assert best is not None and best.track_id in tracks, entry.subject
        named = {labels.get(t, "?") for t in tracks} - {"?", "not_face"}
        assert len(named) <= 1, (entry.subject, named)  # identity never puts two people under one ID
        if named:
            assert labels.get(best.track_id) in named, (entry.subject.label, best.track_id, named)
        row = faces[(faces["frame"] == best.frame) & (faces["face_id"] == best.track_id)]
        assert len(row) == 1 and np.allclose(row[["x1", "y1", "x2", "y2"]].to_numpy()[0], best.box, atol=0.01)
        mine = faces[faces["face_id"].isin(tracks)]
        large = min(float((mine["y2"] - mine["y1"]).median()), 112.0)  # face_quality's size term is full at 112 px
        assert best.box[3] - best.box[1] >= 0.9 * large, entry.subject  # one of the person's larger views
        assert len(entry.spread) <= SPREAD and all(c.track_id in tracks for c in entry.spread)
        times = [c.time_s for c in entry.spread]
        assert times == sorted(times)
        for name, crop in gallery_files(entry):
            assert (folder / name).read_bytes() == crop.jpeg
            with Image.open(folder / name) as image:
                assert image.size == (160, 160) and image.format == "JPEG"
    singer = next(e for e in entries if "singer" in {labels.get(t) for t in e.subject.tracks})
    assert labels[singer.best.track_id] == "singer" and singer.best.box[3] - singer.best.box[1] > 80  # the close-up
    with Image.open(folder / f"{STEM}.faces.png") as sheet:
        assert sheet.format == "PNG" and sheet.height > 160 * len(entries)


# ------------------------------------------------------------------------------------ moments
def test_moments_are_the_peaks_of_the_smoothed_probabilities(hamilton: tuple[fervid.AnnotateResult, Path]) -> None:
    result, folder = hamilton
    faces = result.faces
    raw = faces[[f"p_{c}" for c in EMOTIONS]].to_numpy()
    ok = trusted(faces, result._options.classification.min_p_correct)  # issue 30: moments rest on these faces only
    smoothed = smooth_probs(faces["time_s"].to_numpy(), faces["face_id"].to_numpy(), raw, DEFAULT_WINDOW_S, trusted=ok)
    moments = pd.read_csv(folder / f"{STEM}.moments.csv")
    assert (moments["smooth_s"] == DEFAULT_WINDOW_S).all() and (moments["smooth_mode"] == "centred").all()
    expected = set()
    for person, rows in faces.groupby("person_id"):
        for j, emotion in enumerate(EMOTIONS):
            peak = np.nanmax(smoothed[rows.index, j], initial=-1.0)  # NaN: an untrusted face
            if emotion != "neutral" and peak >= 0.5:
                expected.add((person, emotion))
                got = moments[(moments["person_id"] == person) & (moments["emotion"] == emotion)]
                assert len(got) == 1, (person, emotion)
                moment = got.iloc[0]
                assert moment["p_smoothed"] == pytest.approx(peak, abs=1e-5)
                at = rows[(rows["frame"] == moment["frame"]) & (rows["face_id"] == moment["face_id"])]
                assert len(at) == 1 and at["time_s"].iloc[0] == pytest.approx(moment["time_s"])
                assert smoothed[at.index[0], j] == pytest.approx(peak, abs=1e-5)
                with Image.open(folder / moment["image"]) as thumb:
                    assert thumb.size == (160, 160)
    assert set(zip(moments["person_id"], moments["emotion"])) == expected and expected  # the clip has some


# --------------------------------------------------------------------------------------- ELAN
def test_elan_file_has_a_tier_per_person_and_the_timelines_label_runs(
    hamilton: tuple[fervid.AnnotateResult, Path], tmp_path: Path
) -> None:
    result, folder = hamilton
    faces = result.faces
    raw = faces[[f"p_{c}" for c in EMOTIONS]].to_numpy()
    ok = trusted(faces, result._options.classification.min_p_correct)  # issue 30: other faces are gaps
    smoothed = smooth_probs(faces["time_s"], faces["face_id"], raw, DEFAULT_WINDOW_S, trusted=ok)
    top = np.where(ok, np.asarray(EMOTIONS, dtype=object)[np.nan_to_num(smoothed, nan=-1).argmax(1)], None)
    # every run kept (--elan-min-run 0): the segments are exactly the runs of the top label
    exact = ReportSink(result._options.replace(elan_min_run=0.0)).write(result._input, tmp_path, STEM)
    assert tmp_path / f"{STEM}.eaf" in exact
    tiers = read_segments(tmp_path / f"{STEM}.eaf")
    # each person's label tier, then (issue 32) a tier of the runs of their valence's sign band
    assert list(tiers) == [t for p in result.persons["person_id"] for t in (f"P{p}", f"P{p} valence")]
    moods = valence_labels(valence(smoothed, EMOTIONS))
    for person, rows in faces.sort_values("time_s").groupby("person_id"):
        times = rows["time_s"].to_numpy()
        for tier, labels in ((f"P{person}", top[rows.index]), (f"P{person} valence", moods[rows.index])):
            runs = []
            for part in stretches(times, FRAME_STEP):
                t, names = times[part], labels[part]
                ends = np.append(t[1:], t[-1] + FRAME_STEP)
                cuts = [0, *(np.flatnonzero(names[1:] != names[:-1]) + 1), len(t)]
                runs += [(round(t[a] * 1000), round(ends[b - 1] * 1000), names[a])
                         for a, b in zip(cuts[:-1], cuts[1:]) if names[a] is not None]  # fmt: skip
            assert tiers[tier] == runs, tier
    # the default file (--elan-min-run 0.5): annotations of at least 0.5 s, each run of 0.5 s or more inside one
    # annotation with its label, and read back with pympi as written
    default = read_segments(folder / f"{STEM}.eaf")
    assert list(default) == list(tiers)
    for tier, segments in default.items():
        assert all(end - start >= 500 for start, end, _ in segments)
        assert all(a[1] <= b[0] for a, b in zip(segments, segments[1:]))
        for start, end, label in tiers[tier]:
            if end - start >= 500:
                assert any(s <= start and end <= e and v == label for s, e, v in segments), (tier, start, label)
    text = (folder / f"{STEM}.eaf").read_text()
    media = shared_path(HAMILTON).resolve()
    assert f'MEDIA_URL="{media.as_uri()}"' in text and 'MIME_TYPE="video/mp4"' in text


@pytest.mark.parametrize(
    ("times", "labels", "min_run", "expected"),
    [
        ([], [], 0.5, []),
        ([0.0, 0.1, 0.2], ["a", "a", "a"], 0.0, [(0.0, 0.3, "a")]),
        ([0.0, 0.1, 0.2], ["a", "a", "a"], 0.5, []),  # a visible stretch shorter than the minimum is dropped
        ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], ["a", "a", "a", "b", "a", "a"], 0.25, [(0.0, 0.6, "a")]),  # flicker joins
        ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], ["b", "a", "a", "a", "a", "a"], 0.25, [(0.0, 0.6, "a")]),  # leading short
        ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], ["a", "a", "a", "b", "b", "b"], 0.25, [(0.0, 0.3, "a"), (0.3, 0.6, "b")]),
        ([0.0, 0.1, 0.2, 1.0, 1.1], ["a", "a", "b", "b", "b"], 0.0,
         [(0.0, 0.2, "a"), (0.2, 0.3, "b"), (1.0, 1.2, "b")]),  # a gap ends a run: the last row lasts one step
    ],
)  # fmt: skip
def test_label_runs(times: list[float], labels: list[str], min_run: float, expected: list) -> None:
    got = [(round(s.start_s, 6), round(s.end_s, 6), s.label) for s in label_runs(np.array(times), labels, 0.1, min_run)]
    assert got == [(round(a, 6), round(b, 6), c) for a, b, c in expected]


# ---------------------------------------------------------------------------------- the page
class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_report_html_is_self_contained_and_accessible(hamilton: tuple[fervid.AnnotateResult, Path]) -> None:
    result, folder = hamilton
    text = (folder / f"{STEM}.report.html").read_text()
    page = _Page()
    page.feed(text)
    tags = page.tags
    assert not any(tag in ("script", "iframe", "object", "embed") for tag, _ in tags)
    assert re.findall(r"https?://[^\s\"'<>]+", text) == ["http://www.w3.org/2000/svg"] * text.count("<svg")
    images = [a for tag, a in tags if tag == "img"]
    assert images and all(a["src"].startswith("data:image/jpeg;base64,") and a.get("alt") for a in images)
    links = [a["href"] for tag, a in tags if tag == "a"]
    for href in links:
        if not href.startswith("#"):
            assert ":" not in href and (folder / href).exists(), href  # relative, and there
    assert any(f"{STEM}.faces.csv" == h for h in links) and any(f"{STEM}.eaf" == h for h in links)
    assert sum(tag == "li" and (a.get("class") or "") == "tile" for tag, a in tags) == len(result.persons)
    assert sum(tag == "svg" for tag, _ in tags) == 2 * len(result.persons)  # the timeline and (issue 32) valence
    assert sum(tag == "th" and a.get("scope") == "col" for tag, a in tags) >= 8
    assert "--smooth was off" in text  # the report says it smoothed for itself
    assert "whole frame searched on every frame (--detect-every 1)" in text  # issue 33: the schedule, also at 1


@pytest.mark.parametrize("every", [2, 8])
def test_the_settings_say_how_late_a_new_face_can_be_found(every: int) -> None:
    text = detection_schedule(every)
    assert f"--detect-every {every}" in text and f"up to {every - 1} frames late" in text


def test_report_renders_in_headless_chromium(hamilton: tuple[fervid.AnnotateResult, Path], tmp_path: Path) -> None:
    """No console errors, no request but the page itself, every image decoded, one gallery tile per person."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    result, folder = hamilton
    page_path = folder / f"{STEM}.report.html"
    requests, problems = [], []
    with playwright.sync_playwright() as p, tempfile.TemporaryDirectory(dir=tmp_path) as profile:
        browser = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(page_path.as_uri(), wait_until="load")
            broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
            images = page.evaluate("document.images.length")
            tiles = page.locator("#gallery li.tile").count()
            rows = page.locator("#persons tbody tr").count()
            labels = page.locator("#gallery li.tile figcaption strong").all_inner_texts()
            overflow = page.evaluate(NUMBERS_OVERFLOW)  # the numbers table fits at 1280 px (issue 36)
            heads = page.locator("#persons thead th").all_inner_texts()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
            page.screenshot(path=str(tmp_path / "report-full.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert requests == [page_path.as_uri()]
    assert images > len(result.persons) and broken == 0
    assert tiles == rows == len(result.persons) and labels == [f"P{p}" for p in result.persons["person_id"]]
    assert overflow == 0 and "Name" not in heads and heads[-len(EMOTIONS) :] == list(EMOTIONS)  # no --people
    with Image.open(tmp_path / "report.png") as shot:
        colours = np.unique(np.asarray(shot.convert("RGB")).reshape(-1, 3), axis=0)
    assert shot.size == (1280, 900) and len(colours) > 1000  # a real page, pictures included


class _Table(HTMLParser):
    """The column headings and the rows (their cells' text, row heading first) of one table, found by its id."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.depth = table_id, 0
        self.head: list[str] = []
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and (self.depth or dict(attrs).get("id") == self.table_id):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("th", "td"):
            self.cell = []

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.cell is not None and tag in ("th", "td"):
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    @classmethod
    def read(cls, html: str, table_id: str) -> tuple[list[str], list[list[str]]] | None:
        """(headings, body rows) of the table, or None where the page has no such table."""
        table = cls(table_id)
        table.feed(html)
        return (table.rows[0], table.rows[1:]) if table.rows else None


def test_report_has_a_behaviour_table_with_a_row_per_person(hamilton: tuple[fervid.AnnotateResult, Path]) -> None:
    """Issue 32: blinks per minute and mean valence per person, the persons table's figures as they are."""
    result, folder = hamilton
    text = (folder / f"{STEM}.report.html").read_text()
    assert '<section id="behaviour"' in text
    table = _Table.read(text, "behaviour-numbers")
    assert table is not None, "the report has no #behaviour-numbers table"
    head, rows = table
    assert head == ["ID", "Blinks per min", "Mean valence"]
    assert [row[0] for row in rows] == [f"P{p}" for p in result.persons["person_id"]]  # one row per person
    persons = pd.read_csv(folder / f"{STEM}.persons.csv").set_index("person_id")
    for row in rows:
        person = persons.loc[int(row[0][1:])]
        assert row[1] == f"{person['blinks_per_min']:.1f}", row
        assert row[2] == ("–" if pd.isna(person["mean_valence"]) else f"{person['mean_valence']:+.2f}"), row


@pytest.mark.parametrize("behaviour", [True, False])
def test_report_behaviour_table_only_with_the_behaviour_stage(tmp_path: Path, behaviour: bool) -> None:
    """With ``behaviour=False`` (``--no-behaviour``) the report has no behaviour section; with it, one row."""
    clip = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    fervid.annotate(clip, tmp_path, device="cpu", video=False, plots=False, end=1.0, every=4,
                    behaviour=behaviour)  # fmt: skip
    text = (tmp_path / clip.stem / f"{clip.stem}.report.html").read_text()
    assert _Table.read(text, "persons") is not None  # the report's numbers table: the page is there
    table = _Table.read(text, "behaviour-numbers")
    if behaviour:
        assert table is not None and table[0] == ["ID", "Blinks per min", "Mean valence"] and len(table[1]) == 1
    else:
        assert table is None and 'id="behaviour"' not in text and "Mean valence" not in text


# ------------------------------------------------------------------------- other kinds of input
def test_photo_folder_gets_the_lighter_report(tmp_path: Path) -> None:
    """Independent photos have no time: gallery, numbers and links, no moments, timelines or ELAN file."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("obama_and_biden.jpg", "two_people.jpg"):
        shutil.copy(shared_path(f"media/face_recognition/{name}"), photos / name)
    result = fervid.annotate(photos, tmp_path / "out", device="cpu", video=False)
    folder = tmp_path / "out" / "photos"
    names = {p.name for p in folder.iterdir()}
    assert {"faces", "photos.faces.png", "photos.report.html"} <= names
    assert not {"moments", "photos.moments.csv", "photos.eaf"} & names
    text = (folder / "photos.report.html").read_text()
    assert text.count('<li class="tile"') == len(result.persons) >= 3 and "<svg" not in text  # Obama and Biden:
    assert (result.persons["face_ids"].str.split().str.len() == 2).sum() >= 2  # one tile each for two photos
    assert len(list((folder / "faces").glob("P*.jpg"))) == len(result.persons)  # the best face only: no time


def test_sequence_folder_gets_moments_and_an_eaf_without_media(tmp_path: Path) -> None:
    import av

    frames = tmp_path / "frames"
    frames.mkdir()
    with av.open(str(shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4"))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == 10:
                break
            frame.to_image().save(frames / f"img{i:02d}.png")
    fervid.annotate(frames, tmp_path / "out", device="cpu", sequence=True, fps=5, video=False, plots=False,
                    elan_min_run=0.0, identity=False)  # fmt: skip
    folder = tmp_path / "out" / "frames"
    assert {"frames.eaf", "frames.moments.csv", "frames.report.html", "faces"} <= {p.name for p in folder.iterdir()}
    assert "MEDIA_DESCRIPTOR" not in (folder / "frames.eaf").read_text()  # a folder of images is no media file
    tiers = read_segments(folder / "frames.eaf")
    assert list(tiers) == ["F1", "F1 valence"]  # the label tier and (issue 32) the valence tier
    assert tiers["F1"][0][0] == 0 and tiers["F1"][-1][1] == 2000  # 10 frames at 5 fps
    assert (folder / "faces" / "F1.jpg").exists()
    moments = pd.read_csv(folder / "frames.moments.csv")  # each moment names its image (issue 36)
    assert "file" in moments.columns and all(moments["file"] == [f"img{f:02d}.png" for f in moments["frame"]])
    text = (folder / "frames.report.html").read_text()
    assert re.search(r"<br>\d+\.\d\d s, img\d\d\.png · face 1</figcaption>", text)  # the tile names the image


def test_no_report_writes_none_of_it(tmp_path: Path) -> None:
    clip = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    args = ["annotate", str(clip), "-o", str(tmp_path), "--end", "0.5", "--every", "4", "--device", "cpu",
            "--no-video", "--no-plots", "--no-report"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / clip.stem).iterdir())
    written = ("blinks.csv", "codebook.csv", "faces.csv", "persons.csv", "run.json", "summary.csv")
    assert names == [f"{clip.stem}.{n}" for n in written]
    assert not (tmp_path / "index.html").exists()


# ----------------------------------------------------------------------------------- the index
def test_annotate_writes_an_index_with_reports_and_failures_and_summarize_marks_incomplete(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("single_face.mp4", "no_face.mp4"):
        shutil.copy(shared_path(f"media/pyfeat/{name}"), corpus / name)
    (corpus / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    args = ["annotate", str(corpus), "-o", str(out), "--end", "0.5", "--device", "cpu", "--no-video"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # one input failed
    page = _Page()
    page.feed((out / "index.html").read_text())
    links = [a["href"] for tag, a in page.tags if tag == "a"]
    assert links == ["no_face/no_face.report.html", "single_face/single_face.report.html"]
    assert all((out / link).exists() for link in links)
    text = (out / "index.html").read_text()
    assert "broken.mp4" in text and "not a readable video or image file" in text and "failed" in text
    assert "neutral" in text or "happy" in text  # the dominant emotions of the input
    (out / "single_face" / "single_face.eaf").unlink()  # listed in run.json: the input is no longer complete
    summarized = CliRunner().invoke(app, ["summarize", str(out)])
    assert summarized.exit_code == 0 and "index.html" in summarized.output, summarized.output
    text = (out / "index.html").read_text()
    assert "incomplete" in text and "single_face.report.html" not in text and "no_face.report.html" in text
