"""Parts of the report without models or media: streamed peaks equal the whole-timeline smoothing,
gallery scoring and sampling, ELAN time and media helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fervid.report.elan import mime_type, to_ms
from fervid.report.gallery import GALLERY_FILE, SPREAD, FaceCrop, TrackPictures, alone, face_crop, remove_stale
from fervid.report.moments import MAX_HELD_BYTES, MOMENT_FILE, PeakCollector, Smoothing
from fervid.smooth import smooth_probs
from fervid.types import EMOTIONS, Detections, Frame, Predictions


def _stream(seed: int) -> tuple[list[tuple[Frame, Detections, Predictions]], np.ndarray, np.ndarray, np.ndarray]:
    """Two tracks over 60 frames with gaps and jittered times; also the flat rows (time, track, probs)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    items, times, tracks, probs = [], [], [], []
    t = 0.0
    for index in range(60):
        t += rng.uniform(0.02, 0.06)
        present = [k for k in (1, 2) if rng.random() > 0.25]
        p = rng.dirichlet(np.ones(len(EMOTIONS)) * 0.5, size=len(present)).astype(np.float32)
        boxes = np.array([[10 + 60 * (k - 1), 10, 50 + 60 * (k - 1), 60] for k in present], dtype=np.float32)
        dets = Detections(boxes.reshape(-1, 4), np.ones(len(present)), np.zeros((len(present), 5, 2)), present)
        items.append((Frame(index, t, image), dets, Predictions(p, EMOTIONS)))
        times += [t] * len(present)
        tracks += present
        probs.append(p)
    return items, np.array(times), np.array(tracks), np.concatenate(probs)


@pytest.mark.parametrize(("window", "mode"), [(0.2, "centred"), (0.5, "centred"), (0.3, "causal")])
@pytest.mark.parametrize(("seed", "held"), [(0, MAX_HELD_BYTES), (1, MAX_HELD_BYTES), (2, 0)])
def test_streamed_peaks_are_the_peaks_of_the_whole_timeline_smoothing(
    window: float, mode: str, seed: int, held: int
) -> None:
    """Also with no frame held at all (``held=0``: every face cut as it arrives, the memory cap's fallback)."""
    items, times, tracks, probs = _stream(seed)
    collector = PeakCollector(Smoothing(window, mode, True), threshold=0.3, max_held_bytes=held)
    for frame, dets, preds in items:
        collector.add(frame, dets, preds)
    peaks = collector.finish()
    smoothed = smooth_probs(times, tracks, probs, window, mode)
    expected = {}
    for k in (1, 2):
        rows = np.flatnonzero(tracks == k)
        for j, emotion in enumerate(EMOTIONS):
            best = rows[np.argmax(smoothed[rows, j])]
            if emotion != "neutral" and smoothed[best, j] >= 0.3:
                expected[(k, emotion)] = (smoothed[best, j], times[best])
    assert set(peaks) == set(expected)
    for key, (value, time_s) in expected.items():
        assert peaks[key].value == pytest.approx(value, abs=1e-6) and peaks[key].time_s == time_s
        assert peaks[key].jpeg[:2] == b"\xff\xd8"  # a JPEG thumbnail
    assert collector._tracks == {} and not collector._held  # nothing held once the input is done


def test_photos_have_no_moments() -> None:
    collector = PeakCollector(Smoothing(0.5, "centred", False), threshold=0.0)
    dets = Detections(np.array([[10, 10, 50, 60]]), np.ones(1), np.zeros((1, 5, 2)), [1])
    collector.add(Frame(0, float("nan"), np.zeros((80, 80, 3), np.uint8)), dets, Predictions(np.eye(8)[:1], EMOTIONS))
    assert collector.finish() == {}


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([[0, 0, 40, 40]], [1.0]),
        ([[0, 0, 40, 40], [500, 500, 540, 540]], [1.0, 1.0]),  # far apart: each alone
        ([[0, 0, 40, 40], [45, 0, 85, 40]], [0.825**2] * 2),  # 7 of the neighbour's 40 px inside each crop
        ([[0, 0, 40, 40], [20, 0, 60, 40]], [0.2**2 * 0.01] * 2),  # overlapping boxes: occluded or straddling
    ],
)
def test_a_face_alone_in_its_crop_ranks_higher(boxes: list[list[float]], expected: list[float]) -> None:
    np.testing.assert_allclose(alone(np.array(boxes, dtype=np.float32)), expected, rtol=0.05, atol=1e-6)


def test_spread_samples_stay_few_and_cover_the_track() -> None:
    track = TrackPictures(0.0)
    for second in range(100):
        track.roll(second + 0.5)
        track.bucket = FaceCrop(1.0, second + 0.5, second, 1, (0, 0, 1, 1), b"")
    track.finish()
    times = [c.time_s for c in track.samples]
    assert len(times) <= 2 * SPREAD + 1 and times == sorted(times)
    assert times[0] < 20 and times[-1] > 80  # early and late faces kept


def test_face_crop_pads_beyond_the_image() -> None:
    image = np.full((100, 100, 3), 200, dtype=np.uint8)
    crop = face_crop(image, np.array([-20, -20, 20, 20]), size=64)
    assert crop.shape == (64, 64, 3) and crop[0, 0].tolist() == [24, 24, 24] and crop[-1, -1].tolist() == [200] * 3


@pytest.mark.parametrize(
    ("name", "mime"),
    [("a.mp4", "video/mp4"), ("a.MOV", "video/quicktime"), ("a.mpg", "video/mpeg"), ("a.wav", "audio/x-wav"),
     ("a.mkv", "video/*")],
)  # fmt: skip
def test_mime_types_are_elans(name: str, mime: str) -> None:
    assert mime_type(Path(name)) == mime


def test_elan_milliseconds() -> None:
    assert to_ms(0.8520191) == 852 and to_ms(1.0, origin_s=1.4) == 0 and to_ms(2.0, origin_s=1.4) == 600


def test_a_rerun_removes_the_gallery_files_of_persons_that_are_gone(tmp_path: Path) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    for name in ("P1.jpg", "P2.jpg", "P2-1.jpg", "notes.txt", ".P1.partial-1.jpg"):
        (faces / name).write_bytes(b"x")
    remove_stale(faces, {faces / "P1.jpg"}, GALLERY_FILE)
    assert sorted(p.name for p in faces.iterdir()) == [".P1.partial-1.jpg", "P1.jpg", "notes.txt"]
    (tmp_path / "moments").mkdir()
    (tmp_path / "moments" / "P3-happy.jpg").write_bytes(b"x")
    remove_stale(tmp_path / "moments", set(), MOMENT_FILE)
    assert not (tmp_path / "moments").exists()  # an emptied folder goes too


def test_subjects_are_persons_with_their_names_or_tracks_without_identity() -> None:
    import pandas as pd

    from fervid.report.subjects import subjects_of

    timeline = pd.DataFrame({"face_id": [1, 2, 3, 3, 4], "person_id": [1, 2, 1, 1, 0],
                             "person": ["ada", "", "ada", "ada", ""], "time_s": [0.0, 0.0, 1.0, 1.1, 2.0]})  # fmt: skip
    subjects = subjects_of(timeline)
    assert [(s.label, s.name, s.tracks, s.title) for s in subjects] == [("P1", "ada", (1, 3), "P1 ada"),
                                                                        ("P2", "", (2,), "P2")]  # fmt: skip
    tracks = subjects_of(timeline.drop(columns=["person_id", "person"]))
    assert [s.label for s in tracks] == ["F1", "F2", "F3", "F4"] and tracks[0].colour.startswith("#")
