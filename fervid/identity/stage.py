"""The identity stage: fills ``person_id`` on tracked faces, embedding a few good faces per track.

dlib's descriptor network costs ~10 ms a face on a CPU, so faces are not embedded per
frame. Each track keeps its best face (large, confident, frontal: :func:`face_quality`)
of a window of time and embeds it when the window closes: the first window is
``first_window_s`` long, so a new track is identified soon after it appears; then one face
per ``later_window_s``, up to ``max_descriptors`` per track. A track whose faces are all too
small, blurred or dark to identify is a person of its own: it is never merged with anyone.

Frames are held back until every face in them has a person (at most ``first_window_s``
plus the frames waiting for it, and never more than ``max_held_bytes`` of pixels), so the
annotated video can label persons from their first frame. :meth:`IdentityStage.finish`
clusters the tracks once more with all their descriptors (:func:`cluster_persons`) and
returns the final track -> person map the tables use.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fervid.identity.persons import Person, PersonRegistry, TrackFaces, cluster_persons
from fervid.types import Detections, Frame, Ready

if TYPE_CHECKING:
    from fervid.face_ids import FaceIds

#: Faces smaller than this (box height, pixels) are not embedded: dlib's chips are 150 px and
#: descriptors of faces much smaller than ~40 px no longer separate people.
MIN_FACE_PX = 40.0
#: Out-of-focus and dark faces are not embedded either: their descriptors crowd together near a
#: "generic face" (0.25-0.45 apart for different people in short_hamilton_clip.mp4's blurred
#: audience, closer than the same singer in two shots, 0.42), so they would merge strangers.
#: Measured on the central 60% of the face box, in grey, resized to 64x64: the variance of its
#: Laplacian (sharpness) and its standard deviation (contrast). On that clip every face a person
#: could recognise scored at least ~10 and ~11, the blurred or black audience faces at most 4 and 6.
MIN_SHARPNESS = 10.0
MIN_CONTRAST = 8.0
#: Embeds (image, landmarks (n, 5, 2)) pairs -> (n, 128) descriptors.
Embedder = Callable[[list[np.ndarray], np.ndarray], np.ndarray]


def sharpness(image: np.ndarray, box: np.ndarray) -> tuple[float, float]:
    """(Laplacian variance, grey standard deviation) of the middle of a face box, at 64x64 (see ``MIN_SHARPNESS``)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
    left, top = int(np.clip(x0 + dx, 0, w - 1)), int(np.clip(y0 + dy, 0, h - 1))
    right, bottom = int(np.clip(x1 - dx, left + 1, w)), int(np.clip(y1 - dy, top + 1, h))
    grey = cv2.cvtColor(np.ascontiguousarray(image[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var()), float(grey.std())


def face_quality(detections: Detections) -> np.ndarray:
    """How good each face is for identification, in [0, 1]: size, detector score and frontalness.

    Frontalness: the nose tip's offset from the eyes' midpoint, relative to the eye distance
    (0 for a frontal face, ~0.5 for a profile). Faces under ``MIN_FACE_PX`` score 0. Sharpness
    is checked separately (:func:`sharpness`), only for faces that would become a track's best.
    """
    boxes, points = detections.xyxy, detections.landmarks
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    eyes = points[:, 1] - points[:, 0]
    eye_distance = np.maximum(np.linalg.norm(eyes, axis=1), 1e-3)
    nose = points[:, 2] - (points[:, 0] + points[:, 1]) / 2
    along = np.abs(np.einsum("ij,ij->i", eyes, nose)) / eye_distance**2  # 0 frontal, 0.5: nose at an eye
    turned = np.clip(eye_distance / np.maximum(0.3 * width, 1e-3), 0.0, 1.0)  # eyes close together: a profile
    frontal = np.clip(1.0 - 2.0 * along, 0.0, 1.0) * turned
    size = np.clip(height / 112.0, 0.0, 1.0)
    quality = size * detections.score * frontal
    return np.where(height >= MIN_FACE_PX, quality, 0.0).astype(np.float32)


def face_patch(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face with a box-sized margin on every side (more than dlib's chip reads), and its landmarks in it.

    A track keeps its best face for a few seconds; keeping this patch instead of the whole
    frame holds kilobytes, not megabytes, per track.
    """
    h, w = image.shape[:2]
    bw, bh = box[2] - box[0], box[3] - box[1]
    x0, y0 = int(max(0, np.floor(box[0] - bw))), int(max(0, np.floor(box[1] - bh)))
    x1, y1 = int(min(w, np.ceil(box[2] + bw))), int(min(h, np.ceil(box[3] + bh)))
    patch = np.ascontiguousarray(image[y0:y1, x0:x1])
    return patch, (landmarks - np.array([x0, y0], dtype=np.float32)).astype(np.float32)


@dataclass
class _Track:
    faces: TrackFaces
    window_end_s: float
    person: int = -1  # online person; -1: not decided yet, 0: not identifiable
    best: tuple[float, np.ndarray, np.ndarray] | None = None  # quality, face patch, landmarks in it
    ended: bool = False


@dataclass
class IdentityResult:
    """The final grouping: person of every track, names, and what the run record says about it."""

    person_of_track: dict[int, int]
    names: dict[int, str]
    persons: list[Person] = field(default_factory=list)
    online: dict[int, int] = field(default_factory=dict)  # the person each track had in the video

    @property
    def relabelled(self) -> list[int]:
        """Tracks whose person in the tables differs from the label drawn on the video."""
        return sorted(t for t, p in self.person_of_track.items() if self.online.get(t, p) != p)


class IdentityStage:
    """Pushes frames through, holding them until their faces have persons (see the module docstring)."""

    def __init__(
        self, embed: Embedder, registry: PersonRegistry, first_window_s: float = 1.0, later_window_s: float = 4.0,
        max_descriptors: int = 6, max_held_bytes: int = 256 * 2**20,
    ) -> None:  # fmt: skip
        self.embed = embed
        self.registry = registry
        self.first_window_s = first_window_s
        self.later_window_s = later_window_s
        self.max_descriptors = max_descriptors
        self.max_held_bytes = max_held_bytes
        self._tracks: dict[int, _Track] = {}
        self._held: deque[tuple[Frame, Detections]] = deque()
        self._held_bytes = 0

    def push(self, frame: Frame, detections: Detections) -> Ready:
        t = frame.time_s
        quality = face_quality(detections)
        for row, track_id in enumerate(detections.track_id.tolist()):
            track = self._tracks.get(track_id)
            if track is None:
                faces = TrackFaces(track_id, frame.index, frame.index, t)
                track = self._tracks[track_id] = _Track(faces, t + self.first_window_s)
            track.faces.last_frame = frame.index
            if not track.ended and quality[row] > 0 and (track.best is None or quality[row] > track.best[0]):
                laplacian, contrast = sharpness(frame.image, detections.xyxy[row])
                if laplacian >= MIN_SHARPNESS and contrast >= MIN_CONTRAST:
                    patch, points = face_patch(frame.image, detections.xyxy[row], detections.landmarks[row])
                    track.best = (float(quality[row]), patch, points)
        self._held.append((frame, detections))
        self._held_bytes += frame.image.nbytes
        self._close_windows(lambda track: not t < track.window_end_s)  # NaN (photos): at once
        if self._held_bytes > self.max_held_bytes:
            self._close_windows(lambda track: track.person < 0)
        return self._release(final=False)

    def flush(self) -> Ready:
        self._close_windows(lambda track: track.best is not None or track.person < 0)
        return self._release(final=True)

    def finish(self) -> IdentityResult:
        """Cluster all tracks with all their descriptors; the final track -> person map.

        A final person keeps the smallest ID its tracks had online, so the tables and the
        annotated video agree on every person the end of the input did not merge; the ID a
        merged person had on the video is then unused (``IdentityResult.relabelled`` lists
        those tracks, and run.json records them).
        """
        online = {t: track.person for t, track in self._tracks.items()}
        persons = cluster_persons(self.registry.persons, self.registry.threshold)
        for person in persons:
            person.person_id = min(online[t.track_id] for t in person.tracks)
            person.name = self.registry.name_for(person, persons)
        persons.sort(key=lambda p: p.person_id)
        mapping = {t.track_id: p.person_id for p in persons for t in p.tracks}
        names = {p.person_id: p.name for p in persons if p.name}
        return IdentityResult(mapping, names, persons, online)

    def online_name(self, person_id: int) -> str | None:
        if 1 <= person_id <= len(self.registry.persons):
            return self.registry.persons[person_id - 1].name
        return None

    def _close_windows(self, due: Callable[[_Track], bool]) -> None:
        """Embed the best face of every track whose window is due, in one batch, and decide new tracks' persons."""
        closing = [track for track in self._tracks.values() if due(track) and not track.ended]
        todo = [(track, track.best) for track in closing if track.best is not None]
        if todo:
            descriptors = self.embed([best[1] for _, best in todo], np.stack([best[2] for _, best in todo]))
            for (track, _), descriptor in zip(todo, descriptors):
                track.faces.descriptors.append(descriptor)
                track.best = None
        for track in closing:
            if track.person < 0:
                track.person = self.registry.assign(track.faces).person_id
            track.window_end_s += self.later_window_s
            track.ended = len(track.faces.descriptors) >= self.max_descriptors

    def _release(self, final: bool) -> Ready:
        ready: Ready = []
        while self._held:
            frame, detections = self._held[0]
            persons = [self._tracks[t].person for t in detections.track_id.tolist()]
            if not final and any(p < 0 for p in persons):
                break
            self._held.popleft()
            self._held_bytes -= frame.image.nbytes
            detections.person_id = np.array([max(p, 0) for p in persons], dtype=np.int64)
            ready.append((frame, detections))
        return ready


class IdentifiedFaces:
    """Numbered faces (:mod:`fervid.face_ids`) through the identity stage: the same interface, with person IDs."""

    def __init__(self, faces: FaceIds, stage: IdentityStage) -> None:
        self.faces = faces
        self.stage = stage

    def push(self, frame: Frame, detections: Detections) -> Ready:
        return [pair for f, d in self.faces.push(frame, detections) for pair in self.stage.push(f, d)]

    def flush(self) -> Ready:
        ready = [pair for f, d in self.faces.flush() for pair in self.stage.push(f, d)]
        return ready + self.stage.flush()
