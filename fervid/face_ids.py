"""Which face is which: the numbering stage between detection and classification.

Two strategies, one interface (``push(frame, detections)`` returns the frames that are ready,
in order, with the faces to keep and their ``track_id``; ``flush()`` at the end):

* :class:`TrackedFaces` (video, ``--sequence`` folders): a tracker chosen by name
  (``--tracker``), with IDs back-filled onto a track's first frames and every track ended at
  a detected shot cut;
* :class:`PhotoFaces` (independent photos): every face at or above the detection threshold,
  numbered left to right, continuing over the folder.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from fervid.shots import ShotCutDetector
from fervid.track import BackfilledTracker, FaceTracker
from fervid.types import Detections, Frame, Ready


class FaceIds(Protocol):
    """Numbers the faces of consecutive frames; may hold frames back (tracker confirmation)."""

    def push(self, frame: Frame, detections: Detections) -> Ready: ...

    def flush(self) -> Ready: ...


class TrackedFaces:
    """Track faces over time; rows of unconfirmed tracks and low-score boxes are dropped."""

    def __init__(self, tracker: FaceTracker, shot_cuts: bool = True) -> None:
        self.tracker = tracker
        self._backfill = BackfilledTracker[Frame](tracker)
        self._cuts = ShotCutDetector() if shot_cuts else None
        self._cut_ahead: dict[int, bool] = {}  # frame index -> cut, for frames asked about before push

    def is_cut(self, frame: Frame) -> bool:
        """Whether a shot cut comes just before ``frame``; asked in frame order, at most once per frame.

        The key-frame schedule (:mod:`fervid.keyframes`) asks ahead of ``push`` to detect the
        frame after a cut in full; ``push`` then reuses the answer, as the detector compares
        each frame with the one before it.
        """
        if self._cuts is None:
            return False
        cut = self._cut_ahead[frame.index] = self._cuts.is_cut(frame.image)
        return cut

    def push(self, frame: Frame, detections: Detections) -> Ready:
        cut = self._cut_ahead.pop(frame.index, None)
        if cut is None:
            cut = self._cuts is not None and self._cuts.is_cut(frame.image)
        if cut:
            self.tracker.cut()
        return self._backfill.push(frame, detections, frame.time_s)

    def flush(self) -> Ready:
        return self._backfill.flush()


def tracked_faces(face_ids: FaceIds) -> TrackedFaces | None:
    """The tracker stage of ``face_ids``, also when the identity stage wraps it (its ``faces``); None for photos."""
    inner = getattr(face_ids, "faces", face_ids)
    return inner if isinstance(inner, TrackedFaces) else None


class PhotoFaces:
    """Independent photos: faces at or above ``threshold``, numbered left to right from 1 over all photos."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._next_id = 1

    def push(self, frame: Frame, detections: Detections) -> Ready:
        kept = detections[detections.score >= self.threshold]
        kept = kept[np.argsort(kept.xyxy[:, 0], kind="stable")]
        kept.track_id = np.arange(self._next_id, self._next_id + len(kept))
        self._next_id += len(kept)
        return [(frame, kept)]

    def flush(self) -> Ready:
        return []
