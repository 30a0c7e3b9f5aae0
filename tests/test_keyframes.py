"""Issue 33: detect on key frames, follow faces in windows in between (``--detect-every N``)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from typer.testing import CliRunner

from fervid.cli import app
from fervid.detect import FaceDetector, grid_windows
from fervid.face_ids import TrackedFaces, tracked_faces
from fervid.io.video import VideoReader
from fervid.keyframes import KeyframeSchedule, merge_faces, nearest_face
from fervid.options import DETECT_EVERY, AnnotateOptions
from fervid.pipeline import Pipeline
from fervid.shots import ShotCutDetector
from fervid.track import FaceTracker
from fervid.types import Detections, Frame

HAMILTON = "media/face_recognition/short_hamilton_clip.mp4"  # several faces, shot cuts
WOLFGANG = "media/pyfeat/WolfgangLanger_Pexels.mp4"  # one face
NOFACE_FACE = "media/pyfeat/noface_face.mov"  # a face comes in after empty frames
MOT20 = "media/dlib_ffmpeg/MOT20-05-raw_even_shorter.mp4"  # faint faces in a crowd


def _frames(relative: str, count: int) -> list[Frame]:
    with VideoReader(shared_path(relative)) as reader:
        return [f for _, f in zip(range(count), reader)]


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return AnnotateOptions().detection.build("cpu")


def _tracked() -> TrackedFaces:
    options = AnnotateOptions()
    return TrackedFaces(options.tracking.build(options.detection, 30.0))


def _same(a: list[tuple[Frame, Detections]], b: list[tuple[Frame, Detections]]) -> None:
    assert [f.index for f, _ in a] == [f.index for f, _ in b]
    for (_, x), (_, y) in zip(a, b):
        assert x.xyxy.tobytes() == y.xyxy.tobytes() and x.landmarks.tobytes() == y.landmarks.tobytes()
        assert x.score.tobytes() == y.score.tobytes() and x.track_id.tolist() == y.track_id.tolist()


# --- the schedule ---------------------------------------------------------------------------------


def test_every_frame_a_key_frame_gives_the_full_frame_path_exactly(detector: FaceDetector) -> None:
    """With every frame searched in full, the schedule's machinery (cuts asked ahead, the look-ahead
    stage) changes nothing: the same boxes, bytes for bytes, and the same IDs as detect-then-push."""
    frames = _frames(HAMILTON, 90)  # two shot cuts in the first 90 frames
    plain_faces = _tracked()
    plain = [p for f in frames for p in plain_faces.push(f, detector.detect([f.image])[0])] + plain_faces.flush()
    for workers in (0, 2):
        faces = _tracked()
        schedule = KeyframeSchedule(detector, faces, faces, every=1, workers=workers)
        followed = [*schedule.numbered(iter(frames)), *faces.flush()]
        _same(followed, plain)
        assert schedule.key_frames == len(frames) and schedule.window_frames == 0
    assert sum(len(d) for _, d in plain) > 100


def test_a_shot_cut_forces_a_key_frame(detector: FaceDetector) -> None:
    frames = _frames(HAMILTON, 90)
    cuts = ShotCutDetector()
    cut_at = [i for i, f in enumerate(frames) if cuts.is_cut(f.image)]
    assert cut_at, "the clip has shot cuts in its first 90 frames"
    faces = _tracked()
    schedule = KeyframeSchedule(detector, faces, faces, every=1000, workers=0)
    keys = [i for i, (_, key) in enumerate(schedule._scheduled(iter(frames))) if key]
    assert keys == [0, *cut_at]


def test_images_are_always_searched_in_full(detector: FaceDetector) -> None:
    """A --sequence folder is tracked, but its frames (images, with a ``source``) are never followed in windows."""
    images = [Frame(i, float(i), np.full((64, 64, 3), 10, np.uint8), source=f"{i}.jpg") for i in range(6)]
    faces = _tracked()
    keys = [key for _, key in KeyframeSchedule(detector, faces, faces, every=4, workers=0)._scheduled(iter(images))]
    assert keys == [True] * len(images)
    video = [Frame(i, i / 30, np.zeros((64, 64, 3), np.uint8)) for i in range(6)]
    faces = _tracked()
    keys = [key for _, key in KeyframeSchedule(detector, faces, faces, every=4, workers=0)._scheduled(iter(video))]
    assert keys == [True, False, False, False, True, False]


def test_a_face_coming_in_is_found_by_the_next_key_frame(detector: FaceDetector) -> None:
    frames = _frames(NOFACE_FACE, 170)
    every = 8
    first = {}
    for n in (1, every):
        faces = _tracked()
        rows = [*KeyframeSchedule(detector, faces, faces, every=n, workers=0).numbered(iter(frames)), *faces.flush()]
        first[n] = next(f.index for f, d in rows if len(d))
    assert first[1] > 0, "the clip starts without a face"
    late = first[every] - first[1]
    assert 0 <= late <= every - 1, first
    assert first[every] % every == 0 or late == 0  # found on a key frame (the faces are back-filled to it)


def test_a_face_lost_in_its_window_ends_its_track_and_the_next_frame_is_searched_in_full(
    detector: FaceDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MOT20's faint faces at N = 4: a face followed in windows is not found in its window on some frame; its track
    ends there, as after a missed detection, and the next frame is searched in full although it is not a 4th one."""
    frames = _frames(MOT20, 40)
    index_of = {id(f.image): f.index for f in frames}
    searched: list[int] = []
    full_search = detector.detect

    def detect(images: list[np.ndarray]) -> list[Detections]:
        searched.extend(index_of[id(image)] for image in images)
        return full_search(images)

    monkeypatch.setattr(detector, "detect", detect)
    faces = _tracked()
    schedule = KeyframeSchedule(detector, faces, faces, every=4, workers=0)
    rows = [*schedule.numbered(iter(frames)), *faces.flush()]
    seen: dict[int, list[int]] = {}
    for frame, dets in rows:
        for track in dets.track_id.tolist():
            seen.setdefault(track, []).append(frame.index)
    ends = [f[-1] for f in seen.values() if f[-1] < frames[-1].index - 1]
    lost_in_window = [e for e in ends if e + 1 not in searched]
    assert lost_in_window, (seen, str(searched))  # the clip has such a loss (a window that found nothing)
    for end in lost_in_window:
        assert (end + 2) % 4 and end + 2 in searched, (end, str(searched))  # not a 4th frame, yet searched in full
    assert schedule.window_frames > 0 and schedule.key_frames > len(frames) // 4


def test_followed_faces_keep_their_track_between_key_frames(detector: FaceDetector) -> None:
    frames = _frames(WOLFGANG, 48)
    faces = _tracked()
    schedule = KeyframeSchedule(detector, faces, faces, every=8, workers=0)
    rows = [*schedule.numbered(iter(frames)), *faces.flush()]
    assert [d.track_id.tolist() for _, d in rows] == [[1]] * len(frames)
    assert schedule.window_frames > 0 and schedule.key_frames + schedule.window_frames == len(frames)


def test_the_schedule_holds_a_bounded_number_of_frames(detector: FaceDetector) -> None:
    """Memory stays flat with length: frames are released a bounded number of frames after they are read."""
    frames = _frames(WOLFGANG, 64)
    read: list[int] = []

    def source() -> Iterator[Frame]:
        for frame in frames:
            read.append(frame.index)
            yield frame

    faces = _tracked()
    lead = []
    for frame, _ in KeyframeSchedule(detector, faces, faces, every=8, workers=2).numbered(source()):
        lead.append(len(read) - frame.index)
    assert max(lead) <= 2 * 8 + 4 + 2  # the detector threads' look-ahead, a window run, the tracker's hold-back


def test_tracked_faces_finds_the_tracker_inside_the_identity_stage() -> None:
    faces = _tracked()

    class Wrapped:
        def __init__(self, inner: TrackedFaces) -> None:
            self.faces = inner

    assert tracked_faces(faces) is faces and tracked_faces(Wrapped(faces)) is faces  # type: ignore[arg-type]
    assert tracked_faces(object()) is None  # type: ignore[arg-type]


# --- windows --------------------------------------------------------------------------------------


def test_a_window_over_the_whole_frame_finds_what_the_full_frame_search_finds(detector: FaceDetector) -> None:
    frames = _frames(HAMILTON, 3)
    full = detector.detect([f.image for f in frames])
    boxes = np.array([[300.0, 170.0, 340.0, 190.0]] * len(frames))  # a window grown past every edge
    found = detector.detect_windows([f.image for f in frames], boxes, range(len(frames)), margin=40.0)
    for a, b in zip(found, full, strict=True):  # the same pixels and anchors; the padded size may change
        assert len(a) == len(b) > 0  # the convolutions' summation order, hence the hundredths of a pixel
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.05)


def test_a_window_finds_its_face_where_the_full_frame_does(detector: FaceDetector) -> None:
    (frame,) = _frames(WOLFGANG, 1)
    (full,) = detector.detect([frame.image])
    face = full[full.score >= 0.6]
    (found,) = detector.detect_windows([frame.image], face.xyxy, [0], margin=1.5, context=64)
    best = nearest_face(found, face.xyxy[0])
    assert len(best) == 1
    np.testing.assert_allclose(best.xyxy, face.xyxy, atol=2.0)


def test_empty_inputs(detector: FaceDetector) -> None:
    (frame,) = _frames(WOLFGANG, 1)
    assert detector.detect_windows([frame.image], np.zeros((0, 4)), []) == []
    assert len(nearest_face(Detections.empty(), np.array([0, 0, 10, 10.0]))) == 0
    assert len(merge_faces([], 0.4)) == 0


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([100, 100, 120, 120], [32, 32, 192, 192]),  # 64 px of context each side, snapped outwards to the grid
        ([0, 0, 20, 20], [0, 0, 96, 96]),  # held inside the frame
        ([600, 330, 640, 360], [512, 256, 640, 384]),  # up to the frame's padded edge
    ],
)
def test_grid_windows(box: list[float], expected: list[int]) -> None:
    assert grid_windows(np.array([box], float), 1.5, 640, 384, context=64).tolist() == [expected]


def test_nearest_face_keeps_the_best_overlap_and_drops_faces_far_away() -> None:
    found = Detections(np.array([[0, 0, 10, 10], [50, 50, 70, 70]], float), np.array([0.9, 0.8]), np.zeros((2, 5, 2)))
    assert nearest_face(found, np.array([52, 52, 72, 72.0])).score.tolist() == [pytest.approx(0.8)]
    assert len(nearest_face(found, np.array([200, 200, 220, 220.0]))) == 0


def test_merge_faces_keeps_a_face_two_windows_found_once() -> None:
    a = Detections(np.array([[0, 0, 10, 10]], float), np.array([0.7]), np.zeros((1, 5, 2)))
    b = Detections(np.array([[1, 0, 11, 10]], float), np.array([0.9]), np.zeros((1, 5, 2)))
    c = Detections(np.array([[50, 50, 60, 60]], float), np.array([0.8]), np.zeros((1, 5, 2)))
    assert merge_faces([a, b, c], 0.4).score.tolist() == pytest.approx([0.9, 0.8])


def test_the_tracker_predicts_only_faces_seen_in_the_last_frame() -> None:
    tracker = FaceTracker(min_hits=1)
    face = Detections(np.array([[10, 10, 50, 50]], float), np.array([0.95]), np.zeros((1, 5, 2)))
    tracker.update(face, 0.0)
    boxes, keys = tracker.predicted(1 / 30)
    np.testing.assert_allclose(boxes, [[10, 10, 50, 50]], atol=1e-6)
    assert keys.tolist() == tracker.seen_keys().tolist() and len(keys) == 1
    tracker.update(Detections.empty(), 1 / 30)
    assert len(tracker.predicted(2 / 30)[0]) == 0 and len(tracker.seen_keys()) == 0


# --- the option -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1"])
def test_detect_every_below_1_is_a_usage_error(value: str, tmp_path: Path) -> None:
    clip = shared_path(WOLFGANG)
    result = CliRunner().invoke(app, ["annotate", str(clip), "-o", str(tmp_path / "out"), "--detect-every", value])
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert "Invalid value for '--detect-every'" in output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="detect_every must be >= 1"):
        AnnotateOptions.from_flat(detect_every=int(value))


def test_detect_every_is_recorded_in_run_json(tmp_path: Path) -> None:
    clip = shared_path(WOLFGANG)
    pipeline = Pipeline(AnnotateOptions.from_flat(video=False, report=False, plots=False, end=0.5, detect_every=3))
    result = pipeline.run(clip, None, "clip")
    assert result.run["options"]["detect_every"] == 3


# --- equality with N = 1 on a real clip (slow) ----------------------------------------------------


def _benchmark() -> object:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "keyframes.py"
    spec = importlib.util.spec_from_file_location("keyframes_benchmark", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.slow
@pytest.mark.parametrize("clip", [WOLFGANG, HAMILTON])
def test_the_default_keeps_the_timelines_of_every_frame(clip: str) -> None:
    if DETECT_EVERY == 1:
        pytest.skip("the default is --detect-every 1, the full-frame path itself (no N >= 2 keeps the timelines on "
                    "every clip, benchmarks/RESULTS.md), so there is nothing to compare; "
                    "test_every_frame_a_key_frame_gives_the_full_frame_path_exactly covers it")  # fmt: skip
    bench = _benchmark()
    pipeline = Pipeline(AnnotateOptions.from_flat(video=False, report=False, plots=False))
    reference, _, _ = bench.run(pipeline, shared_path(clip), 1, None)  # type: ignore[attr-defined]
    default, _, _ = bench.run(pipeline, shared_path(clip), DETECT_EVERY, None)  # type: ignore[attr-defined]
    agreement = bench.compare(reference, default)  # type: ignore[attr-defined]
    assert isinstance(reference, pd.DataFrame) and len(reference) > 0
    assert agreement.ok, agreement


def test_detection_sensitivity_script_prints_its_table(tmp_path: Path) -> None:
    """benchmarks/detection_sensitivity.py (why no cheaper detection keeps the timelines) runs on a real clip."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "detection_sensitivity.py"
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(script), str(shared_path("media/pyfeat/single_face.mp4")), "--det-size", "320",
         "--results", str(results)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in results.read_text().splitlines() if line.startswith("| single_face.mp4 |")]
    assert [row.split(" | ")[1] for row in rows] == ["det-size 640, float32", "det-size 320", "bfloat16"], rows
    assert all(row.rstrip(" |").endswith(("yes", "no")) for row in rows[1:]), rows
