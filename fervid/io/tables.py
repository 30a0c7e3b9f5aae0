"""Per-face timelines and per-track summaries as pandas DataFrames (written as CSV/Parquet).

Column layout is part of the public contract (researchers script against it):
timeline: ``frame, [file], time_s, face_id, x1, y1, x2, y2, det_score, lm1_x, lm1_y, ... lm5_x,
lm5_y, emotion, confidence, p_<class>...``; summary: ``face_id, first_time_s, last_time_s,
frames, dominant_emotion, mean_p_<class>..., share_<class>...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fervid.io.atomic import atomic_path
from fervid.types import FrameResult

LANDMARK_COLUMNS: tuple[str, ...] = tuple(f"lm{i}_{axis}" for i in range(1, 6) for axis in ("x", "y"))


def timeline_columns(
    classes: Sequence[str], with_file: bool, with_person: bool = False, with_name: bool = False
) -> list[str]:
    """The faces table's columns: ``person_id`` follows ``face_id`` with identity on, ``person`` with known people."""
    head = ["frame", "file"] if with_file else ["frame"]
    who = ["face_id", *(["person_id"] if with_person else []), *(["person"] if with_name else [])]
    return [
        *head, "time_s", *who, "x1", "y1", "x2", "y2", "det_score", *LANDMARK_COLUMNS,
        "emotion", "confidence", *(f"p_{c}" for c in classes),
    ]  # fmt: skip


class TimelineBuilder:
    """Collects frame results into growing column arrays; the timeline DataFrame is made once, at the end.

    Why columns and not a list of per-frame arrays: a long video has hundreds of thousands
    of frames, and a few small numpy arrays per frame cost ~1.5 KB of object overhead each
    (300 MB for two hours at 30 fps). Here a row costs its bytes (~100 for 8 classes) and
    the buffers grow by doubling, so memory follows the number of faces, not the frame count.
    """

    def __init__(self, classes: Sequence[str], with_file: bool = False) -> None:
        self.classes = tuple(classes)
        self.with_file = with_file
        self.rows = 0
        k = len(self.classes)
        shapes: dict[str, tuple[tuple[int, ...], type]] = {
            "frame": ((), np.int64), "time_s": ((), np.float64), "face_id": ((), np.int64),
            "xyxy": ((4,), np.float32), "det_score": ((), np.float32), "landmarks": ((10,), np.float32),
            "probs": ((k,), np.float32),
        }  # fmt: skip
        if with_file:
            shapes["file"] = ((), object)
        self._columns = {name: np.empty((64, *shape), dtype) for name, (shape, dtype) in shapes.items()}

    def add(self, result: FrameResult) -> None:
        dets, preds = result.detections, result.predictions
        n = len(dets)
        if n == 0:
            return
        if self.rows + n > len(self._columns["frame"]):
            capacity = max(2 * len(self._columns["frame"]), self.rows + n)
            for name, column in self._columns.items():
                grown = np.empty((capacity, *column.shape[1:]), column.dtype)
                grown[: self.rows] = column[: self.rows]
                self._columns[name] = grown
        rows = slice(self.rows, self.rows + n)
        c = self._columns
        c["frame"][rows] = result.frame.index
        c["time_s"][rows] = result.frame.time_s
        c["face_id"][rows] = dets.track_id
        c["xyxy"][rows] = dets.xyxy
        c["det_score"][rows] = dets.score
        c["landmarks"][rows] = dets.landmarks.reshape(n, 10)
        c["probs"][rows] = preds.probs
        if self.with_file:
            c["file"][rows] = result.frame.source or ""
        self.rows += n

    def frame(self) -> pd.DataFrame:
        columns = timeline_columns(self.classes, self.with_file)
        if self.rows == 0:
            return empty_timeline(self.classes, self.with_file)
        cat = {name: column[: self.rows] for name, column in self._columns.items()}
        probs = cat["probs"]
        data: dict[str, np.ndarray] = {"frame": cat["frame"], "time_s": cat["time_s"], "face_id": cat["face_id"]}
        if self.with_file:
            data["file"] = cat["file"]
        for j, name in enumerate(("x1", "y1", "x2", "y2")):
            data[name] = cat["xyxy"][:, j]
        data["det_score"] = cat["det_score"]
        for j, name in enumerate(LANDMARK_COLUMNS):
            data[name] = cat["landmarks"][:, j]
        data["emotion"] = np.asarray(self.classes, dtype=object)[probs.argmax(axis=1)]
        data["confidence"] = probs.max(axis=1)
        for j, cls in enumerate(self.classes):
            data[f"p_{cls}"] = probs[:, j]
        return pd.DataFrame(data, copy=True)[columns]


def empty_timeline(classes: Sequence[str], with_file: bool = False) -> pd.DataFrame:
    """A timeline with the full header and zero rows, with the same dtypes as a filled one."""
    dtypes = {"frame": "int64", "file": "object", "time_s": "float64", "face_id": "int64", "emotion": "object"}
    columns = timeline_columns(classes, with_file)
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "float32")) for c in columns})


def summarize_tracks(timeline: pd.DataFrame, classes: Sequence[str], by: str = "face_id") -> pd.DataFrame:
    """One row per face track (or per person, ``by="person_id"``): time span, frame count, dominant
    emotion, mean probabilities, label shares.

    ``dominant_emotion`` is the label that is on top in most of the face's frames (ties go to
    the higher mean probability), which is what a reader of the video would call it. When the
    timeline has ``person_id``, the per-track table carries each track's person too.
    """
    prob_cols = [f"p_{c}" for c in classes]
    head = [by, "person_id"] if by == "face_id" and "person_id" in timeline else [by]
    columns = [*head, "first_time_s", "last_time_s", "frames", "dominant_emotion",
               *(f"mean_p_{c}" for c in classes), *(f"share_{c}" for c in classes)]  # fmt: skip
    tracked = timeline[timeline[by] >= 1]
    if tracked.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if c == "dominant_emotion" else "float64") for c in columns})
    grouped = tracked.groupby(by, sort=True)
    means = grouped[prob_cols].mean()
    label_index = tracked[prob_cols].to_numpy().argmax(axis=1)
    onehot = pd.DataFrame(np.eye(len(classes))[label_index], index=tracked.index, columns=list(classes))
    shares = onehot.groupby(tracked[by]).mean()
    # most frequent top label; ties broken by the mean probability (tiny tie-breaking weight)
    dominant = (shares.to_numpy() + 1e-9 * means.to_numpy()).argmax(axis=1)
    summary = pd.DataFrame(
        {
            by: means.index.astype(np.int64),
            **({"person_id": grouped["person_id"].first().to_numpy().astype(np.int64)} if len(head) > 1 else {}),
            "first_time_s": grouped["time_s"].min().to_numpy(),
            "last_time_s": grouped["time_s"].max().to_numpy(),
            "frames": grouped.size().to_numpy().astype(np.int64),
            "dominant_emotion": np.asarray(classes, dtype=object)[dominant],
        }
    )
    for c in classes:
        summary[f"mean_p_{c}"] = means[f"p_{c}"].to_numpy()
    for c in classes:
        summary[f"share_{c}"] = shares[c].to_numpy()
    return summary[columns]


def add_persons(timeline: pd.DataFrame, person_of_track: dict[int, int], names: dict[int, str] | None) -> pd.DataFrame:
    """The timeline with ``person_id`` (and ``person``, the name, with known people) after ``face_id``."""
    out = timeline.copy()
    at = out.columns.get_loc("face_id") + 1
    person = out["face_id"].map(person_of_track).fillna(0).astype(np.int64)
    out.insert(at, "person_id", person)
    if names is not None:
        out.insert(at + 1, "person", person.map(names).fillna("").astype(object))
    return out


def summarize_persons(timeline: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """One row per identified person: their name (with known people), their face IDs, then the track columns."""
    summary = summarize_tracks(timeline, classes, by="person_id")
    persons = timeline[timeline["person_id"] >= 1]
    tracks = persons.groupby("person_id")["face_id"].unique()
    summary.insert(1, "face_ids", [" ".join(map(str, sorted(tracks[p]))) for p in summary["person_id"]])
    if "person" in timeline:
        named = persons.groupby("person_id")["person"].first()
        summary.insert(1, "person", [named.get(p, "") for p in summary["person_id"]])
    return summary


def seconds_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in seconds (``*_s``) as text to the microsecond, for CSV.

    Other floats are written with 6 significant digits, which is plenty for a probability but
    not for a time: 3725.4167 s would become 3725.42, and past 10,000 s (2.8 h) neighbouring
    frames would share a time. Empty where the time is unknown (photos).
    """
    columns = [c for c in frame.columns if c.endswith("_s") and pd.api.types.is_float_dtype(frame[c])]
    if not columns:
        return frame

    def text(value: float) -> str:
        return "" if value != value else f"{value:.6f}".rstrip("0").rstrip(".")

    return frame.assign(**{c: frame[c].map(text) for c in columns})


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """CSV (or Parquet by suffix), written under a temporary name and renamed when complete."""
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            seconds_as_text(frame).to_csv(tmp, index=False, float_format="%.6g")
