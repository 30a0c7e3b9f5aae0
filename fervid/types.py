"""Array-backed containers that flow through the pipeline.

Data moves one way: ``Frame`` -> ``Detections`` (tracker fills ``track_id``, identity
fills ``person_id``) -> ``Predictions`` (row-aligned with the detections) -> sinks. Each container is a
dataclass of parallel numpy arrays that validates itself and can be indexed with an
int, a slice, an index array or a boolean mask, so stages never pass lists of dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Canonical, lowercase expression class names shared by every model.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")

Index = int | slice | np.ndarray | Sequence[int]


def _as_index(item: Index) -> slice | np.ndarray:
    """Turn an int into a length-1 index so indexing always keeps 2-D arrays 2-D."""
    if isinstance(item, (int, np.integer)):
        return np.array([int(item)])
    if isinstance(item, slice):
        return item
    return np.asarray(item)


@dataclass
class Frame:
    """One decoded picture.

    ``time_s`` comes from the frame's presentation timestamp, so it is right for
    variable frame rate video; ``index`` counts decoded frames from 0 (for image
    folders, the position in natural sort order) and ``source`` names the file an
    image came from (None for video).
    """

    index: int
    time_s: float
    image: np.ndarray  # (H, W, 3) uint8 RGB
    source: str | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"Frame.image must be (H, W, 3) uint8 RGB, got {self.image.shape} {self.image.dtype}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class Detections:
    """Faces found in one frame: parallel arrays, one row per face.

    ``xyxy`` and ``landmarks`` are in pixels of the full-resolution frame;
    landmarks are the five RetinaFace points (left eye, right eye, nose, left and
    right mouth corner as seen in the image). ``track_id`` is -1 until a tracker
    assigns a stable id (>= 1); ``person_id`` is -1 until the identity stage says who the
    face is (>= 1), or 0 when the face cannot be identified (too small, too short a track).

    ``data`` holds per-face values that later stages add (the measurements of
    :mod:`fervid.quality`, the reliability of the label): name -> array with one row per face,
    indexed and concatenated with the rest, so a new per-face value is one new key, not a new field.
    """

    xyxy: np.ndarray  # (n, 4) float32
    score: np.ndarray  # (n,) float32
    landmarks: np.ndarray  # (n, 5, 2) float32
    track_id: np.ndarray = field(default=None)  # type: ignore[arg-type]  # (n,) int64; None: __post_init__ fills -1
    person_id: np.ndarray = field(default=None)  # type: ignore[arg-type]  # (n,) int64; None: __post_init__ fills -1
    data: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n, ...) per-face values

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(-1, 5, 2)
        if self.track_id is None:
            self.track_id = np.full(n, -1, dtype=np.int64)
        self.track_id = np.asarray(self.track_id, dtype=np.int64).reshape(-1)
        if self.person_id is None:
            self.person_id = np.full(n, -1, dtype=np.int64)
        self.person_id = np.asarray(self.person_id, dtype=np.int64).reshape(-1)
        for name in ("score", "landmarks", "track_id", "person_id"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Detections.{name} has {len(getattr(self, name))} rows, xyxy has {n}")
        self.data = {key: np.asarray(value) for key, value in self.data.items()}
        for key, value in self.data.items():
            if value.ndim == 0 or len(value) != n:
                raise ValueError(f"Detections.data[{key!r}] has shape {value.shape}, xyxy has {n} rows")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, item: Index) -> Detections:
        idx = _as_index(item)
        return Detections(self.xyxy[idx], self.score[idx], self.landmarks[idx], self.track_id[idx], self.person_id[idx],
                          {key: value[idx] for key, value in self.data.items()})  # fmt: skip

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        """One Detections of all rows; ``data`` keys must be the same in every part."""
        if not parts:
            return cls.empty()
        keys = set(parts[0].data)
        if any(set(p.data) != keys for p in parts):
            raise ValueError(
                f"cannot concatenate Detections with different data keys: {[sorted(p.data) for p in parts]}"
            )
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
            np.concatenate([p.track_id for p in parts]),
            np.concatenate([p.person_id for p in parts]),
            {key: np.concatenate([p.data[key] for p in parts]) for key in parts[0].data},
        )

    @property
    def area(self) -> np.ndarray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]


@dataclass
class Predictions:
    """Expression probabilities, row-aligned with the Detections they classify."""

    probs: np.ndarray  # (n, k) float32, rows sum to 1
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        self.probs = np.asarray(self.probs, dtype=np.float32).reshape(-1, len(self.classes))

    @classmethod
    def empty(cls, classes: Sequence[str]) -> Predictions:
        return cls(np.zeros((0, len(classes)), dtype=np.float32), tuple(classes))

    def __len__(self) -> int:
        return len(self.probs)

    def __getitem__(self, item: Index) -> Predictions:
        return Predictions(self.probs[_as_index(item)], self.classes)

    @property
    def label_index(self) -> np.ndarray:
        return self.probs.argmax(axis=1) if len(self) else np.zeros(0, dtype=np.int64)

    @property
    def label(self) -> np.ndarray:
        """Top class name per row (object array of str)."""
        return np.asarray(self.classes, dtype=object)[self.label_index]

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1) if len(self) else np.zeros(0, dtype=np.float32)


#: Frames released by a stage that may hold some back (a tracker confirming tracks, the identity stage waiting
#: for a track's embedding window), in order, each with the faces to keep: what ``push`` and ``flush`` return.
Ready = list[tuple[Frame, Detections]]


@dataclass
class FrameResult:
    """Everything known about one processed frame: what the writers consume."""

    frame: Frame
    detections: Detections
    predictions: Predictions
