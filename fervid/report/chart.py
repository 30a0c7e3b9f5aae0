"""A subject's timeline as numbers for an inline SVG: one line per class, its moments marked.

Pure geometry (pixel coordinates, tick labels, texts); the report template draws it. Lines are
the smoothed probabilities, broken where the subject was not visible and where its face could
not be trusted (no smoothed value: not readable, or ``p_correct`` below ``--min-p-correct``;
those stretches are shaded apart from the not-visible ones), and averaged per pixel column,
so an hour of video is a few hundred points, not a hundred thousand. Every chart of an input
shares the processed time range, so subjects line up with each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fervid.plots import class_colours
from fervid.report.elan import stretches
from fervid.report.moments import Moment

WIDTH, HEIGHT = 880, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 10, 26
_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


@dataclass(frozen=True)
class Line:
    emotion: str
    colour: str
    polylines: tuple[str, ...]  # SVG "x,y x,y ..." per visible stretch


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    colour: str
    emotion: str
    text: str


@dataclass(frozen=True)
class Band:
    """An ``--events`` window shaded on the chart: x from, width, its name (drawn on ``row``), and a tooltip."""

    x: float
    width: float
    label: str
    text: str
    row: int = 0  # overlapping windows: their names on successive lines


@dataclass
class Chart:
    """Everything the template needs to draw one subject's timeline."""

    title: str
    description: str
    lines: list[Line] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)  # visible stretches: x from, width
    untrusted: list[tuple[float, float]] = field(default_factory=list)  # visible, but no label: x from, width
    bands: list[Band] = field(default_factory=list)  # --events windows
    xticks: list[tuple[float, str]] = field(default_factory=list)
    yticks: list[tuple[float, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    box: tuple[int, int, int, int] = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)


def subject_chart(
    title: str, times: np.ndarray, smoothed: np.ndarray, classes: Sequence[str], moments: Sequence[Moment],
    time_range: tuple[float, float], frame_step: float, events: Sequence[tuple[float, float, str, int]] = (),
) -> Chart:  # fmt: skip
    """The chart of one subject: its rows' times (sorted), smoothed probabilities (n, k; NaN rows: untrusted
    faces), its moments, and the ``--events`` windows to shade: (onset_s, offset_s, name, label row), cut to
    the time range (a window wholly outside it is left out)."""
    t0, t1 = time_range[0], max(time_range[1], time_range[0] + 1e-3)
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM

    def x_of(t: np.ndarray | float) -> np.ndarray | float:
        return x0 + (np.asarray(t) - t0) / (t1 - t0) * (x1 - x0)

    def y_of(p: np.ndarray | float) -> np.ndarray | float:
        return y1 - np.asarray(p) * (y1 - y0)

    colours = class_colours(classes)
    parts = stretches(times, frame_step)
    chart = Chart(title, _describe(title, times, smoothed, classes, moments, parts))
    for part in parts:
        start, end = float(x_of(times[part][0])), float(x_of(times[part][-1] + frame_step))
        chart.spans.append((start, max(end - start, 1.0)))
    labelled = ~np.isnan(smoothed).any(axis=1) if smoothed.size else np.ones(len(times), dtype=bool)
    for part in parts:
        t = times[part]
        ends = np.append(t[1:], t[-1] + frame_step)  # a row lasts until the next one
        for run in _runs(~labelled[part]):
            start, end = float(x_of(t[run][0])), float(x_of(ends[run][-1]))
            chart.untrusted.append((start, max(end - start, 1.0)))
    pieces = [slice(part.start + run.start, part.start + run.stop) for part in parts for run in _runs(labelled[part])]
    for k, emotion in enumerate(classes):
        polylines = []
        for piece in pieces:
            xs, ps = _per_column(np.asarray(x_of(times[piece])), smoothed[piece, k])
            ys = np.asarray(y_of(ps))
            polylines.append(" ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys)))
        chart.lines.append(Line(emotion, colours[emotion], tuple(polylines)))
    for m in moments:
        text = f"{m.emotion} {m.peak.value:.2f} at {m.peak.time_s:.2f} s"
        chart.marks.append(Mark(float(x_of(m.peak.time_s)), float(y_of(m.peak.value)), colours[m.emotion],
                                m.emotion, text))  # fmt: skip
    for onset, offset, name, row in events:
        start, end = max(onset, t0), min(offset, t1)
        if end > start:
            x = float(x_of(start))
            text = f"{name}: {onset:.2f}-{offset:.2f} s"
            chart.bands.append(Band(x, max(float(x_of(end)) - x, 1.0), name, text, row))
    chart.xticks = [(float(x_of(t)), _time_label(t)) for t in _ticks(t0, t1)]
    chart.yticks = [(float(y_of(p)), f"{p:.1f}") for p in (0.0, 0.5, 1.0)]
    return chart


#: The valence line's colour (the report draws it alone on its own chart).
VALENCE_COLOUR = "#5b3a8c"


def valence_chart(
    title: str, times: np.ndarray, valence: np.ndarray, time_range: tuple[float, float], frame_step: float,
    events: Sequence[tuple[float, float, str, int]] = (),
) -> Chart:  # fmt: skip
    """A subject's valence over time (-1..1; NaN rows: untrusted faces), drawn like :func:`subject_chart`'s lines:
    broken where the subject was not visible or not trusted, one point per pixel column, with the same ``--events``
    windows shaded, so a trial's valence reads off the chart under its timeline."""
    values = np.asarray(valence, dtype=np.float64).reshape(-1, 1)
    chart = subject_chart(title, times, (values + 1) / 2, ("valence",), (), time_range, frame_step, events)
    chart.lines = [Line("valence", VALENCE_COLOUR, chart.lines[0].polylines)]
    y0, y1 = TOP, HEIGHT - BOTTOM
    chart.yticks = [(y1 - (v + 1) / 2 * (y1 - y0), f"{v:+.0f}" if v else "0") for v in (-1.0, 0.0, 1.0)]
    labelled = np.isfinite(values[:, 0])
    if len(times) and labelled.any():
        read = values[labelled, 0]
        chart.description = (f"{title}: valence from {read.min():+.2f} to {read.max():+.2f}, mean "
                             f"{read.mean():+.2f}, over its readable faces.")  # fmt: skip
    return chart


def _runs(flags: np.ndarray) -> list[slice]:
    """The runs of consecutive True values."""
    edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(np.int8), 0]))
    return [slice(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2])]


def _per_column(xs: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean value per pixel column (xs sorted), so a line has at most one point per pixel."""
    if len(xs) < 2:
        return xs, values
    columns = np.floor(xs).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, np.diff(columns) != 0])
    counts = np.diff(np.r_[starts, len(xs)])
    return np.add.reduceat(xs, starts) / counts, np.add.reduceat(values, starts) / counts


def _ticks(t0: float, t1: float, most: int = 8) -> np.ndarray:
    step = next((s for s in _STEPS if (t1 - t0) / s <= most), _STEPS[-1])
    first = np.ceil(t0 / step - 1e-9) * step
    return np.arange(first, t1 + 1e-9, step)


def _time_label(t: float) -> str:
    t = float(t) + 0.0  # -0.0 (the first tick of a range starting at 0) reads "0 s"
    if t >= 60:
        minutes, seconds = divmod(t, 60)
        return f"{int(minutes)}:{seconds:04.1f}" if seconds % 1 else f"{int(minutes)}:{int(seconds):02d}"
    return f"{t:g} s" if t == round(t, 1) else f"{t:.2f} s"


def _describe(
    title: str, times: np.ndarray, smoothed: np.ndarray, classes: Sequence[str], moments: Sequence[Moment],
    parts: list[slice],
) -> str:  # fmt: skip
    """The chart in words (the SVG's description, for screen readers and text browsers)."""
    if len(times) == 0:
        return f"{title} has no rows."
    labelled = ~np.isnan(smoothed).any(axis=1)
    seen = f"visible from {times[0]:.2f} s to {times[-1]:.2f} s in {len(parts)} stretch(es)"
    if not labelled.any():
        return f"{title}: {seen}; never readable: no expression reported."
    top = np.asarray(classes)[smoothed[labelled].argmax(axis=1)]
    names, counts = np.unique(top, return_counts=True)
    order = np.argsort(-counts)
    shares = ", ".join(f"{names[i]} {100 * counts[i] / len(top):.0f} %" for i in order[:3])
    if not labelled.all():
        seen += f", readable in {100 * labelled.mean():.0f} % of its frames"
    peaks = "; ".join(f"{m.emotion} peaks at {m.peak.time_s:.2f} s ({m.peak.value:.2f})" for m in moments)
    return f"{title}: {seen}; top label {shares}." + (f" Moments: {peaks}." if peaks else "")
