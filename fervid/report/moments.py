"""Emotion moments: per subject and non-neutral class, the frame where the smoothed probability peaks.

Raw per-frame probabilities flicker, so a moment is the peak of the *smoothed* probability:
the ``--smooth`` window and mode when smoothing is on (the same numbers as the ``ps_<class>``
columns), else a centred window of ``DEFAULT_WINDOW_S`` seconds used for the report only
(:func:`report_smoothing`; the report and ``<stem>.moments.csv`` say which). A peak below
``--moment-threshold`` is no moment. Only trusted faces (:func:`fervid.io.tables.trusted`: readable,
``p_correct`` at or above ``--min-p-correct``) are smoothed over and can be a moment.

The thumbnail must be cut while the frame is still there, so :class:`PeakCollector` smooths
each track's probabilities as frames stream, with the same kernel as
:func:`fervid.smooth.smooth_probs`: a row is final once the frames ``window`` seconds after it
have arrived (at once for ``causal``). It keeps per track and class the highest smoothed
value at or above the threshold and a JPEG crop of that face. Faces are cut only at a peak:
frames are held (by reference) until their rows are final, plus ``GRACE_S`` for a frame at a
peak, and never more than ``MAX_HELD_BYTES`` of pixels (past that, the oldest frame's faces
are cut at once). :func:`pick_moments` takes each subject's best over its tracks.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fervid.defaults import MIN_P_CORRECT
from fervid.io.atomic import atomic_path
from fervid.io.tables import trusted, write_table
from fervid.options import AnnotateOptions
from fervid.report.gallery import Pads, encode_jpeg, face_region, padded, remove_stale, resized
from fervid.report.subjects import Subject, subject_column
from fervid.smooth import kernel_weights, smooth_probs
from fervid.types import Detections, Frame, Predictions

#: The window (centred) for moments and ELAN labels when ``--smooth`` is off.
DEFAULT_WINDOW_S = 0.5
#: Side of a moment thumbnail in pixels (a little more context around the face than the gallery's).
THUMB_PX = 160
THUMB_MARGIN = 0.45
#: The names of the thumbnails' files (``remove_stale`` leaves everything else in ``moments/`` alone).
MOMENT_FILE = re.compile(r"^[PF]\d+-\w+\.jpg$")
#: The class that is never a moment.
NEUTRAL = "neutral"
#: Pixels of frames held for thumbnails at most (the frames wait for the smoothing window to pass).
MAX_HELD_BYTES = 128 * 2**20
#: A frame at a peak waits this long after its rows are final, in case a later frame takes the peak.
GRACE_S = 0.5


@dataclass(frozen=True)
class Smoothing:
    """How the report smooths: window, mode, and whether that was the run's own ``--smooth``."""

    window_s: float
    mode: str
    from_options: bool

    def describe(self) -> str:
        how = f"smoothed over {self.window_s:g} s ({self.mode})"
        return how if self.from_options else f"{how}: --smooth was off, so the report smooths for itself"


def report_smoothing(options: AnnotateOptions) -> Smoothing:
    """The run's ``--smooth`` window and mode, or ``DEFAULT_WINDOW_S`` centred when smoothing is off."""
    c = options.classification
    if c.smooth > 0:
        return Smoothing(c.smooth, c.smooth_mode, True)
    return Smoothing(DEFAULT_WINDOW_S, "centred", False)


def smoothed_probs(
    timeline: pd.DataFrame, classes: tuple[str, ...], smoothing: Smoothing, min_p_correct: float | None = None
) -> np.ndarray:
    """The timeline's smoothed probabilities (n, k): its ``ps_`` columns, or smoothed here with ``smoothing``.

    Over trusted faces only (``min_p_correct``; None: the option's default); an untrusted face's row is NaN.
    """
    columns = [f"ps_{c}" for c in classes]
    counts = trusted(timeline, min_p_correct)
    if smoothing.from_options and all(c in timeline.columns for c in columns):
        smoothed = timeline[columns].to_numpy(dtype=np.float64, copy=True)  # written below: never a view
        smoothed[~counts] = np.nan
        return smoothed
    raw = timeline[[f"p_{c}" for c in classes]].to_numpy()
    times, tracks = timeline["time_s"].to_numpy(), timeline["face_id"].to_numpy()
    smoothed = smooth_probs(times, tracks, raw, smoothing.window_s, smoothing.mode, counts).astype(np.float64)
    smoothed[~counts] = np.nan  # untracked rows too
    return smoothed


def top_labels(smoothed: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """The top class of each row of :func:`smoothed_probs` (object array), None where the row has no value."""
    labels = np.asarray(classes, dtype=object)[np.nan_to_num(smoothed, nan=-1.0).argmax(axis=1)]
    return np.where(np.isnan(smoothed).any(axis=1), None, labels)  # type: ignore[return-value]  # numpy stub: no None


@dataclass
class Peak:
    """A track's highest smoothed probability of one class, where it was, and the face there (JPEG)."""

    value: float
    time_s: float
    frame: int
    track_id: int
    jpeg: bytes = b""
    row: _Row | None = field(default=None, repr=False)  # the row, until its face is packed into ``jpeg``

    def pack(self) -> None:
        if self.row is not None:
            self.jpeg, self.row = encode_jpeg(resized(padded(*self.row.thumbnail()), THUMB_PX)), None


@dataclass(eq=False)
class _Held:
    """A frame kept until its rows are final, so only a peak's face is ever cut (``image`` None once evicted)."""

    image: np.ndarray | None
    rows: list[_Row] = field(default_factory=list)


@dataclass(eq=False)
class _Row:
    time_s: float
    probs: np.ndarray
    frame: int
    box: np.ndarray
    held: _Held
    crop: tuple[np.ndarray, Pads] | None = None  # the face region, cut when its frame goes while still needed
    final: bool = False
    peaks: int = 0  # how many (track, class) peaks are at this row now

    def thumbnail(self) -> tuple[np.ndarray, Pads]:
        """The face region around this row's box (a copy; padded and resized to ``THUMB_PX`` only when packed)."""
        if self.crop is None:
            assert self.held.image is not None  # the crop is cut before its frame is evicted
            self.crop = face_region(self.held.image, self.box, THUMB_MARGIN)
        return self.crop


class PeakCollector:
    """Streams rows per track, smooths each once its window is complete, keeps the peaks (module docstring).

    Frames wait (by reference) until their rows are final, at most the smoothing window; past
    ``max_held_bytes`` of pixels the oldest frame's faces are cut at once and the frame let go.
    Only trusted faces (``min_p_correct``; None: the option's default) enter a track.
    """

    def __init__(
        self, smoothing: Smoothing, threshold: float, max_held_bytes: int = MAX_HELD_BYTES,
        min_p_correct: float | None = None,
    ) -> None:  # fmt: skip
        self.smoothing = smoothing
        self.threshold = threshold
        self.min_p_correct = MIN_P_CORRECT if min_p_correct is None else float(min_p_correct)
        self.max_held_bytes = max_held_bytes
        self.peaks: dict[tuple[int, str], Peak] = {}
        self._tracks: dict[int, deque[_Row]] = {}
        self._held: deque[_Held] = deque()
        self._held_bytes = 0
        self._classes: tuple[str, ...] = ()
        self._watch = np.zeros(0, dtype=np.int64)

    def add(self, frame: Frame, detections: Detections, predictions: Predictions) -> None:
        t = frame.time_s
        if not math.isfinite(t):
            return  # independent photos have no time: no moments
        if predictions.classes != self._classes:
            self._classes = predictions.classes
            self._watch = np.array([j for j, c in enumerate(self._classes) if c != NEUTRAL], dtype=np.int64)
        held = _Held(frame.image)
        counts = trusted(detections, self.min_p_correct)
        for row, track_id in enumerate(detections.track_id.tolist()):
            if track_id >= 1 and counts[row]:
                probs = predictions.probs[row].astype(np.float64)
                held.rows.append(_Row(t, probs, frame.index, detections.xyxy[row].copy(), held))
                self._tracks.setdefault(track_id, deque()).append(held.rows[-1])
        if held.rows:
            self._held.append(held)
            self._held_bytes += frame.image.nbytes
        self._settle(t)
        self._let_go(t)

    def finish(self) -> dict[tuple[int, str], Peak]:
        self._settle(math.inf)
        self._let_go(math.inf)
        for peak in self.peaks.values():
            peak.pack()
        return self.peaks

    def _settle(self, now: float) -> None:
        """Make final every row whose window lies before ``now``; forget rows no window reaches any more."""
        window = self.smoothing.window_s
        causal = self.smoothing.mode == "causal"
        for track_id in list(self._tracks):
            rows = self._tracks[track_id]
            pending = [i for i, r in enumerate(rows) if not r.final and (causal or now - r.time_s > window)]
            for i in pending:
                self._final(track_id, rows, i)
            first_open = next((r.time_s for r in rows if not r.final), now)
            while rows and rows[0].final and rows[0].time_s < first_open - window:
                rows.popleft()
            if not rows:
                del self._tracks[track_id]
                for emotion in self._classes:  # a track's peaks are settled: keep their JPEG, not the pixels
                    if (track_id, emotion) in self.peaks:
                        self.peaks[(track_id, emotion)].pack()

    def _let_go(self, now: float) -> None:
        """Drop frames whose rows are final, after ``GRACE_S`` when one is a peak (a rising probability moves
        its peak on every frame: each face is cut once, not per frame); past the byte cap, the oldest at once."""

        def done(held: _Held) -> bool:
            final = all(r.final for r in held.rows)
            return final and (not any(r.peaks for r in held.rows) or held.rows[0].time_s < now - GRACE_S)

        while self._held and (done(self._held[0]) or self._held_bytes > self.max_held_bytes):
            held = self._held.popleft()
            assert held.image is not None  # only evicted frames (off the queue) lose their image
            self._held_bytes -= held.image.nbytes
            for row in held.rows:
                if not row.final or row.peaks:
                    row.thumbnail()
            held.image, held.rows = None, []  # no reference cycle left for the garbage collector

    def _final(self, track_id: int, rows: deque[_Row], i: int) -> None:
        row = rows[i]
        times = np.fromiter((r.time_s for r in rows), dtype=np.float64, count=len(rows))
        weights = kernel_weights(times - row.time_s, self.smoothing.window_s, self.smoothing.mode)
        near = np.flatnonzero(weights)
        smoothed = weights[near] @ np.stack([rows[j].probs for j in near]) / weights[near].sum()
        values = smoothed[self._watch]
        for j in np.flatnonzero(values >= self.threshold):
            name = self._classes[self._watch[j]]
            best = self.peaks.get((track_id, name))
            if best is None or values[j] > best.value:
                if best is not None and best.row is not None:
                    best.row.peaks -= 1
                self.peaks[(track_id, name)] = Peak(float(values[j]), row.time_s, row.frame, track_id, row=row)
                row.peaks += 1
        row.final = True


@dataclass(frozen=True)
class Moment:
    """A subject's peak of one class: when, how strong (smoothed), and the face there."""

    subject: Subject
    emotion: str
    peak: Peak

    @property
    def file(self) -> str:
        return f"moments/{self.subject.label}-{self.emotion}.jpg"


def pick_moments(peaks: dict[tuple[int, str], Peak], subjects: list[Subject], classes: tuple[str, ...]) -> list[Moment]:
    """Per subject and class, the highest peak over its tracks (earliest on a tie); in subject and time order."""
    moments = []
    for subject in subjects:
        mine = []
        for emotion in classes:
            found = [peaks[(t, emotion)] for t in subject.tracks if (t, emotion) in peaks]
            if found:
                mine.append(Moment(subject, emotion, max(found, key=lambda p: (p.value, -p.time_s))))
        moments += sorted(mine, key=lambda m: m.peak.time_s)
    return moments


def write_moments(
    moments: list[Moment], timeline: pd.DataFrame, smoothing: Smoothing, outdir: Path, stem: str,
    suffixes: tuple[str, ...] = (".csv",),
) -> list[Path]:  # fmt: skip
    """``moments/<label>-<emotion>.jpg`` thumbnails and ``<stem>.moments.csv`` (written even when empty), in
    each table format of ``--format`` (``suffixes``: ``.csv``, ``.parquet``). For image inputs (``--sequence``
    folders) ``file`` names the image of each moment."""
    written = []
    for moment in moments:
        if moment.peak.jpeg:
            path = outdir / moment.file
            with atomic_path(path) as tmp:
                tmp.write_bytes(moment.peak.jpeg)
            written.append(path)
    remove_stale(outdir / "moments", set(written), MOMENT_FILE)
    column = subject_column(timeline)
    files = frame_files(timeline)
    table = pd.DataFrame(
        {
            column: pd.Series([m.subject.key for m in moments], dtype="int64"),
            **({"person": pd.Series([m.subject.name for m in moments], dtype="object")}
               if "person" in timeline.columns else {}),
            "emotion": pd.Series([m.emotion for m in moments], dtype="object"),
            "time_s": pd.Series([m.peak.time_s for m in moments], dtype="float64"),
            "frame": pd.Series([m.peak.frame for m in moments], dtype="int64"),
            **({"file": pd.Series([files.get(m.peak.frame, "") for m in moments], dtype="object")}
               if files is not None else {}),
            "face_id": pd.Series([m.peak.track_id for m in moments], dtype="int64"),
            "p_smoothed": pd.Series([m.peak.value for m in moments], dtype="float64"),
            "smooth_s": pd.Series([smoothing.window_s] * len(moments), dtype="float64"),
            "smooth_mode": pd.Series([smoothing.mode] * len(moments), dtype="object"),
            "image": pd.Series([m.file if m.peak.jpeg else "" for m in moments], dtype="object"),
        }
    )  # fmt: skip
    for suffix in suffixes:
        path = outdir / f"{stem}.moments{suffix}"
        write_table(table, path)
        written.append(path)
    return written


def frame_files(timeline: pd.DataFrame) -> dict[int, str] | None:
    """Frame index -> image file, for image inputs (None for video: no ``file`` column)."""
    if "file" not in timeline.columns:
        return None
    return {int(f): str(name) for f, name in zip(timeline["frame"].to_numpy(), timeline["file"].to_numpy())}
