"""``<stem>.timeline.png``: one panel per person (or per face track) with expression probabilities over time.

A panel shows every class's probability as a line (the smoothed ``ps_`` columns when the
run was smoothed, else the raw ``p_`` ones), a coloured band on top with the label that is
on top at each moment, and grey shading with broken lines where the face was not visible.
Where the face was visible but cannot be trusted (:func:`fervid.io.tables.trusted`: not
readable, or ``p_correct`` below ``--min-p-correct``) the lines and the band stop too, and grey
stripes mark the stretch, so a reader sees both kinds of gap apart.
Panels share the time axis (the whole processed range), so faces line up with each other
and with the video.

With identity on (a ``person_id`` column) a panel is a person, as in the report, the ELAN
file and the annotated video: ``P2`` in the person's box colour, with its name and its face
tracks (``face_id``) in the panel's title, so one ID system runs through the output folder.
Without identity a panel is a face track (``face 3``).

Rendered with matplotlib's Agg backend (no display needed); matplotlib is imported only
when a plot is drawn, so ``import fervid`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fervid.annotate import colour_for
from fervid.io.atomic import atomic_path
from fervid.io.tables import trusted

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

#: One colour per canonical class (matplotlib's tab10, assigned so related feelings do not share hues).
EMOTION_COLOURS: dict[str, str] = {
    "angry": "#d62728",
    "disgust": "#8c564b",
    "fear": "#9467bd",
    "happy": "#2ca02c",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "neutral": "#7f7f7f",
    "contempt": "#e377c2",
}
_SPARE_COLOURS = ("#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39")
#: Panels drawn at most; with more faces the longest-visible ones are shown (and the title says so).
MAX_PANELS = 12
_BAND = (1.04, 0.12)  # the top-label band: y position and height, in probability units
_HIDDEN = "#f0f0f0"  # background where the face was not visible
_UNTRUSTED: dict[str, Any] = {"facecolor": "#f7f7f7", "edgecolor": "#b0b0b0", "hatch": "////"}  # visible, but no label


def class_colours(classes: Sequence[str]) -> dict[str, str]:
    spare = iter(_SPARE_COLOURS * 4)
    return {c: EMOTION_COLOURS.get(c) or next(spare) for c in classes}


def _segments(times: np.ndarray, gap_s: float) -> list[slice]:
    """Runs of consecutive rows with no time gap larger than ``gap_s`` (where the face was visible)."""
    breaks = np.flatnonzero(np.diff(times) > gap_s) + 1
    edges = [0, *breaks.tolist(), len(times)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _runs(flags: np.ndarray) -> list[slice]:
    """The runs of consecutive True values."""
    edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(np.int8), 0]))
    return [slice(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2])]


def _frame_step(timeline: pd.DataFrame) -> float:
    """Typical time between processed frames, from the timeline itself (fallback when not given)."""
    steps = np.diff(np.unique(timeline["time_s"].to_numpy()))
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else 1.0


def plot_timeline(
    timeline: pd.DataFrame,
    classes: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    time_range: tuple[float, float] | None = None,
    frame_step: float | None = None,
    max_panels: int = MAX_PANELS,
    min_p_correct: float | None = None,
) -> Path:
    """Draw the per-face timeline PNG at ``path`` (written atomically) and return the path.

    Args:
        timeline: the faces table (``time_s``, ``face_id``, ``p_<class>``; optional ``person_id``, ``person``
            and ``ps_<class>``): one panel per person when it has ``person_id``, else per face track.
        classes: class names in column order.
        time_range: the processed time span for the x axis (default: the span of the rows).
        frame_step: seconds between processed frames; a face missing for more than 2.5 steps
            counts as not visible. Default: the median step between the timeline's times.
        max_panels: at most this many persons or faces (the ones visible longest) are drawn.
        min_p_correct: faces that are not readable or below it get no line or band, but stripes
            (:func:`fervid.io.tables.trusted`; 0: every face is drawn). None: the option's default.

    Example::

        import pandas as pd
        from fervid.plots import plot_timeline
        faces = pd.read_csv("out/clip/clip.faces.csv")
        plot_timeline(faces, ["angry", "happy", "neutral"], "clip.png", title="clip")
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    classes = list(classes)
    colours = class_colours(classes)
    smoothed = all(f"ps_{c}" in timeline.columns for c in classes)
    prob_cols = [f"{'ps' if smoothed else 'p'}_{c}" for c in classes]
    who = "person_id" if "person_id" in timeline.columns else "face_id"
    tracked = timeline[(timeline["face_id"] >= 1) & (timeline[who] >= 1)]
    tracked = tracked.assign(_trusted=trusted(tracked, min_p_correct))
    counts = tracked.groupby(who).size().sort_values(ascending=False, kind="stable")
    shown_ids = sorted(counts.index[:max_panels].tolist())
    step = frame_step if frame_step and frame_step > 0 else _frame_step(timeline)
    xlim = _time_limits(timeline, time_range, step)
    with plt.rc_context({"font.size": 9, "axes.titlesize": 10}):
        fig, axes, fig_h = _make_figure(plt, max(1, len(shown_ids)), xlim)
        if not shown_ids:
            axes[0].text(0.5, 0.5, "no faces found", ha="center", va="center", transform=axes[0].transAxes)
        for ax, shown_id in zip(axes, shown_ids):
            rows = tracked[tracked[who] == shown_id].sort_values("time_s", kind="stable")
            _draw_face(ax, rows, prob_cols, classes, colours, 2.5 * step, step, xlim)
            _label_panel(ax, who, int(shown_id), rows, prob_cols, classes)
        axes[-1].set_xlabel("time (s)")
        extra = ""
        if len(counts) > len(shown_ids):
            things = "persons" if who == "person_id" else "faces"
            extra = f"  (the {len(shown_ids)} longest-visible of {len(counts)} {things})"
        untrusted = not tracked["_trusted"].all()
        _add_title_and_legend(fig, fig_h, f"{title}{extra}", classes, colours, smoothed, untrusted)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
    return path


def _time_limits(timeline: pd.DataFrame, time_range: tuple[float, float] | None, step: float) -> tuple[float, float]:
    """The shared x axis: the processed range (default: the rows' span) with 1% margin either side.

    An empty or single-instant range is widened to one frame step, so the axis never collapses.
    """
    if time_range is None:
        t = timeline["time_s"]
        time_range = (float(t.min()), float(t.max())) if len(t) else (0.0, 1.0)
    t0, t1 = time_range
    if t1 <= t0:
        t1 = t0 + step
    pad = 0.01 * (t1 - t0)
    return t0 - pad, t1 + pad


def _make_figure(plt: Any, n_panels: int, xlim: tuple[float, float]) -> tuple[Any, np.ndarray, float]:
    """An empty figure of ``n_panels`` stacked panels sharing ``xlim``, its axes and its height in inches.

    Margins are fixed in inches (room for the title, legend, face labels and the notes on the
    right), so they look the same however many panels there are.
    """
    panel_in = 1.6 if n_panels <= 4 else 1.25  # inches per face: many faces still fit one screen or page
    top_in, bottom_in, left_in, right_in, width_in = 0.95, 0.55, 1.15, 1.35, 12.0
    fig_h = top_in + bottom_in + panel_in * n_panels
    fig, axes = plt.subplots(n_panels, 1, figsize=(width_in, fig_h), sharex=True, squeeze=False, dpi=100)
    fig.subplots_adjust(
        left=left_in / width_in, right=1 - right_in / width_in, top=1 - top_in / fig_h,
        bottom=bottom_in / fig_h, hspace=0.4,
    )  # fmt: skip
    axes = axes[:, 0]
    for ax in axes:
        ax.set_ylim(0, _BAND[0] + _BAND[1] + 0.02)
        ax.set_yticks([0, 0.5, 1])
        ax.set_xlim(*xlim)
        ax.grid(axis="y", color="#e6e6e6", linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes, fig_h


def panel_labels(who: str, shown_id: int, rows: pd.DataFrame) -> tuple[str, str | None]:
    """A panel's side label and title: ``P2`` and ``P2 Ada · face tracks 3, 11`` for a person, ``face 3`` and none
    for a face track (``who``: ``person_id`` or ``face_id``)."""
    if who != "person_id":
        return f"face {shown_id}", None
    tracks = sorted(int(t) for t in rows["face_id"].unique())
    names = rows["person"].dropna().unique() if "person" in rows.columns else []
    name = f"{names[0]} · " if len(names) else ""
    kind = "face track" if len(tracks) == 1 else "face tracks"
    return f"P{shown_id}", f"P{shown_id} {name}{kind} {', '.join(map(str, tracks))}"


def _label_panel(
    ax: Any, who: str, shown_id: int, rows: pd.DataFrame, prob_cols: list[str], classes: list[str]
) -> None:  # fmt: skip
    """The side label on the box colour of the video, the title (:func:`panel_labels`), and frames, time span,
    top label (over trusted faces) and how many frames could be read at the right."""
    counted = rows[rows["_trusted"]] if "_trusted" in rows.columns else rows
    rgb = tuple(v / 255 for v in colour_for(shown_id))
    label, title = panel_labels(who, shown_id, rows)
    if title:
        ax.set_title(title, loc="left", fontsize=8.5, pad=2)
    ax.set_ylabel(label, fontweight="bold", rotation=0, ha="right", va="center", labelpad=8)
    ax.yaxis.label.set_bbox({"facecolor": rgb, "edgecolor": "none", "alpha": 0.6, "pad": 2.5})
    if len(counted):
        top = np.bincount(counted[prob_cols].to_numpy().argmax(axis=1), minlength=len(classes))
        best = int(top.argmax())
        share = f"{top[best] / len(counted):.0%} of frames"
        if len(counted) < len(rows):  # the share is of the readable frames: say how many those are
            share = f"{top[best] / len(counted):.0%} of readable\nreadable: {len(counted) / len(rows):.0%}"
        verdict = f"top: {classes[best]}\n{share}"
    else:
        verdict = "never readable:\nno expression"
    ax.text(
        1.01, 0.5, f"{len(rows)} frames\n{rows['time_s'].min():.1f}-{rows['time_s'].max():.1f} s\n{verdict}",
        transform=ax.transAxes, ha="left", va="center", fontsize=8, color="#333333",
    )  # fmt: skip


def _add_title_and_legend(
    fig: Any, fig_h: float, title: str, classes: list[str], colours: dict[str, str], smoothed: bool,
    untrusted: bool = False,
) -> None:  # fmt: skip
    """The title, then one legend for all panels: a line per class, the not-visible shading and, when some face
    could not be trusted, its stripes."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    what = "smoothed probability" if smoothed else "probability"
    fig.text(0.5, 1 - 0.12 / fig_h, title, ha="center", va="top", fontsize=11, fontweight="bold")
    handles: list[Artist] = [Line2D([], [], color=colours[c], linewidth=2.2, label=c) for c in classes]
    handles.append(Patch(facecolor=_HIDDEN, edgecolor="#cccccc", label="face not visible"))
    if untrusted:
        handles.append(Patch(**_UNTRUSTED, label="not readable / p_correct low"))
    fig.legend(
        handles=handles, loc="upper center", ncol=len(handles), frameon=False, handlelength=1.6,
        bbox_to_anchor=(0.5, 1 - 0.36 / fig_h), title=f"lines: {what} of each class; top band: the top class",
        title_fontsize=8.5,
    )  # fmt: skip


def _draw_face(
    ax: Axes, rows: pd.DataFrame, prob_cols: list[str], classes: list[str], colours: dict[str, str],
    gap_s: float, step: float, xlim: tuple[float, float],
) -> None:  # fmt: skip
    """Lines per class, the top-label band, grey shading where the face was not visible, and stripes where it was
    visible but cannot be trusted (no line, no band there)."""
    times = rows["time_s"].to_numpy()
    probs = rows[prob_cols].to_numpy(dtype=np.float64)
    ok = rows["_trusted"].to_numpy(bool) if "_trusted" in rows.columns else np.ones(len(rows), dtype=bool)
    ok = ok & ~np.isnan(probs).any(axis=1)  # smoothed columns are empty where the face cannot be trusted
    top = np.nan_to_num(probs, nan=-1.0).argmax(axis=1)
    half = step / 2
    segments = _segments(times, gap_s)
    # shading: everything outside the visible segments
    visible = [(times[s][0] - half, times[s][-1] + half) for s in segments]
    edges = [xlim[0], *[v for span in visible for v in span], xlim[1]]
    for a, b in zip(edges[0::2], edges[1::2]):
        if b > a:
            ax.axvspan(a, b, color=_HIDDEN, linewidth=0, zorder=0)
    pieces = []
    for seg in segments:
        t = times[seg]
        for run in _runs(~ok[seg]):  # stripes over the rows that cannot be trusted
            ax.axvspan(t[run][0] - half, t[run][-1] + half, linewidth=0.0, zorder=1, **_UNTRUSTED)
        pieces += [slice(seg.start + run.start, seg.start + run.stop) for run in _runs(ok[seg])]
    for seg in pieces:
        t = times[seg]
        for j, c in enumerate(classes):
            if len(t) == 1:  # a single frame: a dot, a line would be invisible
                ax.plot(t, probs[seg, j], "o", color=colours[c], markersize=2.5, zorder=2)
            else:
                ax.plot(t, probs[seg, j], color=colours[c], linewidth=1.1, zorder=2)
        # band: runs of the same top label, each row covering half a step either side
        labels = top[seg]
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        ends = np.r_[starts[1:], len(labels)]
        for a, b in zip(starts, ends):
            left, right = t[a] - half, t[b - 1] + half
            colour = colours[classes[labels[a]]]
            ax.broken_barh([(left, right - left)], _BAND, color=colour, linewidth=0, zorder=3)
            if (right - left) > 0.07 * (xlim[1] - xlim[0]):  # wide enough to name the label in the band
                ax.text(
                    (left + right) / 2, _BAND[0] + _BAND[1] / 2, classes[labels[a]], ha="center", va="center",
                    fontsize=7, color=_ink(colour), zorder=4, clip_on=True,
                )  # fmt: skip


def _ink(background: str) -> str:
    """Black text on light colours, white on dark ones (Rec. 601 luma)."""
    r, g, b = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "white"
