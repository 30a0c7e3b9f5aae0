"""The report and the index for what researchers feed them (issue 36): folders of photos of different sizes,
variable-frame-rate video cut with ``--end``.

Photos have no time: their report names each face's file, gives the range of picture sizes and never speaks of
time on screen. A video processed in part states the file's duration and the time processed, alike in the
report and in ``OUT/index.html``. Both pages are checked in headless Chromium at 1280 px: the numbers table fits.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _browser import NUMBERS_OVERFLOW, measure
from conftest import shared_path

import fervid
from fervid.api import read_table
from fervid.report.index import write_index

#: Three photos of three sizes (512 × 512, 572 × 562, 1000 × 667), one face, one face, five faces.
PHOTOS = ("0-f1-su-ph.jpg", "single_face.jpg", "multi_face.jpg")
NAME = "Maximiliana Featherstonehaugh-Smythe"


def section(text: str, name: str) -> str:
    """The HTML of ``<section id="name">``."""
    start = text.index(f'<section id="{name}"')
    return text[start : text.index("</section>", start)]


def facts_of(text: str) -> dict[str, str]:
    """The report's input facts (name -> value)."""
    return dict(re.findall(r'<tr><th scope="row">(.*?)</th><td>(.*?)</td></tr>', section(text, "facts")))


def column_heads(text: str) -> list[str]:
    return re.findall(r'<th scope="col"[^>]*>(.*?)</th>', section(text, "numbers"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three photos of different sizes, annotated with one known person (a long name)."""
    root = tmp_path_factory.mktemp("photos")
    folder, people = root / "photos", root / "people"
    folder.mkdir()
    people.mkdir()
    for name in PHOTOS:
        shutil.copy(shared_path(f"media/pyfeat/{name}"), folder / name)
    shutil.copy(folder / PHOTOS[0], people / f"{NAME}.jpg")
    fervid.annotate(folder, root / "out", device="cpu", video=False, people=people)
    return root / "out" / "photos"


def test_photo_folder_run_json_and_report_give_the_range_of_picture_sizes(photos: Path) -> None:
    """Issue 36, item 3: not the first photo's 512 × 512 px for all of them."""
    facts = json.loads((photos / "photos.run.json").read_text())["input"]
    assert facts["picture_sizes"] == {"sizes": 3, "smallest": [512, 512], "largest": [1000, 667]}
    assert facts["width"] is None and facts["height"] is None  # no one size is right for every photo
    report = facts_of((photos / "photos.report.html").read_text())
    assert report["Picture"] == "512 × 512 to 1000 × 667 px (3 sizes)"


def test_photo_tables_and_gallery_name_the_file_of_each_face(photos: Path) -> None:
    """Issue 36, item 4: summary.csv has ``file``, persons.csv ``files``, the gallery tiles name the photo."""
    faces = read_table(photos / "photos.faces.csv")
    summary = read_table(photos / "photos.summary.csv")
    persons = read_table(photos / "photos.persons.csv")
    assert summary.columns[:3].tolist() == ["face_id", "person_id", "file"]
    assert summary.set_index("face_id")["file"].to_dict() == faces.set_index("face_id")["file"].to_dict()
    assert sorted(set(summary["file"])) == sorted(PHOTOS) and (summary["file"] == "multi_face.jpg").sum() == 5
    assert persons.columns[:4].tolist() == ["person_id", "person", "face_ids", "files"]
    for _, person in persons.iterrows():
        ids = [int(i) for i in person["face_ids"].split()]
        assert person["files"].split(" | ") == [summary.set_index("face_id").loc[i, "file"] for i in ids]
    assert persons["visible_s"].isna().all() and summary["visible_s"].isna().all()  # photos have no time
    text = (photos / "photos.report.html").read_text()
    captions = re.findall(r"<br>(.*?)</figcaption>", section(text, "gallery"))
    assert len(captions) == len(persons)
    assert all(re.fullmatch(r"[\w.-]+\.jpg · face \d+", c) for c in captions), captions  # not "frame 2 · face 3"
    named = persons[persons["person"] == NAME]
    assert len(named) >= 1 and "0-f1-su-ph.jpg" in named["files"].iloc[0]


def test_photo_report_speaks_of_photos_not_time(photos: Path) -> None:
    text = (photos / "photos.report.html").read_text()
    lowered = text.lower()
    for timely in ("over time", "time on screen", "first seen", "last seen", "visible", "frames processed",
                   "frame rate"):  # fmt: skip
        assert timely not in lowered, timely
    facts = facts_of(text)
    assert facts["Processed"] == "3 photos" and facts["Kind"] == "folder of photos" and "Duration" not in facts
    heads = column_heads(text)
    assert heads[:7] == ["ID", "Name", "Face IDs", "Photos", "Faces", "Readable", "Dominant"]  # names given: Name
    assert re.search(rf"<td class=\"list\">{NAME}</td>", text)


def test_photo_report_fits_1280_px_with_a_long_name(photos: Path, tmp_path: Path) -> None:
    found = measure(photos / "photos.report.html", tmp_path, {"overflow": NUMBERS_OVERFLOW,
                    "page": "document.documentElement.scrollWidth - innerWidth"})  # fmt: skip
    assert found == {"overflow": 0, "page": 0}


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """face_noface.mov (6.4 s, variable frame rate) processed to 3 s, with the index ``fervid summarize`` writes."""
    out = tmp_path_factory.mktemp("cut")
    fervid.annotate(shared_path("media/pyfeat/face_noface.mov"), out, device="cpu", end=3, video=False, plots=False)
    write_index(out)
    return out


def test_report_and_index_state_the_duration_and_the_time_processed_alike(cut_video: Path) -> None:
    """The whole file is 6.40 s; 0-2.99 s was processed. The index gave the file's duration only."""
    text = (cut_video / "face_noface" / "face_noface.report.html").read_text()
    facts = facts_of(text)
    assert facts["Duration"] == "6.40 s (the whole file)"
    assert facts["Processed"] == "0.00 s – 2.99 s (88 frames)"
    index = (cut_video / "index.html").read_text()
    cells = re.findall(r"<td>(.*?)</td>", index[index.index('<th scope="row">face_noface</th>') :])
    assert cells[2:4] == ["6.40 s", "0.00 s – 2.99 s (88 frames)"]  # kind, persons, duration, processed


def test_video_report_hides_the_name_column_without_names_and_shows_visible_time(cut_video: Path) -> None:
    text = (cut_video / "face_noface" / "face_noface.report.html").read_text()
    heads = column_heads(text)
    assert "Name" not in heads  # no --people: the column would be all dashes
    assert heads[:8] == ["ID", "Face IDs", "First seen", "Last seen", "Frames", "Visible", "Readable", "Dominant"]
    assert heads[8:] == list(fervid.api.load(cut_video / "face_noface").classes)
    row = re.search(r'<tr><th scope="row">P1</th>(.*?)</tr>', section(text, "numbers"), re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[3:5] == ["72", "2.4 s"]  # 72 frames 1/30 s apart; the average rate made it 2.7 s
    persons = pd.read_csv(cut_video / "face_noface" / "face_noface.persons.csv")
    assert persons["visible_s"].iloc[0] == pytest.approx(2.4, abs=0.01)


def test_video_report_and_index_fit_1280_px(cut_video: Path, tmp_path: Path) -> None:
    found = measure(cut_video / "face_noface" / "face_noface.report.html", tmp_path, {"overflow": NUMBERS_OVERFLOW})
    assert found == {"overflow": 0}
    found = measure(cut_video / "index.html", tmp_path, {"overflow": NUMBERS_OVERFLOW})
    assert found == {"overflow": 0}


def test_a_photo_without_faces_says_so_in_words_for_one_photo(tmp_path: Path) -> None:
    fervid.annotate(shared_path("media/fer/no-faces.jpg"), tmp_path, device="cpu", video=False, identity=False)
    text = (tmp_path / "no-faces" / "no-faces.report.html").read_text()
    numbers = section(text, "numbers")
    assert "No faces were found" in numbers and "<table" not in numbers  # not an empty table
    assert "Who is who in this photo," in text and "one row per face track" not in text
    facts = facts_of(text)
    assert (facts["Kind"], facts["Processed"], facts["Faces"], facts["Picture"]) == ("photo", "1 photo", "0",
                                                                                     "199 × 148 px")  # fmt: skip
    write_index(tmp_path)
    assert "<td>0 faces</td>" in (tmp_path / "index.html").read_text()  # photos have faces, not tracks
