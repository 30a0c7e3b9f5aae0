"""Who is who: tracks grouped into persons by their face descriptors, online and at the end of an input.

A *track* is one unbroken run of a face (``face_id``); a *person* is every track of one real
person. Descriptors are dlib's 128-d face embeddings (:mod:`fervid.identity`); two faces
closer than ``threshold`` (Euclidean) are taken for the same person.

* **Online** (:meth:`PersonRegistry.assign`): when a new track has its first descriptor it
  joins the nearest person below the threshold that is not on screen with it, or starts a
  new person. The annotated video is drawn with these IDs.
* **At the end** (:func:`cluster_persons`): persons are merged agglomeratively, closest pair
  first, while the pair is below the threshold and never on screen together; later
  descriptors of a track (a frontal view after a profile) can join persons the first one
  could not. The tables use this final grouping.

Distances between persons are *complete linkage*: the largest distance between any of their
tracks (each track: the mean of its descriptors). A chain of look-alikes (A near B near C)
then never pulls A and C together, which keeps the rule that matters most for research: one
``person_id`` never covers two real people. Never merged either: two tracks seen in the same
frame, and a track without descriptors (a face too small or blurred to compare) is a person
of its own. Known people (``--people``) give persons their names: each person takes the nearest
known name below the threshold, and a name goes to at most one of the persons on screen
at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class TrackFaces:
    """What identity knows about one track: when it was seen and its face descriptors."""

    track_id: int
    first_frame: int
    last_frame: int
    first_s: float
    descriptors: list[np.ndarray] = field(default_factory=list)

    def overlaps(self, other: TrackFaces) -> bool:
        """Seen in a common frame (then they are two different people)."""
        return self.first_frame <= other.last_frame and other.first_frame <= self.last_frame

    @property
    def mean(self) -> np.ndarray:
        return np.mean(self.descriptors, axis=0)


@dataclass
class Person:
    person_id: int
    tracks: list[TrackFaces] = field(default_factory=list)
    name: str | None = None

    @property
    def comparable(self) -> list[TrackFaces]:
        """The tracks with descriptors."""
        return [t for t in self.tracks if t.descriptors]

    @property
    def mean(self) -> np.ndarray:
        return np.mean([d for t in self.tracks for d in t.descriptors], axis=0)

    def distance(self, track: TrackFaces) -> float:
        """Complete linkage: the largest distance from ``track`` to any of this person's tracks (inf: none)."""
        tracks = self.comparable
        if not tracks or not track.descriptors:
            return float("inf")
        return max(float(np.linalg.norm(t.mean - track.mean)) for t in tracks)

    def overlaps(self, track: TrackFaces) -> bool:
        return any(t.overlaps(track) for t in self.tracks)

    @property
    def first_frame(self) -> int:
        return min(t.first_frame for t in self.tracks)


class PersonRegistry:
    """Online assignment of new tracks to persons (see the module docstring)."""

    def __init__(self, threshold: float, known: dict[str, np.ndarray] | None = None) -> None:
        self.threshold = threshold
        self.known = known or {}
        self.persons: list[Person] = []

    def assign(self, track: TrackFaces) -> Person:
        """The person ``track`` belongs to (a new one when no one is close enough); the track is added to it."""
        candidates = [p for p in self.persons if not p.overlaps(track)]
        best: Person | None = None
        if candidates and track.descriptors:
            distances = [p.distance(track) for p in candidates]
            k = int(np.argmin(distances))
            if distances[k] < self.threshold:
                best = candidates[k]
        if best is None:
            best = Person(len(self.persons) + 1)
            self.persons.append(best)
        best.tracks.append(track)
        if best.name is None:
            best.name = self.name_for(best, self.persons)
        return best

    def name_for(self, person: Person, everyone: list[Person]) -> str | None:
        """The nearest known name below the threshold that no one on screen with ``person`` carries."""
        if not self.known or not person.comparable:
            return None
        taken = {p.name for p in everyone if p is not person and any(p.overlaps(t) for t in person.tracks)}
        mean = person.mean
        scored = sorted((float(np.linalg.norm(mean - e)), n) for n, e in self.known.items() if n not in taken)
        return scored[0][1] if scored and scored[0][0] < self.threshold else None


def cluster_persons(persons: list[Person], threshold: float) -> list[Person]:
    """Merge persons, closest pair first, while their descriptors are closer than ``threshold``.

    Two persons are never merged when any of their tracks overlap in time. The result is
    numbered 1, 2, ... in order of first appearance (the identity stage then keeps the IDs the
    video showed instead; see :meth:`fervid.identity.stage.IdentityStage.finish`).
    """
    groups = [Person(0, list(p.tracks), p.name) for p in persons if p.tracks]
    while len(groups) > 1:
        distances = np.array([[_linkage(a, b) if a is not b else np.inf for b in groups] for a in groups])
        for i, j in zip(*np.unravel_index(np.argsort(distances, axis=None), distances.shape)):
            if i >= j or distances[i, j] >= threshold:
                continue
            a, b = groups[i], groups[j]
            if any(a.overlaps(t) for t in b.tracks) or (a.name and b.name and a.name != b.name):
                continue
            a.tracks += b.tracks
            a.name = a.name or b.name
            del groups[j]
            break
        else:
            break
    groups.sort(key=lambda g: g.first_frame)
    for number, group in enumerate(groups, start=1):
        group.person_id = number
    return groups


def _linkage(a: Person, b: Person) -> float:
    """Complete linkage between two persons (inf when either has no descriptors)."""
    return max((b.distance(t) for t in a.comparable), default=float("inf"))
