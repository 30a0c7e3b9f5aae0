"""Per-face timelines and per-track summaries as pandas DataFrames (written as CSV/Parquet).

Column layout is part of the public contract (researchers script against it):
timeline: ``frame, [file], time_s, face_id, x1, y1, x2, y2, det_score, lm1_x, lm1_y, ... lm5_x,
lm5_y, emotion, confidence, p_<class>..., [readable, p_correct, face_px, ...]`` (the per-face columns of
:mod:`fervid.columns`, when the classifier measures them); summary: ``face_id, [file], first_time_s, last_time_s,
frames, visible_s, readable_frames, readable_share, dominant_emotion, mean_p_<class>..., share_<class>...``.

Conclusions (dominant emotion, means, shares; the report, moments, ELAN and plots too) rest only on the faces
:func:`trusted` keeps: readable, with ``p_correct`` at or above ``--min-p-correct``. The faces table keeps every
face with its raw probabilities; time on screen counts every face.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fervid.columns import BY_NAME, CLASS, lookup, ordered, present
from fervid.defaults import MIN_P_CORRECT
from fervid.io.atomic import atomic_path
from fervid.types import Detections, FrameResult

if TYPE_CHECKING:
    from collections.abc import Mapping

LANDMARK_COLUMNS: tuple[str, ...] = tuple(f"lm{i}_{axis}" for i in range(1, 6) for axis in ("x", "y"))
#: Without the times of the frames that had no face, a step longer than this many typical steps is a stretch
#: without faces, not one long frame (the same rule as the report's visible stretches).
GAP_STEPS = 2.5
#: Separator of the ``files`` column of ``persons`` (a character file names rarely hold; Windows forbids it).
FILES_SEPARATOR = " | "


def trusted(faces: pd.DataFrame | Detections, min_p_correct: float | None = None) -> np.ndarray:
    """Which faces a conclusion may rest on (bool per row): ``readable`` and ``p_correct >= min_p_correct``.

    ``faces`` is a faces table or one frame's :class:`~fervid.types.Detections` (its ``data``
    carries the classifier's ``readable`` and ``p_correct``), so the tables, the report and the
    annotated video apply one rule. Every face counts when ``min_p_correct`` is 0 (the filter is
    off) or when there is nothing to judge by: no ``readable``/``p_correct`` (a table made before
    they existed, a model without a reliability file). A missing value does not count.
    ``min_p_correct`` None: the option's default.
    """
    threshold = MIN_P_CORRECT if min_p_correct is None else float(min_p_correct)
    values: Mapping[str, object] | pd.DataFrame = faces.data if isinstance(faces, Detections) else faces
    n = len(faces)
    if threshold <= 0 or "readable" not in values or "p_correct" not in values:
        return np.ones(n, dtype=bool)
    readable = _as_bool(np.asarray(values["readable"]))
    p_correct = np.asarray(values["p_correct"], dtype=np.float64)
    return readable & (p_correct >= threshold)  # NaN compares False


def _as_bool(values: np.ndarray) -> np.ndarray:
    """A bool column however it was stored: bool, 0/1 (NaN: False), or the text ``True``/``False``."""
    if values.dtype == bool:
        return values
    if values.dtype.kind in "fiu":
        return np.nan_to_num(values.astype(np.float64), nan=0.0) != 0
    true_values: list[Any] = [True, 1, "True", "true", "1"]  # mixed types: numpy's stub takes no list[object]
    return np.isin(np.asarray(values, dtype=object), true_values)


def classes_of(faces: pd.DataFrame) -> tuple[str, ...]:
    """The classes of a faces table, from its ``p_<class>`` columns (``p_correct`` is none: :mod:`fervid.columns`)."""
    return tuple(c[2:] for c in faces.columns if c.startswith("p_") and c not in BY_NAME)


def timeline_columns(
    classes: Sequence[str], with_file: bool, with_person: bool = False, with_name: bool = False,
    data_columns: Sequence[str] = (),
) -> list[str]:  # fmt: skip
    """The faces table's columns, in the order :mod:`fervid.columns` defines: ``person_id`` follows ``face_id``
    with identity on, ``person`` with known people, and the per-face ``data_columns`` follow the probabilities
    (``ps_<class>`` and ``valence_s``, added by smoothing, are not among them)."""
    without = {f"ps_{CLASS}", "valence_s", *(() if with_file else ("file",)), *(() if with_person else ("person_id",)),
               *(() if with_name else ("person",))}  # fmt: skip
    return present("faces", classes, without, data_columns)


class TimelineBuilder:
    """Collects frame results into growing column arrays; the timeline DataFrame is made once, at the end.

    Why columns and not a list of per-frame arrays: a long video has hundreds of thousands
    of frames, and a few small numpy arrays per frame cost ~1.5 KB of object overhead each
    (300 MB for two hours at 30 fps). Here a row costs its bytes (~100 for 8 classes) and
    the buffers grow by doubling, so memory follows the number of faces, not the frame count.

    ``data_columns`` names the per-face values every frame's ``Detections.data`` holds (the
    classifier's measurements); each becomes a column (:mod:`fervid.columns` gives its dtype).
    """

    def __init__(self, classes: Sequence[str], with_file: bool = False, data_columns: Sequence[str] = ()) -> None:
        self.classes = tuple(classes)
        self.with_file = with_file
        self.data_columns = tuple(ordered(list(data_columns)))
        self.rows = 0
        k = len(self.classes)
        shapes: dict[str, tuple[tuple[int, ...], type]] = {
            "frame": ((), np.int64), "time_s": ((), np.float64), "face_id": ((), np.int64),
            "xyxy": ((4,), np.float32), "det_score": ((), np.float32), "landmarks": ((10,), np.float32),
            "probs": ((k,), np.float32),
        }  # fmt: skip
        if with_file:
            shapes["file"] = ((), object)
        for name in self.data_columns:
            kind = BY_NAME[name].dtype if name in BY_NAME else "float32"
            shapes[f"data:{name}"] = ((), object if kind == "text" else np.dtype(kind).type)
        self._columns: dict[str, np.ndarray] = {
            name: np.empty((64, *shape), dtype) for name, (shape, dtype) in shapes.items()
        }
        self._times = np.empty(64, np.float64)  # every processed frame's time, faces or not
        self.frames_seen = 0

    def add(self, result: FrameResult) -> None:
        if self.frames_seen == len(self._times):
            self._times = np.concatenate([self._times, np.empty_like(self._times)])
        self._times[self.frames_seen] = result.frame.time_s
        self.frames_seen += 1
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
        for name in self.data_columns:
            c[f"data:{name}"][rows] = dets.data[name]
        self.rows += n

    def frame_times(self) -> np.ndarray:
        """The time of every processed frame, in order, with or without faces (for :func:`frame_durations`)."""
        return self._times[: self.frames_seen].copy()

    def frame(self) -> pd.DataFrame:
        columns = timeline_columns(self.classes, self.with_file, data_columns=self.data_columns)
        if self.rows == 0:
            return empty_timeline(self.classes, self.with_file, self.data_columns)
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
        for name in self.data_columns:
            data[name] = cat[f"data:{name}"]
        return pd.DataFrame(data, copy=True)[columns]


def empty_timeline(classes: Sequence[str], with_file: bool = False, data_columns: Sequence[str] = ()) -> pd.DataFrame:
    """A timeline with the full header and zero rows, with the same dtypes as a filled one."""
    columns = timeline_columns(classes, with_file, data_columns=data_columns)
    return pd.DataFrame({c: pd.Series(dtype=dtype_of("faces", c, "float32")) for c in columns})


def dtype_of(table: str, column: str, default: str) -> str:
    """A column's dtype as :mod:`fervid.columns` defines it (``text``: object), ``default`` for an undefined one."""
    defined = lookup(table, column)
    if defined is None:
        return default
    return "object" if defined.dtype == "text" else defined.dtype


def frame_durations(times: np.ndarray, complete: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The distinct processed frame times, sorted, and how long each frame stands for: the step to the next one.

    Why not ``--every`` over the frame rate: in variable frame rate video (phones, screen
    recordings) frames are not evenly spaced, and the file's average rate is wrong for any
    stretch of it. A frame lasts until the next processed frame (so ``--every`` is in the
    step), the last one the median step. ``complete`` says whether ``times`` holds every
    processed frame (the run loop's :meth:`TimelineBuilder.frame_times`); the times of a saved
    faces table have only frames with faces, so there a step over ``GAP_STEPS`` median steps is
    a stretch without faces and counts one median step. Durations are NaN where no time is
    known (independent photos) or one frame gives no step.
    """
    t = np.unique(np.asarray(times, dtype=np.float64))
    t = t[np.isfinite(t)]
    if len(t) < 2:
        return t, np.full(len(t), np.nan)
    steps = np.diff(t)
    typical = float(np.median(steps))
    if not complete:
        steps = np.where(steps > GAP_STEPS * typical, typical, steps)
    return t, np.append(steps, typical)


def visible_seconds(timeline: pd.DataFrame, by: str, frame_times: np.ndarray | None = None) -> pd.Series:
    """Per value of ``by`` (a face track or a person): the time on screen, the summed durations of the distinct
    frames it was seen in (:func:`frame_durations`); NaN without times. ``frame_times``: every processed frame's
    time, when known (else the timeline's own times stand in)."""
    complete = frame_times is not None
    t, durations = frame_durations(frame_times if frame_times is not None else timeline["time_s"].to_numpy(), complete)
    seen = timeline.loc[timeline[by] >= 1, [by, "time_s"]].drop_duplicates()
    times = seen["time_s"].to_numpy(dtype=np.float64)
    at = np.clip(np.searchsorted(t, times), 0, max(len(t) - 1, 0))
    found = (at < len(t)) & (t[at] == times) if len(t) else np.zeros(len(times), bool)
    lasting = np.where(found, durations[at] if len(t) else np.nan, np.nan)
    return pd.Series(lasting, index=seen.index).groupby(seen[by]).sum(min_count=1)


def summarize_tracks(
    timeline: pd.DataFrame, classes: Sequence[str], by: str = "face_id", frame_times: np.ndarray | None = None,
    min_p_correct: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """One row per face track (or per person, ``by="person_id"``): time span, frame count, time on screen,
    how many faces the conclusions rest on, dominant emotion, mean probabilities, label shares.

    ``dominant_emotion`` is the label that is on top in most of the face's frames (ties go to
    the higher mean probability), which is what a reader of the video would call it. It, the
    means and the shares count only the :func:`trusted` faces (``min_p_correct``; None: the
    option's default): ``readable_frames`` of them, ``readable_share`` of ``frames``. A track
    with none has no dominant emotion (NA) and NaN means and shares. Time span, ``frames`` and
    ``visible_s`` count every face: time on screen is a fact, whatever could be read.

    When the timeline has ``person_id``, the per-track table carries each track's person too;
    for image inputs, ``file`` is the file of the track's first face (an independent photo's
    face is a track of its own, so: its photo). ``visible_s`` is :func:`visible_seconds`
    (``frame_times``: every processed frame's time, from :meth:`TimelineBuilder.frame_times`).
    """
    prob_cols = [f"p_{c}" for c in classes]
    head = [by, "person_id"] if by == "face_id" and "person_id" in timeline else [by]
    if by == "face_id" and "file" in timeline:
        head.append("file")
    # blinks_per_min and mean_valence come later, from the behaviour stage's data (fervid.behaviour.summary)
    behaviour = {"blinks_per_min", "mean_valence"}
    columns = present("summary", classes, without=({"face_id", "person_id", "file"} - set(head)) | behaviour)
    tracked = timeline[timeline[by] >= 1]
    if tracked.empty:
        return pd.DataFrame({c: pd.Series(dtype=dtype_of("summary", c, "float64")) for c in columns})
    grouped = tracked.groupby(by, sort=True)
    ids = grouped.size().index
    counted = tracked[trusted(tracked, min_p_correct)]
    means = counted.groupby(by)[prob_cols].mean().reindex(ids)
    label_index = counted[prob_cols].to_numpy().argmax(axis=1)
    onehot = pd.DataFrame(np.eye(len(classes))[label_index], index=counted.index, columns=list(classes))
    shares = onehot.groupby(counted[by]).mean().reindex(ids)
    readable_frames = counted.groupby(by).size().reindex(ids, fill_value=0).to_numpy().astype(np.int64)
    # most frequent top label; ties broken by the mean probability (tiny tie-breaking weight); none without faces
    dominant = np.nan_to_num(shares.to_numpy() + 1e-9 * means.to_numpy(), nan=-1.0).argmax(axis=1)
    dominant_emotion = np.where(readable_frames > 0, np.asarray(classes, dtype=object)[dominant], None)
    frames = grouped.size().to_numpy().astype(np.int64)
    summary = pd.DataFrame(
        {
            by: ids.astype(np.int64),
            **({"person_id": grouped["person_id"].first().to_numpy().astype(np.int64)} if head[1:2] == ["person_id"]
               else {}),
            **({"file": grouped["file"].first().to_numpy().astype(object)} if "file" in head else {}),
            "first_time_s": grouped["time_s"].min().to_numpy(),
            "last_time_s": grouped["time_s"].max().to_numpy(),
            "frames": frames,
            "visible_s": visible_seconds(timeline, by, frame_times).reindex(ids).to_numpy(np.float64),
            "readable_frames": readable_frames,
            "readable_share": readable_frames / frames,
            "dominant_emotion": dominant_emotion,
        }
    )  # fmt: skip
    for c in classes:
        summary[f"mean_p_{c}"] = means[f"p_{c}"].to_numpy(np.float64)  # float64, as defined
    for c in classes:
        summary[f"share_{c}"] = shares[c].to_numpy(np.float64)
    return summary[columns]


def add_persons(timeline: pd.DataFrame, person_of_track: dict[int, int], names: dict[int, str] | None) -> pd.DataFrame:
    """The timeline with ``person_id`` (and ``person``, the name, with known people) after ``face_id``."""
    out = timeline.copy()
    at = out.columns.get_loc("face_id") + 1
    person = out["face_id"].map(person_of_track).fillna(0).astype(np.int64)
    out.insert(at, "person_id", person)
    if names is not None:
        out.insert(at + 1, "person", person.map(names).astype(object).fillna(""))  # object first: all-NaN is float
    return out


def summarize_persons(
    timeline: pd.DataFrame, classes: Sequence[str], frame_times: np.ndarray | None = None,
    min_p_correct: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """One row per identified person: their name (with known people), their face IDs, for image inputs the
    file of each of those tracks (``files``, in the order of ``face_ids``, joined by ``FILES_SEPARATOR``: for
    independent photos, the photos the person is in), then the track columns (:func:`summarize_tracks`: the
    conclusions over the person's :func:`trusted` faces only)."""
    summary = summarize_tracks(timeline, classes, by="person_id", frame_times=frame_times, min_p_correct=min_p_correct)
    persons = timeline[timeline["person_id"] >= 1]
    tracks = persons.groupby("person_id")["face_id"].unique()
    ids = [sorted(int(t) for t in tracks[p]) for p in summary["person_id"]]
    at = 1
    if "person" in timeline:
        named = persons.groupby("person_id")["person"].first()
        summary.insert(at, "person", [named.get(p, "") for p in summary["person_id"]])
        at += 1
    summary.insert(at, "face_ids", [" ".join(map(str, faces)) for faces in ids])
    if "file" in timeline:
        file_of = persons.groupby("face_id")["file"].first()
        summary.insert(at + 1, "files", [FILES_SEPARATOR.join(str(file_of[t]) for t in faces) for faces in ids])
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


def write_table(frame: pd.DataFrame, path: Path, float_format: str = "%.6g") -> None:
    """CSV (or Parquet by suffix), written under a temporary name and renamed when complete.

    ``float_format``: the CSV's floats (6 significant digits suit probabilities; a long table, whose
    ``value`` column mixes times and probabilities, needs more).
    """
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            seconds_as_text(frame).to_csv(tmp, index=False, float_format=float_format)
