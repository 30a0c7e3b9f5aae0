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


def timeline_columns(classes: Sequence[str], with_file: bool) -> list[str]:
    head = ["frame", "file"] if with_file else ["frame"]
    return [
        *head, "time_s", "face_id", "x1", "y1", "x2", "y2", "det_score", *LANDMARK_COLUMNS,
        "emotion", "confidence", *(f"p_{c}" for c in classes),
    ]  # fmt: skip


class TimelineBuilder:
    """Collects frame results as arrays and turns them into the timeline DataFrame once, at the end."""

    def __init__(self, classes: Sequence[str], with_file: bool = False) -> None:
        self.classes = tuple(classes)
        self.with_file = with_file
        self._chunks: list[dict[str, np.ndarray]] = []

    def add(self, result: FrameResult) -> None:
        dets, preds = result.detections, result.predictions
        n = len(dets)
        if n == 0:
            return
        chunk = {
            "frame": np.full(n, result.frame.index, dtype=np.int64),
            "time_s": np.full(n, result.frame.time_s, dtype=np.float64),
            "face_id": dets.track_id.astype(np.int64),
            "xyxy": dets.xyxy,
            "det_score": dets.score,
            "landmarks": dets.landmarks.reshape(n, 10),
            "probs": preds.probs,
        }
        if self.with_file:
            chunk["file"] = np.full(n, result.frame.source or "", dtype=object)
        self._chunks.append(chunk)

    def frame(self) -> pd.DataFrame:
        columns = timeline_columns(self.classes, self.with_file)
        if not self._chunks:
            return empty_timeline(self.classes, self.with_file)
        cat = {k: np.concatenate([c[k] for c in self._chunks]) for k in self._chunks[0]}
        probs = cat["probs"].astype(np.float32)
        data: dict[str, np.ndarray] = {"frame": cat["frame"], "time_s": cat["time_s"], "face_id": cat["face_id"]}
        if self.with_file:
            data["file"] = cat["file"]
        for j, name in enumerate(("x1", "y1", "x2", "y2")):
            data[name] = cat["xyxy"][:, j].astype(np.float32)
        data["det_score"] = cat["det_score"].astype(np.float32)
        for j, name in enumerate(LANDMARK_COLUMNS):
            data[name] = cat["landmarks"][:, j].astype(np.float32)
        data["emotion"] = np.asarray(self.classes, dtype=object)[probs.argmax(axis=1)]
        data["confidence"] = probs.max(axis=1)
        for j, cls in enumerate(self.classes):
            data[f"p_{cls}"] = probs[:, j]
        return pd.DataFrame(data)[columns]


def empty_timeline(classes: Sequence[str], with_file: bool = False) -> pd.DataFrame:
    """A timeline with the full header and zero rows, with the same dtypes as a filled one."""
    dtypes = {"frame": "int64", "file": "object", "time_s": "float64", "face_id": "int64", "emotion": "object"}
    columns = timeline_columns(classes, with_file)
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "float32")) for c in columns})


def summarize_tracks(timeline: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """One row per face track: time span, frame count, dominant emotion, mean probabilities, label shares.

    ``dominant_emotion`` is the label that is on top in most of the face's frames (ties go to
    the higher mean probability), which is what a reader of the video would call it.
    """
    prob_cols = [f"p_{c}" for c in classes]
    columns = ["face_id", "first_time_s", "last_time_s", "frames", "dominant_emotion",
               *(f"mean_p_{c}" for c in classes), *(f"share_{c}" for c in classes)]  # fmt: skip
    tracked = timeline[timeline["face_id"] >= 1]
    if tracked.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if c == "dominant_emotion" else "float64") for c in columns})
    grouped = tracked.groupby("face_id", sort=True)
    means = grouped[prob_cols].mean()
    label_index = tracked[prob_cols].to_numpy().argmax(axis=1)
    onehot = pd.DataFrame(np.eye(len(classes))[label_index], index=tracked.index, columns=list(classes))
    shares = onehot.groupby(tracked["face_id"]).mean()
    # most frequent top label; ties broken by the mean probability (tiny tie-breaking weight)
    dominant = (shares.to_numpy() + 1e-9 * means.to_numpy()).argmax(axis=1)
    summary = pd.DataFrame(
        {
            "face_id": means.index.astype(np.int64),
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


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """CSV (or Parquet by suffix), written under a temporary name and renamed when complete."""
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, float_format="%.6g")
