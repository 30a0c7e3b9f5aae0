"""The behaviour stage's own files: ``<stem>.blinks.csv`` and, with ``--landmarks``, ``<stem>.landmarks.parquet``.

Both are written atomically (:func:`fervid.io.tables.write_table`); see docs/behaviour-measures.md for their
columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fervid.behaviour.stage import POINTS_KEY
from fervid.io.tables import write_table
from fervid.smooth import SmoothedResult

if TYPE_CHECKING:
    from fervid.input_result import InputResult

#: The landmarks table's point columns: ``pt0_x, pt0_y, ... pt67_x, pt67_y`` (dlib's 0-based point numbers).
POINT_COLUMNS: tuple[str, ...] = tuple(f"pt{i}_{axis}" for i in range(68) for axis in ("x", "y"))


def points_of(table: pd.DataFrame) -> np.ndarray:
    """(n, 68, 2) float64 points of a landmarks table's rows (:data:`POINT_COLUMNS`): what :class:`LandmarksSink`
    wrote, for scripts and tests that read ``<stem>.landmarks.parquet`` back."""
    return table[list(POINT_COLUMNS)].to_numpy(np.float64).reshape(-1, 68, 2)


class BlinksSink:
    """``<stem>.blinks.csv`` (or ``.parquet`` by ``--format``): one row per blink, for tracked inputs."""

    def __init__(self, suffixes: tuple[str, ...]) -> None:
        self.suffixes = suffixes

    def write(self, result: InputResult, outdir: Path, stem: str) -> list[Path]:
        if result.blinks is None:
            return []
        paths = [outdir / f"{stem}.blinks{suffix}" for suffix in self.suffixes]
        for path in paths:
            write_table(result.blinks, path)
        return paths


class LandmarksSink:
    """``<stem>.landmarks.parquet``: the 68 points of every face, one wide row per face (``--landmarks``).

    Columns: ``frame``, ``file`` (image inputs), ``time_s``, ``face_id``, then :data:`POINT_COLUMNS` in frame
    pixels; rows in the faces table's order, so the two join on (``frame``, ``face_id``). The points are kept
    as they stream (136 float32 a face: about 60 MB for an hour of one face at 30 fps).
    """

    def __init__(self, path: Path, with_file: bool) -> None:
        self.path = path
        self.with_file = with_file
        self._parts: list[tuple[int, str, float, np.ndarray, np.ndarray]] = []

    def add(self, result: SmoothedResult) -> None:
        dets = result.detections
        if len(dets):
            frame = result.frame
            points = dets.data[POINTS_KEY].reshape(len(dets), 136).astype(np.float32)
            self._parts.append((frame.index, frame.source or "", frame.time_s, dets.track_id.copy(), points))

    def close(self) -> list[Path]:
        counts = [len(p[3]) for p in self._parts]
        columns: dict[str, np.ndarray] = {"frame": np.repeat([p[0] for p in self._parts], counts).astype(np.int64)}
        if self.with_file:
            columns["file"] = np.repeat(np.asarray([p[1] for p in self._parts], dtype=object), counts)
        columns["time_s"] = np.repeat([p[2] for p in self._parts], counts).astype(np.float64)
        columns["face_id"] = np.concatenate([p[3] for p in self._parts]) if counts else np.zeros(0, np.int64)
        points = np.concatenate([p[4] for p in self._parts]) if counts else np.zeros((0, 136), np.float32)
        table = pd.DataFrame({**columns, **{name: points[:, j] for j, name in enumerate(POINT_COLUMNS)}})
        write_table(table, self.path)
        self._parts = []
        return [self.path]

    def abort(self) -> None:
        """Nothing is written before :meth:`close`: forget the points."""
        self._parts = []
