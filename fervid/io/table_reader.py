"""Reading fervid's tables back (CSV or Parquet) with the dtypes they were made with.

Below :mod:`fervid.api`, which re-exports :func:`read_table` and :func:`find_table`: the modules the API's commands
call (``fervid persons``' rewrite, the corpus index, the corpus tables) read tables too, and reading them through
the API made each of them and the API import the other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from fervid.columns import BY_NAME, TABLES, lookup

#: The per-input outputs a summary is built from, in the order they are looked for.
TABLE_SUFFIXES = (".parquet", ".csv")
#: Columns of the per-face tables that are not float32 (timeline) / float64 (summary).
_TIMELINE_DTYPES = {"frame": "int64", "time_s": "float64", "face_id": "int64", "person_id": "int64"}
_SUMMARY_DTYPES = {"face_id": "int64", "person_id": "int64", "first_time_s": "float64", "last_time_s": "float64",
                   "frames": "int64", "readable_frames": "int64", "onset_s": "float64",
                   "offset_s": "float64"}  # fmt: skip
_TEXT_COLUMNS = ("file", "files", "emotion", "dominant_emotion", "input", "source", "model", "person", "face_ids",
                 "event", "measure", "pose_source")  # fmt: skip


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A faces, summary, persons or events table, or a corpus table (wide or long), from CSV or Parquet, with the
    dtypes it was made with.

    Parquet keeps dtypes itself; CSV has none, so a table's columns come back with the dtypes
    :mod:`fervid.columns` defines for them (ids and counts int64, the timeline's measurements
    float32, ``readable`` bool, times and summary statistics float64, text as text), other
    columns float32 (faces) or float64 (summaries). A corpus
    summary's ``person_id`` is missing for inputs run without identity, its ``readable_frames`` for
    runs made before it existed: such a column is then Int64 (nullable).
    """
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    is_summary = path.name.endswith((".summary.csv", ".persons.csv", ".events.csv", ".long.csv"))
    fixed = _SUMMARY_DTYPES if is_summary else {**{c.name: c.dtype for c in BY_NAME.values()}, **_TIMELINE_DTYPES}
    table = next((t for t in sorted(TABLES, key=len, reverse=True) if path.name.endswith(f".{t}.csv")), None)
    header = pd.read_csv(path, nrows=0).columns
    dtypes: dict[str, Any] = {c: fixed.get(c, "float64" if is_summary else "float32") for c in header}
    defined = {c: lookup(table, c) for c in header} if table else {}
    dtypes |= {c: "str" if d.dtype == "text" else d.dtype for c, d in defined.items() if d is not None}
    for c in _TEXT_COLUMNS:
        if c in dtypes:
            dtypes[c] = "str"
    nullable = [c for c in NULLABLE_COUNTS if c in dtypes] if is_summary else []
    dtypes |= dict.fromkeys(nullable, "Int64")  # empty in some rows of a corpus summary
    frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])
    return int64_where_complete(frame, nullable)


#: Integer columns of a corpus summary that some inputs lack: ``person_id`` (runs without identity),
#: ``readable_frames`` (runs made before it existed).
NULLABLE_COUNTS = ("person_id", "readable_frames")


def int64_where_complete(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Each of ``columns`` as int64 when no value is missing, else as Int64 (nullable)."""
    for c in columns:
        frame[c] = frame[c].astype("Int64")
        if not frame[c].isna().any():
            frame[c] = frame[c].astype("int64")
    return frame


def find_table(folder: Path, stem: str, what: str) -> Path:
    """The ``<stem>.<what>`` table in ``folder`` (Parquet or CSV), or FileNotFoundError."""
    for suffix in TABLE_SUFFIXES:
        path = folder / f"{stem}.{what}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"{folder}: no {stem}.{what}.parquet or .csv")
