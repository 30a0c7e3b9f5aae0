"""Who the report is about: one subject per person (``P2``), or per face track (``F3``) with ``--no-identity``.

Person IDs are final only when the input is done (:class:`fervid.input_result.InputResult`: the
``person_id`` column of the timeline), so the frame sinks collect per track and the report
maps tracks to subjects here, once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fervid.annotate import colour_for


@dataclass(frozen=True)
class Subject:
    """One row of the gallery: a person (all their tracks) or, without identity, one track."""

    key: int  # person_id, or face_id without identity
    label: str  # "P2" / "F3": file names, tier names, the report's IDs
    name: str  # the --people name, or ""
    tracks: tuple[int, ...]  # face_ids
    colour: str  # the box colour on the annotated video, as #rrggbb

    @property
    def title(self) -> str:
        """``P2 Ada`` with a name, else ``P2``."""
        return f"{self.label} {self.name}" if self.name else self.label


def subject_column(timeline: pd.DataFrame) -> str:
    """``person_id`` when the identity stage ran, else ``face_id``."""
    return "person_id" if "person_id" in timeline.columns else "face_id"


def subjects_of(timeline: pd.DataFrame) -> list[Subject]:
    """The subjects of a timeline, in ID order (rows without an ID, ``< 1``, belong to no one)."""
    column = subject_column(timeline)
    rows = timeline[timeline[column] >= 1]
    if rows.empty:
        return []
    prefix = "P" if column == "person_id" else "F"
    tracks = rows.groupby(column)["face_id"].unique()
    names = rows.groupby(column)["person"].first() if "person" in rows.columns else None
    subjects = []
    for key, faces in tracks.items():
        name = str(names[key]) if names is not None and isinstance(names[key], str) else ""
        r, g, b = colour_for(int(key))
        subjects.append(Subject(int(key), f"{prefix}{int(key)}", name, tuple(sorted(int(f) for f in faces)),
                                f"#{r:02x}{g:02x}{b:02x}"))  # fmt: skip
    return subjects


def rows_of(timeline: pd.DataFrame, subject: Subject) -> np.ndarray:
    """Positions of a subject's rows in the timeline, in time order."""
    keys = timeline[subject_column(timeline)].to_numpy()
    where = np.flatnonzero(keys == subject.key)
    times = timeline["time_s"].to_numpy()[where]
    return where[np.argsort(times, kind="stable")]
