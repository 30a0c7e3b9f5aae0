"""Temporal smoothing of each face track's expression probabilities.

Per-frame classifiers flicker: a face that is "neutral" for a second flips to "sad" for
one frame and back. Smoothing averages each track's probabilities over nearby *times*
(not nearby rows), so it means the same thing with ``--every 5``, on variable frame rate
video and across the gaps where a face was briefly lost.

``window_s`` (``--smooth SECONDS``) is how far the smoother reaches:

* ``centred`` (default): a Gaussian with sigma = ``window_s / 2`` over the face's rows with
  ``|t_j - t_i| <= window_s``. No lag, but it needs ``window_s`` of look-ahead.
* ``causal``: an exponential decay with tau = ``window_s / 3`` over the rows with
  ``0 <= t_i - t_j <= window_s`` (past and present only), as a live system would see it;
  it lags by about tau.

Two implementations share :func:`kernel_weights`, so they give the same numbers:
:func:`smooth_probs` works on a whole timeline at once (vectorized over all tracks; it fills
the ``ps_<class>`` columns), :class:`StreamSmoother` works frame by frame inside the
annotate loop, so the label drawn on the video is the smoothed one. Rows without a track
(``face_id < 1``, e.g. independent photos) are left as they are.

Only faces a conclusion may rest on (:func:`fervid.io.tables.trusted`: readable, ``p_correct`` at
or above ``--min-p-correct``) are smoothed and smoothed over: a blurred or dark frame's output
never pulls its neighbours' smoothed values, and a face that cannot be trusted has no smoothed
value (NaN in the ``ps_`` columns; the stream keeps its raw output in ``shown``, which the
video does not draw: it marks the face ``?``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fervid.behaviour.valence import add_smoothed_valence
from fervid.defaults import MIN_P_CORRECT
from fervid.io.tables import trusted
from fervid.types import FrameResult, Predictions

MODES: tuple[str, ...] = ("centred", "causal")
_ALIASES = {"centered": "centred", "center": "centred", "centre": "centred"}
#: Default cap on the frames the centred stream smoother holds back (pixels dominate the bytes).
MAX_BUFFER_BYTES = 512 * 1024**2


def check_mode(mode: str) -> str:
    """Canonical mode name (``centered`` is accepted too) or a ValueError listing the choices."""
    canonical = _ALIASES.get(mode, mode)
    if canonical not in MODES:
        raise ValueError(f"unknown smoothing mode {mode!r}; choose one of: {', '.join(MODES)}")
    return canonical


def check_window(window_s: float) -> float:
    if not (window_s >= 0 and np.isfinite(window_s)):
        raise ValueError(f"smoothing window must be a finite number of seconds >= 0, got {window_s}")
    return float(window_s)


def kernel_weights(dt: np.ndarray, window_s: float, mode: str) -> np.ndarray:
    """Weight of a neighbour ``dt = t_neighbour - t_row`` seconds away (0 outside the window).

    The row itself (dt = 0) always weighs 1, so a face seen once keeps its probabilities.
    """
    dt = np.asarray(dt, dtype=np.float64)
    if mode == "centred":
        sigma = window_s / 2.0
        w = np.exp(-0.5 * (dt / sigma) ** 2)
        return np.where(np.abs(dt) <= window_s, w, 0.0)
    tau = window_s / 3.0
    w = np.exp(np.minimum(dt, 0.0) / tau)
    return np.where((dt <= 0) & (dt >= -window_s), w, 0.0)


def smooth_probs(
    time_s: np.ndarray, track_id: np.ndarray, probs: np.ndarray, window_s: float, mode: str = "centred",
    trusted: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """Smoothed copy of ``probs`` (n, k): each tracked row becomes the kernel-weighted mean of its track.

    ``trusted`` (bool per row; default: every row): only those rows are smoothed over, and a
    tracked row that is not trusted becomes NaN (no smoothed value rests on it).

    Rows may come in any order (the result is row-aligned with the input). Vectorized over
    all rows at once: the rows are sorted by (track, time) and the k-th neighbour on each
    side is added for k = 1, 2, ... until no row has a same-track neighbour inside the
    window, so the Python loop runs about ``window_s * fps`` times, not once per row.
    """
    mode, window_s = check_mode(mode), check_window(window_s)
    probs = np.asarray(probs)
    out = probs.astype(np.float32, copy=True)
    n = len(probs)
    if n == 0 or window_s == 0:
        return out
    times = np.asarray(time_s, dtype=np.float64)
    ids = np.asarray(track_id, dtype=np.int64)
    counts = np.ones(n, dtype=bool) if trusted is None else np.asarray(trusted, dtype=bool)
    tracked = np.flatnonzero(ids >= 1)
    out[tracked[~counts[tracked]]] = np.nan
    tracked = tracked[counts[tracked]]
    order = tracked[np.lexsort((times[tracked], ids[tracked]))]
    t, g, p = times[order], ids[order], probs[order].astype(np.float64)
    acc, wsum = p.copy(), np.ones(len(order))  # dt = 0: the row itself, weight 1
    sides = (1, -1) if mode == "centred" else (-1,)
    for side in sides:
        for k in range(1, len(order)):
            i = np.arange(k, len(order)) if side < 0 else np.arange(len(order) - k)
            j = i + side * k
            w = np.where(g[j] == g[i], kernel_weights(t[j] - t[i], window_s, mode), 0.0)
            if not w.any():  # times are sorted within a track: farther neighbours are farther away
                break
            acc[i] += w[:, None] * p[j]
            wsum[i] += w
    out[order] = (acc / wsum[:, None]).astype(np.float32)
    return out


def smoothed_columns(classes: Sequence[str]) -> list[str]:
    return [f"ps_{c}" for c in classes]


def add_smoothed(
    timeline: pd.DataFrame, classes: Sequence[str], window_s: float, mode: str, min_p_correct: float | None = None
) -> pd.DataFrame:
    """The timeline with ``ps_<class>`` columns appended after the raw ``p_<class>`` ones (raw untouched), and
    ``valence_s`` from them when the timeline has ``valence`` (:mod:`fervid.behaviour.valence`).

    Only the faces :func:`fervid.io.tables.trusted` keeps at ``min_p_correct`` (None: the
    option's default) are smoothed over; the others' ``ps_`` values are empty (NaN). Works on
    any timeline table, so a saved ``faces.csv`` can be re-smoothed with another window
    without re-running the models: ``add_smoothed(read_table(...), classes, 1.0, "causal")``.
    """
    raw = timeline[[f"p_{c}" for c in classes]].to_numpy()
    times, tracks = timeline["time_s"].to_numpy(), timeline["face_id"].to_numpy()
    smoothed = smooth_probs(times, tracks, raw, window_s, mode, trusted(timeline, min_p_correct))
    out = timeline.drop(columns=[c for c in [*smoothed_columns(classes), "valence_s"] if c in timeline.columns])
    out = out.assign(**{name: smoothed[:, j] for j, name in enumerate(smoothed_columns(classes))})
    return add_smoothed_valence(out, classes)


@dataclass
class SmoothedResult(FrameResult):
    """A frame result plus the smoothed probabilities of the same faces (None when smoothing is off).

    ``predictions`` stay the raw per-frame output; ``shown`` is what gets drawn and labelled.
    """

    smoothed: Predictions | None = None

    @property
    def shown(self) -> Predictions:
        return self.smoothed if self.smoothed is not None else self.predictions


class StreamSmoother:
    """Frame-by-frame version of :func:`smooth_probs` for the annotate loop (same kernel, same numbers).

    ``causal`` emits each frame at once. ``centred`` holds frames back until a frame
    ``window_s`` later has arrived (or the stream ends): a bounded look-ahead buffer of about
    ``window_s * fps`` frames. If those frames would exceed ``max_buffer_bytes`` (huge frames,
    long windows), the oldest frame is emitted early with the look-ahead it has, so memory
    stays bounded; only its drawn label can then differ from the ``ps_`` columns, which are
    always computed over the whole window. Per-track history is pruned to the window.

    Only faces :func:`fervid.io.tables.trusted` keeps at ``min_p_correct`` (None: the option's
    default) enter the history; a face it does not keep is emitted with its raw probabilities.
    """

    def __init__(
        self, window_s: float, mode: str = "centred", max_buffer_bytes: int = MAX_BUFFER_BYTES,
        min_p_correct: float | None = None,
    ) -> None:  # fmt: skip
        self.window_s = check_window(window_s)
        self.mode = check_mode(mode)
        self.max_buffer_bytes = max_buffer_bytes
        self.min_p_correct = MIN_P_CORRECT if min_p_correct is None else float(min_p_correct)
        self.reset()

    def reset(self) -> None:
        """Forget all tracks and pending frames (between inputs)."""
        self._history: dict[int, deque[tuple[float, np.ndarray]]] = {}
        self._pending: deque[FrameResult] = deque()
        self._pending_bytes = 0

    def push(self, result: FrameResult) -> list[SmoothedResult]:
        """Add one frame (frames in time order); returns the frames that are now final, in order."""
        if self.window_s == 0:
            return [SmoothedResult(result.frame, result.detections, result.predictions, None)]
        t = result.frame.time_s
        counts = trusted(result.detections, self.min_p_correct)
        for track, probs, ok in zip(result.detections.track_id, result.predictions.probs, counts):
            if track >= 1 and ok:
                self._history.setdefault(int(track), deque()).append((t, probs.astype(np.float64)))
        self._pending.append(result)
        self._pending_bytes += result.frame.image.nbytes
        ready = []
        while self._pending and (
            self.mode == "causal"
            or t - self._pending[0].frame.time_s > self.window_s
            or self._pending_bytes > self.max_buffer_bytes
        ):
            ready.append(self._emit())
        return ready

    def flush(self) -> list[SmoothedResult]:
        """Emit every frame still held back (end of the stream)."""
        out = [self._emit() for _ in range(len(self._pending))]
        self.reset()
        return out

    def __call__(self, results: Iterable[FrameResult]) -> Generator[SmoothedResult, None, None]:
        """Smooth a whole stream lazily: ``for r in StreamSmoother(0.5)(pipeline.process(...))``."""
        self.reset()
        for result in results:
            yield from self.push(result)
        yield from self.flush()

    def _emit(self) -> SmoothedResult:
        result = self._pending.popleft()
        self._pending_bytes -= result.frame.image.nbytes
        t = result.frame.time_s
        probs = result.predictions.probs.copy()
        counts = trusted(result.detections, self.min_p_correct)
        for row, track in enumerate(result.detections.track_id):
            history = self._history.get(int(track))
            if track < 1 or not history or not counts[row]:
                continue
            times = np.fromiter((h[0] for h in history), dtype=np.float64, count=len(history))
            w = kernel_weights(times - t, self.window_s, self.mode)
            stacked = np.stack([h[1] for h in history])
            probs[row] = (w @ stacked) / w.sum()
        self._prune(t)
        smoothed = Predictions(probs, result.predictions.classes)
        return SmoothedResult(result.frame, result.detections, result.predictions, smoothed)

    def _prune(self, emitted_t: float) -> None:
        """Drop history no later frame can reach (older than the window before the last emitted frame)."""
        horizon = emitted_t - self.window_s
        for track in list(self._history):
            history = self._history[track]
            while history and history[0][0] < horizon:
                history.popleft()
            if not history:
                del self._history[track]
