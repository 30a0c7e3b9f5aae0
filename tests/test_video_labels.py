"""The annotated pictures name every face as the tables do, even when identity merges persons at the end.

Identity decides a track's person soon after it appears, and the video is drawn with that
decision; the end of the input may still merge persons (``IdentityStage.finish``). The frame
sinks then draw again from the final faces table (``fervid.sinks.Relabelling``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from _drawn_labels import DrawnLabels
from PIL import Image

import fervid
from fervid.annotate import UNTRUSTED, FrameAnnotator, _label_rect, colour_for
from fervid.io.tables import TimelineBuilder
from fervid.options import ClassificationOptions
from fervid.sinks import FinalLabels, ImagesSink, TimelineFrames
from fervid.smooth import SmoothedResult
from fervid.types import Detections, Frame, Predictions
from tests.conftest import shared_path

HAMILTON = "media/face_recognition/short_hamilton_clip.mp4"
STEM = "short_hamilton_clip"
CLASSES = ("happy", "neutral")


# ------------------------------------------------------------------------------ small parts
@pytest.mark.parametrize(
    ("drawn", "final", "names", "disagrees"),
    [
        ([], {}, {}, False),
        ([(1, 1, None), (2, 2, None)], {1: 1, 2: 2}, {}, False),
        ([(1, 1, None), (2, 3, None)], {1: 1, 2: 1}, {}, True),  # person 3 merged into 1
        ([(1, 1, None)], {1: 1}, {1: "Ada"}, True),  # the name came at the end
        ([(1, 1, "Ada")], {1: 1}, {1: "Ada"}, False),
        ([(1, 1, "Ada")], {1: 1}, {}, True),  # the name went at the end
        ([(-1, 0, None)], {}, {}, False),  # an untracked face has no person to change
    ],
)
def test_final_labels_say_when_a_drawn_label_is_not_final(drawn, final, names, disagrees) -> None:
    assert FinalLabels(final, names).disagrees(drawn) is disagrees


def _result(index: int, image: np.ndarray, tracks: list[int], persons: list[int]) -> SmoothedResult:
    n = len(tracks)
    boxes = np.array([[10 + 60 * k, 20, 60 + 60 * k, 80] for k in range(n)], dtype=np.float32).reshape(-1, 4)
    landmarks = np.repeat(boxes[:, None, :2] + 20, 5, axis=1)
    detections = Detections(boxes, np.full(n, 0.9, np.float32), landmarks, np.array(tracks), np.array(persons))
    probs = np.tile(np.array([[0.8, 0.2]], np.float32), (n, 1))
    return SmoothedResult(Frame(index, float(index), image, source=f"photo{index}.png"), detections,
                          Predictions(probs, CLASSES))  # fmt: skip


def _timeline(results: list[SmoothedResult], person_of_track: dict[int, int]) -> pd.DataFrame:
    builder = TimelineBuilder(CLASSES, with_file=True)
    for result in results:
        builder.add(result)
    table = builder.frame()
    table.insert(table.columns.get_loc("face_id") + 1, "person_id", table["face_id"].map(person_of_track))
    return table


def test_timeline_frames_give_back_each_frames_faces() -> None:
    image = np.zeros((120, 200, 3), np.uint8)
    results = [_result(0, image, [1, 2], [1, 2]), _result(2, image, [2], [2])]
    faces = TimelineFrames(_timeline(results, {1: 1, 2: 1}), CLASSES)
    detections, shown = faces.at(0)
    np.testing.assert_array_equal(detections.xyxy, results[0].detections.xyxy)
    assert detections.track_id.tolist() == [1, 2] and detections.person_id.tolist() == [1, 1]
    np.testing.assert_allclose(shown.probs, results[0].predictions.probs)
    assert len(faces.at(1)[0]) == 0 and faces.at(2)[0].track_id.tolist() == [2]


def _label_colour(image: np.ndarray, box: np.ndarray, text: str) -> np.ndarray:
    """The colour of a label's tag: the median over its rectangle (the thin letters are a minority)."""
    annotator = FrameAnnotator()
    left, top, right, bottom = _label_rect(image.shape, box, text, annotator._style(image.shape))
    return np.median(image[top + 1 : bottom, left + 1 : right].reshape(-1, 3), axis=0).astype(int)


def test_photos_drawn_with_a_person_merged_at_the_end_are_drawn_again(tmp_path: Path) -> None:
    sources = tmp_path / "photos"
    sources.mkdir()
    images = []
    for k in range(2):
        image = np.full((120, 200, 3), 40 + 60 * k, np.uint8)
        Image.fromarray(image).save(sources / f"photo{k}.png")
        images.append(image)
    sink = ImagesSink(tmp_path / "annotated", FrameAnnotator(), source_of=lambda i: sources / f"photo{i}.png")
    results = [_result(0, images[0], [1], [1]), _result(1, images[1], [2], [2])]
    for result in results:
        sink.add(result)
    sink.close()
    untouched = (tmp_path / "annotated" / "photo0.png").stat().st_mtime_ns
    labels = FinalLabels({1: 1, 2: 1})  # the end of the input found both photos show person 1
    assert sink.relabel(_timeline(results, labels.person_of_track), CLASSES, labels) is True
    redrawn = np.asarray(Image.open(tmp_path / "annotated" / "photo1.png"))
    np.testing.assert_array_equal(_label_colour(redrawn, results[1].detections.xyxy[0], "P1 happy 0.80"),
                                  colour_for(1))  # fmt: skip
    assert (tmp_path / "annotated" / "photo0.png").stat().st_mtime_ns == untouched  # already right
    assert sink.relabel(_timeline(results, labels.person_of_track), CLASSES, labels) is False


# ------------------------------------------------------------------------------- real video
@pytest.fixture(scope="module")
def hamilton_smoothed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, pd.DataFrame, Path, dict]:
    """The Hamilton clip as in the researcher's trial (``--smooth 0.5``), with every drawn label recorded."""
    source = shared_path(HAMILTON)
    out = tmp_path_factory.mktemp("labels")
    with pytest.MonkeyPatch.context() as monkeypatch:
        spy = DrawnLabels(monkeypatch)
        result = fervid.annotate(source, out, device="cpu", smooth=0.5, report=False, plots=False)
    faces = pd.read_csv(out / STEM / f"{STEM}.faces.csv")
    return spy.by_frame, faces, out / STEM, result.run


@pytest.mark.slow
def test_hamilton_merges_a_person_at_the_end(hamilton_smoothed) -> None:
    """The case this file is about happens on this clip: without it the tests below would prove little."""
    run = hamilton_smoothed[3]
    assert run["identity"]["tracks_relabelled_at_end"], run["identity"]
    assert run["identity"]["pictures_redrawn"] is True


@pytest.mark.slow
def test_every_label_drawn_in_the_video_is_the_faces_tables_person(hamilton_smoothed) -> None:
    """Each face's label names the table's person_id, in that person's colour, or in grey with ``?`` when the face
    is not trusted (not readable, or p_correct below the default threshold)."""
    drawn, faces, _, _ = hamilton_smoothed
    trusted = faces["readable"] & (faces["p_correct"] >= ClassificationOptions().min_p_correct)
    table = defaultdict(list)
    for row, good in zip(faces.itertuples(index=False), trusted):
        person = int(row.person_id)
        table[int(row.frame)].append((person, colour_for(person) if good else UNTRUSTED, not good))
    assert set(drawn) >= set(table)  # every frame with faces was written
    for frame, labels in drawn.items():
        shown = sorted(
            (int(re.match(r"P(\d+) ", text).group(1)), colour, text.endswith(" ?")) for text, colour in labels
        )
        assert shown == sorted(table.get(frame, [])), f"frame {frame}: video {shown}, table {table.get(frame)}"
    assert any(not good for labels in table.values() for _, _, good in labels)  # both kinds are drawn


@pytest.mark.slow
def test_the_encoded_video_shows_the_singers_table_colour_at_frame_90(hamilton_smoothed) -> None:
    """Frame 90 of the trial: the singer was drawn as P10 in pink while the tables call him P2, in green."""
    drawn, faces, folder, _ = hamilton_smoothed
    with av.open(str(folder / f"{STEM}.annotated.mp4")) as container:
        image = next(f for i, f in enumerate(container.decode(video=0)) if i == 90).to_ndarray(format="rgb24")
    rows = faces[faces["frame"] == 90]
    assert len(rows) >= 1
    for row in rows.itertuples(index=False):
        text = next(t for t, _ in drawn[90] if t.startswith(f"P{int(row.person_id)} "))
        seen = _label_colour(image, np.array([row.x1, row.y1, row.x2, row.y2]), text)
        trusted = row.readable and row.p_correct >= ClassificationOptions().min_p_correct
        expected = colour_for(int(row.person_id)) if trusted else UNTRUSTED
        assert np.abs(seen - np.array(expected)).max() <= 40, (row.person_id, trusted, seen)
        assert np.abs(seen - np.array(colour_for(10))).max() > 40  # not P10's pink, as in the trial
