"""``<stem>.eaf`` for ELAN: one tier per subject, an annotation per run of its top (smoothed) label.

* **Labels.** Each row's label is its top class after smoothing (the ``--smooth`` window, or
  the report's default window when smoothing is off: :func:`fervid.report.moments.report_smoothing`).
* **Untrusted faces are gaps.** A face that is not readable or whose ``p_correct`` is below
  ``--min-p-correct`` (:func:`fervid.io.tables.trusted`) has no label: the annotation before it
  ends where it starts, and nothing is written until a trusted face follows. An ELAN user reads
  an annotation as a claim about that stretch, so fervid makes none where it could not read the
  face; the faces table tells an unreadable stretch from one where the person was not visible.
  Like a short run, an untrusted stretch shorter than ``--elan-min-run`` between labelled runs is
  flicker (``p_correct`` wavering about the threshold), not a gap: the annotation before it goes on
  (:func:`split_at_gaps`). Its labels still come from trusted faces only.
* **Runs.** A row lasts until the subject's next row; the subject is visible in stretches with
  no gap longer than 2.5 processed frames (as in the timeline plot), and a run never spans a gap
  (the last row of a stretch lasts one frame step).
* **Short runs** (``--elan-min-run SECONDS``): a label must stay on top that long to start an
  annotation. A shorter run joins the annotation before it in its stretch (at the start of a
  stretch, the one after); a stretch shorter than that is dropped. ``0`` keeps every run.
* **Time.** ELAN counts milliseconds from the start of the media as its player shows it. For
  MP4/MOV (and most containers) that is the file's own timeline, the ``time_s`` of the tables;
  a container whose first packet is later than 0 (MPEG-TS, program streams) is played from
  that packet, so its start time is subtracted (:func:`media_origin_s`).
* **Valence** (unless ``--no-behaviour``): each subject also gets a tier ``<subject> valence`` of runs of
  ``positive`` (valence of the smoothed probabilities at least :data:`VALENCE_BAND`), ``negative`` (at most
  minus it) and ``neutral`` (between), made like the label tier (same gaps, same ``--elan-min-run``).
* **Media.** The media descriptor holds the input's absolute ``file://`` URL, its path
  relative to the ``.eaf`` (ELAN's fallback when the folder moved) and its MIME type; a
  ``--sequence`` folder has no media file, so its ``.eaf`` links none.

Written with ``pympi-ling`` (module ``pympi``); :func:`read_segments` reads a file back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fervid.io.atomic import atomic_path

#: A subject missing for more than this many processed frames is not visible in between.
GAP_STEPS = 2.5
#: Valence at least this is ``positive`` in the valence tier, at most minus this ``negative``, between ``neutral``.
VALENCE_BAND = 0.25
#: ELAN's MIME types by file suffix (ELAN plays other containers as ``video/*``).
MIME_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".qt": "video/quicktime",
              ".mpg": "video/mpeg", ".mpeg": "video/mpeg", ".mpe": "video/mpeg", ".m2v": "video/mpeg2",
              ".wav": "audio/x-wav"}  # fmt: skip
#: Containers whose timeline starts at 0 whatever their first packet's time (edit lists, audio priming).
_ZERO_BASED = ("mov", "mp4", "m4a", "3gp", "matroska", "webm", "avi")


@dataclass(frozen=True)
class Segment:
    """One annotation: [start_s, end_s) on the file's timeline, with the label on top."""

    start_s: float
    end_s: float
    label: str | None  # None: untrusted faces (raw_runs); dropped before writing

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def stretches(times: np.ndarray, frame_step: float) -> list[slice]:
    """Runs of consecutive rows without a gap longer than ``GAP_STEPS`` frame steps (``times`` sorted)."""
    breaks = np.flatnonzero(np.diff(times) > GAP_STEPS * frame_step) + 1
    edges = [0, *breaks.tolist(), len(times)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def raw_runs(times: np.ndarray, labels: Sequence[str | None] | np.ndarray, frame_step: float) -> list[list[Segment]]:
    """Per visible stretch, the runs of equal consecutive labels (None: untrusted faces), each lasting until the
    next row."""
    out = []
    for part in stretches(times, frame_step):
        t = times[part]
        ends = np.append(t[1:], t[-1] + frame_step)
        names = list(labels[part])
        runs: list[Segment] = []
        start = 0
        for i in range(1, len(t) + 1):
            if i == len(t) or names[i] != names[start]:
                runs.append(Segment(float(t[start]), float(ends[i - 1]), names[start]))
                start = i
        out.append(runs)
    return out


def split_at_gaps(runs: list[Segment], min_run_s: float) -> list[list[Segment]]:
    """One stretch's runs cut where its faces cannot be trusted (label None), leaving those stretches out.

    An untrusted stretch shorter than ``min_run_s`` between two labelled runs is flicker, like a
    short run: it stays in, to join the annotation before it. A longer one, or one at the start or
    end of the stretch, is a gap.
    """
    groups: list[list[Segment]] = [[]]
    for run in runs:
        if run.label is None and (run.duration_s >= min_run_s or not groups[-1]):
            groups.append([])
        else:
            groups[-1].append(run)
    for group in groups:
        while group and group[-1].label is None:
            group.pop()
    return [group for group in groups if group]


def merge_short(runs: list[Segment], min_run_s: float) -> list[Segment]:
    """One stretch's runs with those shorter than ``min_run_s`` merged away (see the module docstring)."""
    merged: list[Segment] = []
    for run in runs:
        if merged and (run.duration_s < min_run_s or run.label == merged[-1].label):
            merged[-1] = Segment(merged[-1].start_s, run.end_s, merged[-1].label)
        else:
            merged.append(run)
    if len(merged) > 1 and merged[0].duration_s < min_run_s:
        merged[:2] = [Segment(merged[0].start_s, merged[1].end_s, merged[1].label)]
    return [run for run in merged if run.duration_s >= min_run_s]


def label_runs(times: np.ndarray, labels: Sequence[str | None], frame_step: float, min_run_s: float) -> list[Segment]:
    """The annotations of one subject: its rows' times (sorted) and top labels (None: untrusted) -> segments."""
    times = np.asarray(times, dtype=np.float64)
    tops = np.asarray(labels, dtype=object)
    if len(times) == 0:
        return []
    parts = [group for part in raw_runs(times, tops, frame_step) for group in split_at_gaps(part, min_run_s)]
    return [run for part in parts for run in merge_short(part, min_run_s)]


def valence_labels(valence: np.ndarray) -> np.ndarray:
    """``positive``, ``neutral`` or ``negative`` per valence (:data:`VALENCE_BAND`); None where it is NaN."""
    valence = np.asarray(valence, dtype=np.float64)
    words = np.where(valence >= VALENCE_BAND, "positive", np.where(valence <= -VALENCE_BAND, "negative", "neutral"))
    return np.where(np.isnan(valence), None, words.astype(object))  # type: ignore[call-overload]  # numpy stub: no None


def media_origin_s(path: Path) -> float:
    """Where ELAN's 0 lies on the file's timeline: the container's start, for containers played from it."""
    import av

    try:
        with av.open(str(path)) as container:
            start = container.start_time
            name = container.format.name
    except (OSError, ValueError, av.error.FFmpegError):
        return 0.0
    if start is None or start <= 0 or any(part in _ZERO_BASED for part in name.split(",")):
        return 0.0
    return start / 1_000_000


def mime_type(path: Path) -> str:
    return MIME_TYPES.get(path.suffix.lower(), "video/*")


def write_eaf(
    path: Path, tiers: dict[str, list[Segment]], media: Path | None, participants: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
) -> Path:  # fmt: skip
    """Write the tiers (name -> segments, in seconds on the file's timeline) as an ELAN file, atomically."""
    from pympi import Eaf

    eaf = Eaf(author="fervid")
    eaf.remove_tier("default")
    origin = 0.0
    if media is not None:
        media = Path(media).resolve()
        origin = media_origin_s(media)
        relative = os.path.relpath(media, Path(path).resolve().parent)
        relative = relative if relative.startswith("..") else f"./{relative}"
        eaf.add_linked_file(media.as_uri(), relpath=Path(relative).as_posix(), mimetype=mime_type(media))
    for key, value in (properties or {}).items():
        eaf.add_property(key, value)
    for name, segments in tiers.items():
        eaf.add_tier(name, part=(participants or {}).get(name, name))
        for segment in segments:
            start, end = to_ms(segment.start_s, origin), to_ms(segment.end_s, origin)
            if end > start:
                eaf.add_annotation(name, start, end, segment.label)
    with atomic_path(path) as tmp:
        eaf.to_file(str(tmp))
    return path


def to_ms(time_s: float, origin_s: float = 0.0) -> int:
    """Seconds on the file's timeline -> ELAN milliseconds (rounded, never negative)."""
    return max(0, round((time_s - origin_s) * 1000))


def read_segments(path: Path) -> dict[str, list[tuple[int, int, str]]]:
    """An ELAN file's tiers as (start_ms, end_ms, value) lists, in time order (read with pympi)."""
    from pympi import Eaf

    eaf = Eaf(str(path))
    return {tier: sorted(eaf.get_annotation_data_for_tier(tier)) for tier in eaf.get_tier_names()}
