"""ByteTrack-style face tracking: stable IDs for faces across frames.

Every face gets a constant-velocity Kalman filter on ``(cx, cy, w/h, h)``. Each
``update`` predicts all tracks to the frame's time, then associates detections in
the ByteTrack cascade:

1. confirmed tracks (seen last frame or lost) <-> high-score detections, by IoU
   with the Hungarian algorithm, gated by ``match_iou``;
2. confirmed tracks that were seen last frame and are still unmatched <-> low-score
   detections, gated by ``second_match_iou`` (an occluded or blurred face keeps its
   track, but a low-score box never starts one);
3. tentative tracks <-> the remaining high-score detections, gated by ``match_iou``;
   a tentative track that misses a frame is dropped, so hits are consecutive;
4. remaining detections with score >= ``new_track_threshold`` start tentative tracks.

Decisions worth knowing:

* **Confirmation.** A track gets a public ID on its ``min_hits``-th consecutive hit.
  IDs are small consecutive integers from 1, in order of confirmation, so a
  one-frame false positive never consumes an ID. Earlier tentative frames are
  **not back-filled**: their rows keep ``track_id == -1``. Back-fill would need the
  tracker to hold frames back (latency and memory in a streaming pipeline); with the
  default ``min_hits=2`` only the first frame of each face is lost.
* **Output rows.** ``update`` returns every input row, in input order, so it stays
  row-aligned with anything computed before tracking; rows not assigned to a
  confirmed track (tentative, unmatched, below ``low_threshold``, degenerate boxes)
  get ``-1``. Callers keep tracked rows with ``dets[dets.track_id >= 1]``.
* **Time.** Everything uses the frames' ``time_s``, so ``--every N`` and variable
  frame rate work. The Kalman step is ``k = dt * nominal_fps`` nominal frames:
  velocities are per nominal frame, the transition moves ``k`` steps and the
  process noise scales linearly with ``k`` (a random walk), so a gap of 10 frames
  is one prediction ten times as uncertain, not ten predictions. Time that goes
  backwards is treated as no time passing (``dt = 0``), rather than crashing a long
  run on one bad timestamp; call ``reset()`` between inputs.
* **Track buffer.** A track is deleted when more than ``track_buffer_s`` seconds
  have passed since its last hit; a face back within the buffer keeps its ID.
* **Shot cuts.** Pairs whose IoU is below the gate are never matched, however the
  Hungarian algorithm pairs them, so a track whose IoU has dropped to 0 cannot take
  another face's box; as in ByteTrack, a lost track's height velocity is zeroed so
  its box does not grow or shrink while it is not seen.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

import numpy as np
from scipy.optimize import linear_sum_assignment

from fervid.checks import check_range
from fervid.geometry import box_iou_np
from fervid.types import Detections

# Noise scales relative to the box height, as in DeepSORT/ByteTrack's Kalman filter.
_STD_POSITION = 1.0 / 20.0
_STD_VELOCITY = 1.0 / 160.0


def _xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """Boxes as Kalman measurements (cx, cy, w/h, h)."""
    wh = xyxy[:, 2:] - xyxy[:, :2]
    centre = xyxy[:, :2] + wh / 2
    return np.column_stack([centre, wh[:, 0] / wh[:, 1], wh[:, 1]])


def _xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """Kalman state positions back to xyxy boxes for IoU matching."""
    h = xyah[:, 3]
    w = xyah[:, 2] * h
    half = np.column_stack([w, h]) / 2
    return np.column_stack([xyah[:, :2] - half, xyah[:, :2] + half])


def _kalman_init(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Initial state (zero velocity) and a covariance that trusts position, not velocity."""
    n = len(z)
    mean = np.concatenate([z, np.zeros((n, 4))], axis=1)
    h = z[:, 3]
    std = np.column_stack(
        [
            2 * _STD_POSITION * h,
            2 * _STD_POSITION * h,
            np.full(n, 1e-2),
            2 * _STD_POSITION * h,
            10 * _STD_VELOCITY * h,
            10 * _STD_VELOCITY * h,
            np.full(n, 1e-5),
            10 * _STD_VELOCITY * h,
        ]
    )
    cov = np.zeros((n, 8, 8))
    cov[:, np.arange(8), np.arange(8)] = std**2
    return mean, cov


def _kalman_predict(mean: np.ndarray, cov: np.ndarray, steps: float) -> tuple[np.ndarray, np.ndarray]:
    """Move every track ``steps`` nominal frames ahead (vectorized over tracks).

    Process noise grows linearly with ``steps`` so one long step is as uncertain as
    the equivalent run of short ones (to first order), which keeps irregular
    timestamps honest.
    """
    if len(mean) == 0 or steps == 0:
        return mean, cov
    transition = np.eye(8)
    transition[np.arange(4), np.arange(4) + 4] = steps
    h = mean[:, 3]
    std = np.column_stack(
        [
            _STD_POSITION * h,
            _STD_POSITION * h,
            np.full(len(h), 1e-2),
            _STD_POSITION * h,
            _STD_VELOCITY * h,
            _STD_VELOCITY * h,
            np.full(len(h), 1e-5),
            _STD_VELOCITY * h,
        ]
    )
    noise = np.zeros_like(cov)
    noise[:, np.arange(8), np.arange(8)] = steps * std**2
    mean = mean @ transition.T
    # A shrinking box extrapolated over a long step must not turn inside out.
    mean[:, 2:4] = np.maximum(mean[:, 2:4], 1e-3)
    cov = transition @ cov @ transition.T + noise
    return mean, cov


def _kalman_update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct matched tracks with their measurements (vectorized over tracks)."""
    if len(mean) == 0:
        return mean, cov
    h = mean[:, 3]
    std = np.column_stack([_STD_POSITION * h, _STD_POSITION * h, np.full(len(h), 1e-1), _STD_POSITION * h])
    innovation_cov = cov[:, :4, :4].copy()
    innovation_cov[:, np.arange(4), np.arange(4)] += std**2
    # Gain K = P H^T S^-1; with H = [I 0] and symmetric S: K^T = S^-1 P[:4, :].
    gain = np.linalg.solve(innovation_cov, cov[:, :4, :]).transpose(0, 2, 1)
    innovation = z - mean[:, :4]
    mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    cov = cov - gain @ innovation_cov @ gain.transpose(0, 2, 1)
    return mean, cov


#: How alike a track's predicted box and a detection are: (t, 4) and (d, 4) xyxy -> (t, d) in [0, 1].
Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]


def iou_similarity(tracks: np.ndarray, detections: np.ndarray) -> np.ndarray:
    """Box overlap (IoU); degenerate boxes overlap nothing."""
    return box_iou_np(tracks, detections).astype(np.float64)


#: Association costs by name (``FaceTracker(similarity=...)``); a stage with more information
#: (appearance, say) can pass its own function.
SIMILARITIES: dict[str, Similarity] = {"iou": iou_similarity}


def similarity_of(similarity: str | Similarity) -> Similarity:
    """A similarity by its name in :data:`SIMILARITIES` (a ValueError listing them for an unknown one), or as given."""
    if not isinstance(similarity, str):
        return similarity
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; choose one of: {', '.join(SIMILARITIES)}")
    return SIMILARITIES[similarity]


def _assign(
    similarity: Similarity, predicted: np.ndarray, boxes: np.ndarray, track_rows: np.ndarray, det_rows: np.ndarray,
    threshold: float, det_for_track: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Match a subset of tracks (their ``predicted`` boxes) to a subset of detections (their ``boxes``); record the
    pairs in ``det_for_track``, return the detections left unmatched."""
    pairs = _match(similarity(predicted[track_rows], boxes[det_rows]), threshold)
    det_for_track[track_rows[pairs[:, 0]]] = det_rows[pairs[:, 1]]
    return np.delete(det_rows, pairs[:, 1])


def _match(similarity: np.ndarray, threshold: float) -> np.ndarray:
    """Hungarian matching on a similarity, keeping only pairs at or above ``threshold`` -> (k, 2) rows, cols.

    The gate is applied after the assignment as well as in the cost, so a pair below
    it (e.g. IoU 0 after a shot cut) is never returned even when the solver pairs it.
    """
    if similarity.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    cost = np.where(similarity >= threshold, 1.0 - similarity, 1e6)
    rows, cols = linear_sum_assignment(cost)
    keep = similarity[rows, cols] >= threshold
    return np.column_stack([rows[keep], cols[keep]]).astype(np.int64)


T = TypeVar("T")


class TrackStep(NamedTuple):
    """One frame through a tracker: every input row with ``track_id`` filled, and each row's track key.

    ``keys`` name the track a row joined (tentative tracks too; -1: none). They let a caller
    learn a row's public ID later, once its tentative track is confirmed (:meth:`FaceTracker.public_ids`).
    """

    detections: Detections
    keys: np.ndarray


@dataclass
class _Tracks:
    """All live tracks as parallel arrays, so prediction and update are vectorized."""

    mean: np.ndarray  # (t, 8) cx, cy, a, h and their velocities per nominal frame
    cov: np.ndarray  # (t, 8, 8)
    hits: np.ndarray  # (t,) consecutive hits (only meaningful while tentative)
    last_hit_s: np.ndarray  # (t,) time of the last matched detection
    public_id: np.ndarray  # (t,) >= 1 once confirmed, -1 while tentative
    seen_last: np.ndarray  # (t,) bool: matched in the previous update ("tracked", not "lost")
    key: np.ndarray  # (t,) internal id, unique per track from birth (tentative tracks have one too)

    @classmethod
    def empty(cls) -> _Tracks:
        return cls(
            np.zeros((0, 8)),
            np.zeros((0, 8, 8)),
            np.zeros(0, dtype=np.int64),
            np.zeros(0),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=bool),
            np.zeros(0, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.mean)

    def select(self, mask: np.ndarray) -> _Tracks:
        return _Tracks(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))

    def extend(self, other: _Tracks) -> _Tracks:
        return _Tracks(*(np.concatenate([getattr(self, f), getattr(other, f)]) for f in self.__dataclass_fields__))

    @classmethod
    def start(cls, boxes: np.ndarray, time_s: float, public_id: np.ndarray, key: np.ndarray) -> _Tracks:
        """New tracks at xyxy ``boxes``: one hit at ``time_s``, zero velocity, seen this frame."""
        n = len(boxes)
        mean, cov = _kalman_init(_xyxy_to_xyah(boxes))
        return cls(mean, cov, np.ones(n, dtype=np.int64), np.full(n, time_s), public_id, np.ones(n, bool), key)

    def apply_matches(self, boxes: np.ndarray, det_for_track: np.ndarray, time_s: float) -> None:
        """Kalman-correct matched tracks with their detection's box, count the hit, note who was seen."""
        matched = det_for_track >= 0
        self.mean[~matched, 7] = 0.0  # ByteTrack: a lost box keeps its size
        idx = np.flatnonzero(matched)
        z = _xyxy_to_xyah(boxes[det_for_track[idx]])
        self.mean[idx], self.cov[idx] = _kalman_update(self.mean[idx], self.cov[idx], z)
        self.hits[idx] += 1
        self.last_hit_s[idx] = time_s
        self.seen_last = matched

    def confirm(self, min_hits: int, first_id: int) -> int:
        """Give public IDs from ``first_id`` to tentative tracks seen ``min_hits`` times in a row; how many.

        Confirmed in track order (oldest first) so IDs follow first appearance.
        """
        newly = np.flatnonzero(self.seen_last & (self.public_id < 1) & (self.hits >= min_hits))
        self.public_id[newly] = first_id + np.arange(len(newly))
        return len(newly)

    def drop_missed_tentative(self, matched: np.ndarray) -> _Tracks:
        """Tentative tracks need consecutive hits: one miss removes them.

        ``matched`` covers the tracks that existed before this frame's new ones (which are kept).
        """
        keep = np.ones(len(self), dtype=bool)
        keep[: len(matched)] = matched | (self.public_id[: len(matched)] >= 1)
        return self.select(keep)

    def row_labels(self, n_rows: int, det_for_track: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per detection row, the public ID (-1: none) and the key (-1: none) of the track it joined.

        ``det_for_track`` covers the tracks that existed before this frame; the tracks that
        rows ``new`` started were appended after them, in that order. A new track has a
        public ID only when ``min_hits == 1`` (else -1, like a tentative match).
        """
        track_id = np.full(n_rows, -1, dtype=np.int64)
        keys = np.full(n_rows, -1, dtype=np.int64)
        matched = det_for_track >= 0
        track_id[det_for_track[matched]] = self.public_id[: len(det_for_track)][matched]
        keys[det_for_track[matched]] = self.key[: len(det_for_track)][matched]
        if len(new):
            track_id[new] = self.public_id[-len(new) :]
            keys[new] = self.key[-len(new) :]
        return track_id, keys

    def public_ids_of(self, keys: np.ndarray) -> np.ndarray:
        """Public IDs by internal key (-1 where no live track has the key, or it is still tentative)."""
        out = np.full(len(keys), -1, dtype=np.int64)
        if len(keys) and len(self):
            order = np.argsort(self.key)
            pos = np.clip(np.searchsorted(self.key, keys, sorter=order), 0, len(order) - 1)
            found = self.key[order[pos]] == keys
            out[found] = self.public_id[order[pos]][found]
        return out


class FaceTracker:
    """Give each face a stable ID across frames; ``reset()`` between inputs.

    Args:
        track_buffer_s: seconds a track survives without a matching detection.
        high_threshold: detections at or above it take part in the first pass.
        low_threshold: detections below it are ignored; between the two they can
            only extend a track that was seen in the previous frame.
        match_iou: minimum IoU to match a high-score detection to a track.
        second_match_iou: minimum IoU for the low-score second pass (stricter,
            because low-score boxes are less reliable).
        new_track_threshold: minimum score for an unmatched detection to start a track.
        min_hits: consecutive hits before a track is confirmed and gets an ID.
        nominal_fps: frame rate that defines one Kalman step; only scales velocities
            and process noise, so it need not match the video.
        similarity: how a predicted track box and a detection are compared: a name from
            ``SIMILARITIES`` or a function; gated by ``match_iou`` / ``second_match_iou``.
    """

    def __init__(
        self,
        track_buffer_s: float = 1.0,
        high_threshold: float = 0.6,
        low_threshold: float = 0.1,
        match_iou: float = 0.3,
        second_match_iou: float = 0.5,
        new_track_threshold: float = 0.7,
        min_hits: int = 2,
        nominal_fps: float = 30.0,
        similarity: str | Similarity = "iou",
    ) -> None:
        check_range("track_buffer_s", track_buffer_s, 0.0, float("inf"))
        check_range("low_threshold", low_threshold, 0.0, 1.0)
        check_range("high_threshold", high_threshold, low_threshold, 1.0)
        check_range("new_track_threshold", new_track_threshold, 0.0, 1.0)
        check_range("match_iou", match_iou, 1e-6, 1.0)
        check_range("second_match_iou", second_match_iou, 1e-6, 1.0)
        check_range("min_hits", min_hits, 1, 1_000_000)
        check_range("nominal_fps", nominal_fps, 1e-6, float("inf"))
        self.track_buffer_s = float(track_buffer_s)
        self.high_threshold = float(high_threshold)
        self.low_threshold = float(low_threshold)
        self.match_iou = float(match_iou)
        self.second_match_iou = float(second_match_iou)
        self.new_track_threshold = float(new_track_threshold)
        self.min_hits = int(min_hits)
        self.nominal_fps = float(nominal_fps)
        self.similarity = similarity_of(similarity)
        self.reset()

    def reset(self) -> None:
        """Forget all tracks and restart IDs at 1 (call at the start of each input)."""
        self._tracks = _Tracks.empty()
        self._time_s: float | None = None
        self._next_id = 1
        self._next_key = 0

    def cut(self) -> None:
        """End every track now (a shot cut): faces after it get new IDs; IDs keep counting up."""
        self._tracks = _Tracks.empty()

    def public_ids(self, keys: np.ndarray) -> np.ndarray:
        """Public IDs of live tracks by internal key (-1 where unknown or still tentative).

        Lets a caller back-fill the frames a track spent tentative once it is confirmed.
        """
        return self._tracks.public_ids_of(keys)

    def predicted(self, time_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Where the tracks seen in the last frame will be at ``time_s``: (k, 4) xyxy boxes and their keys.

        Read-only (the state is not advanced), so a caller can look for each face near its
        prediction before the frame is tracked (:mod:`fervid.keyframes`). Lost tracks are left
        out: their last position is stale.
        """
        seen = self._tracks.select(self._tracks.seen_last)
        steps = 0.0 if self._time_s is None else max(0.0, float(time_s) - self._time_s) * self.nominal_fps
        mean, _ = _kalman_predict(seen.mean, seen.cov, steps)
        return _xyah_to_xyxy(mean[:, :4]), seen.key.copy()

    def seen_keys(self) -> np.ndarray:
        """Keys of the tracks matched in the last frame (tentative ones too)."""
        return self._tracks.key[self._tracks.seen_last]

    def update(self, detections: Detections, time_s: float) -> Detections:
        """Track one frame's faces; returns all input rows with ``track_id`` filled.

        Rows of confirmed tracks get their ID (>= 1); every other row gets -1.
        """
        return self.step(detections, time_s).detections

    def step(self, detections: Detections, time_s: float) -> TrackStep:
        """:meth:`update`, also returning each row's track key (see :class:`TrackStep`)."""
        time_s = float(time_s)
        steps = 0.0 if self._time_s is None else max(0.0, time_s - self._time_s) * self.nominal_fps
        self._time_s = time_s if self._time_s is None else max(self._time_s, time_s)
        self._tracks = self._tracks.select(time_s - self._tracks.last_hit_s <= self.track_buffer_s)
        tracks = self._tracks
        tracks.mean, tracks.cov = _kalman_predict(tracks.mean, tracks.cov, steps)

        valid = _valid_rows(detections)
        high = np.flatnonzero(valid & (detections.score >= self.high_threshold))
        low = np.flatnonzero(
            valid & (detections.score >= self.low_threshold) & (detections.score < self.high_threshold)
        )
        det_for_track = np.full(len(tracks), -1, dtype=np.int64)
        boxes = detections.xyxy.astype(np.float64)
        predicted = _xyah_to_xyxy(tracks.mean[:, :4])

        # ByteTrack's cascade: high-score faces to confirmed tracks, low-score ones to confirmed tracks seen in the
        # last frame and still unmatched, the high-score faces left to tentative tracks.
        confirmed = np.flatnonzero(tracks.public_id >= 1)
        match = functools.partial(_assign, self.similarity, predicted, boxes, det_for_track=det_for_track)
        high = match(confirmed, high, self.match_iou)
        recent = confirmed[(det_for_track[confirmed] < 0) & tracks.seen_last[confirmed]]
        match(recent, low, self.second_match_iou)
        high = match(np.flatnonzero(tracks.public_id < 1), high, self.match_iou)  # then the tentative tracks

        tracks.apply_matches(boxes, det_for_track, time_s)
        self._next_id += tracks.confirm(self.min_hits, self._next_id)
        new = high[detections.score[high] >= self.new_track_threshold]
        self._start_tracks(boxes[new], time_s)

        out = detections[np.arange(len(detections))]
        out.track_id, keys = self._tracks.row_labels(len(detections), det_for_track, new)
        self._tracks = self._tracks.drop_missed_tentative(det_for_track >= 0)
        return TrackStep(out, keys)

    def _start_tracks(self, boxes: np.ndarray, time_s: float) -> None:
        """Open tentative tracks (confirmed at once when ``min_hits == 1``)."""
        n = len(boxes)
        if n == 0:
            return
        public_id = np.full(n, -1, dtype=np.int64)
        if self.min_hits == 1:
            public_id = self._next_id + np.arange(n, dtype=np.int64)
            self._next_id += n
        keys = self._next_key + np.arange(n, dtype=np.int64)
        self._next_key += n
        self._tracks = self._tracks.extend(_Tracks.start(boxes, time_s, public_id, keys))


def _valid_rows(detections: Detections) -> np.ndarray:
    """Rows the tracker can use: finite boxes with positive width and height and a finite score."""
    xyxy = detections.xyxy
    finite = np.isfinite(xyxy).all(axis=1) & np.isfinite(detections.score)
    with np.errstate(invalid="ignore"):
        positive = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return finite & positive


class BackfilledTracker(Generic[T]):
    """Runs a FaceTracker with a short delay so a face's first frames carry its ID too.

    A track is confirmed only on its ``min_hits``-th consecutive hit; without help its
    first ``min_hits - 1`` frames would have no ID (a face visible in every frame would
    lose frame 0). This holds the last ``min_hits - 1`` frames, fills in IDs when their
    tentative tracks are confirmed, and releases frames in order with only the rows of
    confirmed tracks. ``item`` is whatever the caller wants back with each frame.
    """

    def __init__(self, tracker: FaceTracker) -> None:
        self.tracker = tracker
        self._pending: deque[tuple[T, Detections, np.ndarray]] = deque()

    def push(self, item: T, detections: Detections, time_s: float) -> list[tuple[T, Detections]]:
        tracked, keys = self.tracker.step(detections, time_s)
        self._pending.append((item, tracked, keys))
        for _, dets, keys in self._pending:
            waiting = (dets.track_id < 1) & (keys >= 0)
            if waiting.any():
                dets.track_id[waiting] = self.tracker.public_ids(keys[waiting])
        released = []
        while len(self._pending) > self.tracker.min_hits - 1:
            released.append(self._release())
        return released

    def flush(self) -> list[tuple[T, Detections]]:
        """Release every held frame (end of input)."""
        return [self._release() for _ in range(len(self._pending))]

    def _release(self) -> tuple[T, Detections]:
        item, dets, _ = self._pending.popleft()
        return item, dets[dets.track_id >= 1]


#: Tracking strategies by name (``--tracker``).
TRACKERS: dict[str, type[FaceTracker]] = {"bytetrack": FaceTracker}
