"""Detect on key frames, follow faces in between: the detection schedule of ``--detect-every N``.

Full-frame RetinaFace is most of fervid's CPU time (``benchmarks/stage_costs.py``), yet faces
move little from one frame to the next. So the whole frame is searched only on **key frames**:

* every N-th frame read (the first one included);
* the frame just after a shot cut (:meth:`fervid.face_ids.TrackedFaces.is_cut`, asked ahead);
* the frame after any face followed in the previous frame is lost (its window found nothing,
  or a key frame did not find it), so a face missed once is searched for at once, as at N = 1;
* every image (frames with a ``source``): photos and ``--sequence`` folders are never followed.

On the other frames, each face the tracker matched in the previous frame (tentative ones
too) is searched for in a **window** around its predicted box: 1.5 times the box and at least
64 network pixels beyond it on every side, cut from the frame's network input on the network's
32-px grid (:meth:`fervid.detect.FaceDetector.detect_windows`), so its pixels and anchors are
the full frame's. Of the faces found there, the one that overlaps the prediction best is kept;
the frame's faces then go to the tracker as a full-frame detection would. A window with no
face leaves its track unmatched, exactly as a missed detection does. A frame whose windows
would cover most of it (``FULL_SHARE``) is searched in full: no dearer, and exact.
**New faces enter only at key frames, so up to N - 1 frames late.** With N = 1 nothing here runs.

Why not small resized windows (128 px, the obvious choice): RetinaFace's boxes and landmarks
depend on the face's scale and on what it sees around the face, far past twice the box. Resized
windows moved boxes to IoU 0.8-0.93 with the full-frame box, and the expression model flips
near-tie labels when landmarks move by a few per cent of the eye distance. Measured against
N = 1 on every clip (``benchmarks/keyframes.py``, benchmarks/RESULTS.md), even these windows
flip 1-3 % of labels on clips of several small faces, so the default stays N = 1.

Threads: the windows of a frame need the tracker's state after the frame before, so window
detection runs in the calling thread, in step with the tracker. The key frames that are
known in advance (every N-th, cuts) are detected ahead in the detector threads, as every
frame is at N = 1. A run of up to ``WINDOW_FRAMES`` frames between key frames is windowed in
one forward pass, each frame's windows predicted from the state before the run (the Kalman
filter's prediction a few frames ahead); when a face is lost inside the run, the next frame
is searched in full and the rest of the run planned again. At most ``workers * N`` frames are
held, whatever the length of the input.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator

import numpy as np
import torch

from fervid.concurrency import BoundedStage
from fervid.detect import FaceDetector, target_size
from fervid.face_ids import FaceIds, Ready, TrackedFaces
from fervid.geometry import box_iou_np, nms
from fervid.types import Detections, Frame

#: A window's side, as a multiple of the longer side of the predicted box ...
WINDOW_SCALE = 1.5
#: ... and at least this many network pixels of context beyond the box on every side.
WINDOW_CONTEXT = 64
#: A frame whose windows would cover this share of it or more is searched in full (no dearer, and exact).
FULL_SHARE = 0.75
#: At most this many consecutive frames are windowed in one forward pass.
WINDOW_FRAMES = 4


def nearest_face(found: Detections, predicted: np.ndarray) -> Detections:
    """The face of a window that overlaps the track's predicted box most (none when none overlaps it)."""
    if len(found) == 0:
        return found
    iou = box_iou_np(np.asarray(predicted).reshape(1, 4), found.xyxy)[0]
    best = int(np.argmax(iou))  # ties: the first, which scores highest (the detector's order)
    return found[best] if iou[best] > 0 else found[np.zeros(0, dtype=np.int64)]


def merge_faces(parts: list[Detections], nms_threshold: float) -> Detections:
    """One frame's faces from its windows, highest score first; a face two windows found is kept once."""
    if not parts:
        return Detections.empty()
    faces = Detections.concat(parts)
    if len(faces) < 2:
        return faces
    keep = nms(torch.from_numpy(faces.xyxy), torch.from_numpy(faces.score), nms_threshold)
    return faces[keep.numpy()]


class KeyframeSchedule:
    """Numbered faces of a video, detected on key frames and followed in windows in between.

    Args:
        detector: the run's face detector.
        faces: the numbering stage the frames go through (``push``); ``tracked`` is its tracker stage.
        tracked: the tracker and shot-cut check inside ``faces`` (:func:`fervid.face_ids.tracked_faces`).
        every: search the whole frame every ``every``-th frame (>= 2; 1 needs no schedule).
        workers: detector threads for the key frames (0: the calling thread).
    """

    def __init__(self, detector: FaceDetector, faces: FaceIds, tracked: TrackedFaces, every: int, workers: int) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.detector = detector
        self.faces = faces
        self.tracker = tracked.tracker
        self.tracked = tracked
        self.every = every
        self.workers = workers
        self._lost = False  # a face followed in the last frame pushed was not found in it
        #: Frames searched in full and in windows so far (for benchmarks and tests).
        self.key_frames = 0
        self.window_frames = 0

    def numbered(self, frames: Iterable[Frame]) -> Generator[tuple[Frame, Detections], None, None]:
        """What ``faces.push`` releases for each frame, in order (the caller flushes ``faces`` at the end)."""
        stage = BoundedStage(self._detect_key, self.workers, capacity=max(2, self.workers * self.every),
                             name="fervid-detect")  # fmt: skip
        detected = stage.map(self._scheduled(frames))
        run: list[Frame] = []
        try:
            for frame, dets in detected:
                if dets is None:
                    run.append(frame)
                    if len(run) == WINDOW_FRAMES:
                        yield from self._follow(run)
                        run = []
                    continue
                yield from self._follow(run)
                run = []
                self.key_frames += 1
                yield from self._push(frame, dets)
            yield from self._follow(run)
        finally:
            detected.close()

    def _scheduled(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, bool]]:
        """Each frame with whether it is a key frame known in advance (asks for the cut in frame order)."""
        for i, frame in enumerate(frames):
            cut = self.tracked.is_cut(frame)
            yield frame, i % self.every == 0 or cut or frame.source is not None

    def _detect_key(self, item: tuple[Frame, bool]) -> tuple[Frame, Detections | None]:
        frame, key = item
        return frame, self.detector.detect([frame.image])[0] if key else None

    def _follow(self, run: list[Frame]) -> Iterator[tuple[Frame, Detections]]:
        """Frames between key frames: windowed together, in full after a face is lost."""
        i = 0
        while i < len(run):
            if self._lost:
                self.key_frames += 1
                yield from self._push(run[i], self.detector.detect([run[i].image])[0])
                i += 1
                continue
            for frame, (dets, in_full) in zip(run[i:], self._windowed(run[i:])):
                self.key_frames += in_full
                self.window_frames += not in_full
                yield from self._push(frame, dets)
                i += 1
                if self._lost:
                    break  # the next frame is searched in full, the rest planned again

    def _windowed(self, frames: list[Frame]) -> list[tuple[Detections, bool]]:
        """Each frame's faces found in the windows of the faces followed now (in full where windows cost as much)."""
        predicted = [self.tracker.predicted(frame.time_s)[0] for frame in frames]
        full = [j for j, (f, b) in enumerate(zip(frames, predicted)) if self._window_share(f, b) >= FULL_SHARE]
        out: list[Detections | None] = [None] * len(frames)
        for j, dets in zip(full, self.detector.detect([frames[j].image for j in full]) if full else []):
            out[j] = dets
        windowed = [j for j in range(len(frames)) if out[j] is None]
        frame_of = [j for j in windowed for _ in range(len(predicted[j]))]
        boxes = np.concatenate([predicted[j] for j in windowed]) if windowed else np.zeros((0, 4))
        found = self.detector.detect_windows([f.image for f in frames], boxes, frame_of, WINDOW_SCALE, WINDOW_CONTEXT)
        parts: dict[int, list[Detections]] = {j: [] for j in windowed}
        for j, dets, box in zip(frame_of, found, boxes):
            parts[j].append(nearest_face(dets, box))
        for j in windowed:
            out[j] = merge_faces(parts[j], self.detector.nms_threshold)
        return [(dets, j in full) for j, dets in enumerate(out)]  # type: ignore[misc]

    def _window_share(self, frame: Frame, boxes: np.ndarray) -> float:
        """About how much of ``frame`` the windows around ``boxes`` cover (overlaps counted twice)."""
        if len(boxes) == 0:
            return 0.0
        height, width = frame.image.shape[:2]
        pixels = width / target_size(height, width, self.detector.det_size)[1]  # frame pixels per network pixel
        side = (boxes[:, 2:] - boxes[:, :2]).max(axis=1)
        window = np.maximum(WINDOW_SCALE * side, side + 2 * WINDOW_CONTEXT * pixels)
        return float((np.minimum(window, width) * np.minimum(window, height)).sum() / (width * height))

    def _push(self, frame: Frame, detections: Detections) -> Ready:
        followed = self.tracker.seen_keys()
        ready = self.faces.push(frame, detections)
        self._lost = bool(np.setdiff1d(followed, self.tracker.seen_keys()).size)
        return ready
