"""The timeline PNG: one panel per person when identity is on, so it speaks the report's and ELAN's IDs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fervid.plots import panel_labels, plot_timeline

CLASSES = ("happy", "neutral")


def _faces(person_of_track: dict[int, int] | None, names: dict[int, str] | None = None) -> pd.DataFrame:
    """Three face tracks one after the other, 10 frames each at 10 fps."""
    rows = []
    for k, track in enumerate((1, 2, 3)):
        for i in range(10):
            rows.append({"frame": 10 * k + i, "time_s": (10 * k + i) / 10, "face_id": track,
                         "p_happy": 0.7, "p_neutral": 0.3})  # fmt: skip
    faces = pd.DataFrame(rows)
    if person_of_track is not None:
        faces.insert(3, "person_id", faces["face_id"].map(person_of_track))
    if names is not None:
        faces.insert(4, "person", faces["person_id"].map(names))
    return faces


def _panels(path: Path) -> float:
    """How many panels a PNG holds, from its height (the margins are fixed in inches; 1.6 in a panel up to 4)."""
    return (Image.open(path).height / 100 - 0.95 - 0.55) / 1.6


@pytest.mark.parametrize(
    ("person_of_track", "panels"),
    [(None, 3), ({1: 1, 2: 2, 3: 1}, 2), ({1: 1, 2: 1, 3: 1}, 1)],
)
def test_a_panel_per_person_with_identity_else_per_track(tmp_path: Path, person_of_track, panels) -> None:
    path = plot_timeline(_faces(person_of_track), CLASSES, tmp_path / "t.png", time_range=(0.0, 2.9))
    assert _panels(path) == pytest.approx(panels)


def test_a_persons_panel_names_it_and_its_face_tracks() -> None:
    faces = _faces({1: 1, 2: 2, 3: 1}, names={1: "Ada", 2: None})
    assert panel_labels("person_id", 1, faces[faces["person_id"] == 1]) == ("P1", "P1 Ada · face tracks 1, 3")
    assert panel_labels("person_id", 2, faces[faces["person_id"] == 2]) == ("P2", "P2 face track 2")
    assert panel_labels("face_id", 3, faces[faces["face_id"] == 3]) == ("face 3", None)


def test_untracked_rows_and_unidentified_faces_get_no_panel(tmp_path: Path) -> None:
    faces = _faces({1: 1, 2: 2, 3: 3})
    faces.loc[faces["face_id"] == 3, ["face_id", "person_id"]] = [-1, 0]
    path = plot_timeline(faces, CLASSES, tmp_path / "t.png")
    assert _panels(path) == pytest.approx(2)
    assert np.asarray(Image.open(path)).shape[2] in (3, 4)
