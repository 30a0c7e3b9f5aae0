"""Trials and events (``--events FILE``): time windows of an input, and what each person's face showed in each.

A study asks what each participant's face did during each stimulus or trial, so a lab's
event file (a CSV with ``onset_s, offset_s, event`` and, for a batch, ``input``; or a tier of
an ELAN file) is read once, checked before any model loads (:func:`load_events`,
:func:`check_events`), and turned per input into ``<stem>.events.csv`` (:func:`event_table`):
one row per person (a face track without identity) and event.

* **Windows** are half-open, ``onset_s <= time_s < offset_s``, on the file's own timeline
  (the ``time_s`` of the faces table), so back-to-back trials never share a frame.
  Overlapping windows are allowed: each is summarised on its own, and a frame in two
  windows counts in both (nested trials, a stimulus inside a block).
* **Rows.** Every person of the input gets a row for every event, including events they
  are not seen in (``frames`` 0, no dominant emotion, NaN means): absence is a result,
  not a missing row.
* **Numbers** are those of the per-person summary (:func:`fervid.io.tables.summarize_tracks`)
  over the window's faces: frames and time on screen count every face; the dominant emotion,
  ``mean_p_<class>`` and ``share_<class>`` count only the trusted faces
  (:func:`fervid.io.tables.trusted`). Behaviour columns of the faces table get a mean
  (:data:`BEHAVIOUR_MEANS`), and a blinks table a rate per minute on screen.

Bad input is one line naming the file and line (:class:`EventsError`), and nothing is written.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fervid.checks import plural
from fervid.errors_text import one_line
from fervid.io.tables import summarize_tracks, trusted

if TYPE_CHECKING:
    from fervid.io.probe import MediaInfo

#: The columns an events CSV must have; ``input`` is optional (a batch: the input's stem or file name).
REQUIRED = ("onset_s", "offset_s", "event")
INPUT = "input"
#: Faces-table columns that get a ``mean_<column>`` per event when the table has them, and whether only the
#: trusted faces count: valence is read from the probabilities (a conclusion), a head turn is measured on
#: every face (averaging only readable faces would bias it to frontal, the turn being what makes a face unreadable).
BEHAVIOUR_MEANS: tuple[tuple[str, bool], ...] = (("valence", True), ("yaw", False), ("pitch", False),
                                                 ("roll", False))  # fmt: skip
#: Slack past a video's probed duration a window may end in: its last frame lasts one step, and durations round.
END_SLACK_STEPS = 1.0


class EventsError(ValueError):
    """An events file that cannot be used: one line naming the file (and the line) and the reason."""


@dataclass(frozen=True)
class Events:
    """Event windows as parallel arrays (one per row of the file), with where they came from.

    ``input`` is "" for a row that applies to every input; ``line`` is the row's line in the CSV
    (the annotation's number in an ELAN tier), for messages.
    """

    onset_s: np.ndarray
    offset_s: np.ndarray
    event: np.ndarray
    input: np.ndarray
    line: np.ndarray
    path: Path
    tier: str | None = None
    sha256: str = ""

    def __post_init__(self) -> None:
        n = len(self.onset_s)
        if not all(len(a) == n for a in (self.offset_s, self.event, self.input, self.line)):
            raise ValueError("events: every column must have one value per event")

    def __len__(self) -> int:
        return len(self.onset_s)

    def __getitem__(self, index: np.ndarray | slice | int) -> Events:
        """The events at ``index`` (a boolean mask, slice or int), with the same provenance."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1)
        return Events(self.onset_s[index], self.offset_s[index], self.event[index], self.input[index],
                      self.line[index], self.path, self.tier, self.sha256)  # fmt: skip

    def where(self, line: int) -> str:
        """``trials.csv line 4`` (``trials.eaf tier Trials, annotation 4``) for messages."""
        if self.tier is not None:
            return f"{self.path} tier {self.tier}, annotation {line}"
        return f"{self.path} line {line}"

    def matching(self, *names: str) -> np.ndarray:
        """Which rows apply to the input known by ``names`` (its output stem, its file name): mask."""
        return (self.input == "") | np.isin(self.input, [n for n in names if n])

    def for_input(self, *names: str) -> Events:
        return self[self.matching(*names)]

    def record(self, windows: int | None = None) -> dict[str, Any]:
        """What run.json says of the file: path, sha256, tier, and how many windows applied to the input."""
        out: dict[str, Any] = {"path": str(self.path.resolve()), "sha256": self.sha256}
        if self.tier is not None:
            out["tier"] = self.tier
        if windows is not None:
            out["windows"] = windows
        return out


def load_events(path: str | Path, tier: str | None = None) -> Events:
    """Read and check an events file: a CSV, or an ELAN ``.eaf`` with ``tier``; :class:`EventsError` if unusable."""
    path = Path(path)
    if not path.is_file():
        raise EventsError(f"{path}: no such events file" if not path.exists() else f"{path}: not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EventsError(f"{path}: cannot read the events file ({exc.strerror or exc})") from None
    sha = hashlib.sha256(data).hexdigest()
    is_eaf = path.suffix.lower() == ".eaf"
    if tier is not None and not is_eaf:
        raise EventsError(f"{path}: --events-tier names a tier of an ELAN .eaf file; this is a CSV")
    events = _read_eaf(path, tier, sha) if is_eaf else _read_csv(path, data, sha)
    if not len(events):
        raise EventsError(f"{path}: no events in it" + (f" (tier {tier} is empty)" if tier else ""))
    return events


def _read_csv(path: Path, data: bytes, sha: str) -> Events:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EventsError(f"{path}: not a UTF-8 text file (an events CSV: onset_s, offset_s, event)") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    names = [h.strip() for h in header or []]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        found = ", ".join(names) or "nothing"
        raise EventsError(f"{path} line 1: the header needs {', '.join(REQUIRED)} (missing {', '.join(missing)}; "
                          f"found {found})")  # fmt: skip
    at = {name: names.index(name) for name in (*REQUIRED, INPUT) if name in names}
    rows: list[tuple[float, float, str, str, int]] = []
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue  # a blank line
        if len(fields) != len(names):
            raise EventsError(f"{path} line {line}: {plural(len(fields), 'field')}, the header has {len(names)}")
        onset, offset = (_seconds(path, line, name, fields[at[name]]) for name in ("onset_s", "offset_s"))
        event = fields[at["event"]].strip()
        if not event:
            raise EventsError(f"{path} line {line}: the event has no name")
        if not offset > onset:
            raise EventsError(f"{path} line {line}: offset_s ({offset:g}) must be after onset_s ({onset:g})")
        rows.append((onset, offset, event, fields[at[INPUT]].strip() if INPUT in at else "", line))
    return _events(rows, path, None, sha)


def _seconds(path: Path, line: int, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EventsError(f"{path} line {line}: {name} {text.strip()!r} is not a number of seconds") from None
    if not np.isfinite(value) or value < 0:
        raise EventsError(f"{path} line {line}: {name} must be a time >= 0 seconds, got {text.strip()}")
    return value


def _read_eaf(path: Path, tier: str | None, sha: str) -> Events:
    from pympi import Eaf

    try:
        eaf = Eaf(str(path))
    except Exception as exc:  # pympi raises whatever its XML parser does on a file that is no ELAN file
        raise EventsError(f"{path}: not a readable ELAN file ({one_line(exc) or type(exc).__name__})") from None
    tiers = sorted(eaf.get_tier_names())
    if tier is None:
        raise EventsError(f"{path}: give --events-tier, the tier that holds the events (tiers: {', '.join(tiers)})")
    if tier not in tiers:
        raise EventsError(f"{path}: no tier {tier!r} (tiers: {', '.join(tiers) or 'none'})")
    annotations = sorted(eaf.get_annotation_data_for_tier(tier))
    rows = []
    for n, (start_ms, end_ms, value, *_) in enumerate(annotations, 1):
        if not str(value).strip():
            raise EventsError(f"{path} tier {tier}, annotation {n} ({start_ms / 1000:g} s): the event has no name")
        rows.append((start_ms / 1000, end_ms / 1000, str(value).strip(), "", n))
    return _events(rows, path, tier, sha)


def _events(rows: list[tuple[float, float, str, str, int]], path: Path, tier: str | None, sha: str) -> Events:
    columns = list(zip(*rows)) if rows else [(), (), (), (), ()]
    return Events(np.asarray(columns[0], np.float64), np.asarray(columns[1], np.float64),
                  np.asarray(columns[2], object), np.asarray(columns[3], object), np.asarray(columns[4], np.int64),
                  path, tier, sha)  # fmt: skip


# ---------------------------------------------------------------------------------- checks
def timed_length(media: MediaInfo | None, sequence_fps: float | None) -> float | None:
    """How long an input lasts on the timeline windows refer to; None for photos (no time) or when unknown."""
    if media is None:
        return None
    if media.kind == "video":
        return media.duration_s
    if media.kind == "image_folder" and sequence_fps and media.frame_count:
        return media.frame_count / sequence_fps
    return None


def check_windows(events: Events, media: MediaInfo | None, label: str, sequence_fps: float | None = None) -> None:
    """Raise :class:`EventsError` naming every window of ``events`` that lies outside the input (its duration).

    Times are on the file's own timeline (``time_s``), where a video's first frame may lie after 0: a
    window may end at that start plus the duration, and up to :data:`END_SLACK_STEPS` frame steps past it
    (the last frame lasts one step; durations are rounded). Photos have no time: any window for one is an error.
    """
    if not len(events):
        return
    length = timed_length(media, sequence_fps)
    if length is None:
        if media is not None and media.kind == "video":
            return  # a stream without a known duration: nothing to check against
        raise EventsError(f"{events.path}: {label} is a photo input with no time; events need a video or a "
                          "--sequence folder")  # fmt: skip
    fps = (media.fps if media is not None and media.kind == "video" else sequence_fps) or 25.0
    outside = events.offset_s > length + END_SLACK_STEPS / fps
    first = 0.0
    if outside.any() and media is not None and media.kind == "video":
        first = stream_start(media)  # a stream may start after 0 on the file's timeline (opened only now)
        outside = events.offset_s > first + length + END_SLACK_STEPS / fps
    if not outside.any():
        return
    bad = events[outside]
    named = [
        f"{bad.where(int(line))} {name!r} {onset:g}-{offset:g} s"
        for line, name, onset, offset in zip(bad.line[:3], bad.event[:3], bad.onset_s[:3], bad.offset_s[:3])
    ]
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    since = f", from {first:.2f} s" if abs(first) >= 0.005 else ""
    raise EventsError(f"{plural(len(bad), 'window')} outside {label} ({length:.2f} s long{since}): "
                      f"{'; '.join(named)}{more}")  # fmt: skip


def stream_start(media: MediaInfo) -> float:
    """Where a video's first frame lies on the file's timeline (``time_s``), as its header says; 0 if unknown."""
    from fervid.io.errors import InputError
    from fervid.io.video import VideoReader

    try:
        with VideoReader(media.path, info=media) as reader:
            return float(reader.stream_start_s or 0.0)
    except (InputError, OSError):
        return 0.0


def check_events(events: Events, inputs: Sequence[tuple[str, str, MediaInfo | None]],
                 sequence_fps: float | None = None) -> list[str]:  # fmt: skip
    """Check ``events`` against a run's inputs, given as (stem, label, probe result or None), before any model loads.

    Every ``input`` value must name an input (its stem or file name) and every window must lie
    inside each input it applies to. Rows without ``input`` apply to every timed input; photo
    inputs then get no events table, which the returned notes say.
    """
    known = {name for stem, label, media in inputs for name in input_names(stem, label, media)}
    probed = [(stem, label, media) for stem, label, media in inputs if media is not None]
    unknown = [(int(line), str(name)) for line, name in zip(events.line, events.input) if name and name not in known]
    if unknown:
        line, name = unknown[0]
        listed = ", ".join(sorted({stem for stem, _, _ in probed})[:6])
        more = f" ({plural(len(unknown), 'row')} in all)" if len(unknown) > 1 else ""
        raise EventsError(f"{events.where(line)}: input {name!r} matches no input of this run{more}; "
                          f"inputs: {listed}")  # fmt: skip
    notes = []
    for stem, label, media in probed:  # an input that cannot be read (no probe result) fails with its own reason
        mine = events.for_input(*input_names(stem, label, media))
        timed = media.kind == "video" or timed_length(media, sequence_fps) is not None
        if len(mine) and not timed and not (mine.input != "").any():
            notes.append(f"--events: {label} is photos, which have no time: no events table for it")
            continue
        check_windows(mine, media, label, sequence_fps)  # a row naming a photo input: an error
    return notes


def input_names(stem: str, label: str, media: MediaInfo | None) -> list[str]:
    """The names an events row may give an input by: its output stem and its file name (from its label when it
    could not be probed: ``clips/p01.mp4`` -> ``p01.mp4``)."""
    return [stem, media.path.name if media is not None else Path(label).name]


# ---------------------------------------------------------------------------------- tables
def event_table(
    timeline: pd.DataFrame, classes: Sequence[str], events: Events, frame_times: np.ndarray | None = None,
    min_p_correct: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """One row per event and person (per face track without identity), in the file's order of events.

    Columns: ``event, onset_s, offset_s, person_id`` (``face_id`` without identity), ``person``
    (with ``--people``), then the window's :func:`~fervid.io.tables.summarize_tracks` numbers
    (``frames, visible_s, readable_frames, readable_share, dominant_emotion, mean_p_<class>,
    share_<class>``) and ``mean_<column>`` for each of :data:`BEHAVIOUR_MEANS` the faces table has.
    """
    who = "person_id" if "person_id" in timeline.columns else "face_id"
    ids = np.unique(timeline.loc[timeline[who] >= 1, who].to_numpy(np.int64))
    behaviour = [(c, only_trusted) for c, only_trusted in BEHAVIOUR_MEANS if c in timeline.columns]
    numbers = ["frames", "visible_s", "readable_frames", "readable_share", "dominant_emotion",
               *(f"mean_p_{c}" for c in classes), *(f"share_{c}" for c in classes)]  # fmt: skip
    named = "person" in timeline.columns
    columns = ["event", "onset_s", "offset_s", who, *(["person"] if named else []), *numbers,
               *(f"mean_{c}" for c, _ in behaviour)]  # fmt: skip
    if not len(events) or not len(ids):
        return _empty(columns)
    names = timeline[timeline[who] >= 1].groupby(who)["person"].first() if named else None
    times = timeline["time_s"].to_numpy(np.float64)
    parts = []
    for onset, offset, event in zip(events.onset_s, events.offset_s, events.event):
        inside = timeline[(times >= onset) & (times < offset)]
        window_times = None
        if frame_times is not None:
            window_times = frame_times[(frame_times >= onset) & (frame_times < offset)]
        summary = summarize_tracks(inside, classes, by=who, frame_times=window_times, min_p_correct=min_p_correct)
        rows = summary.set_index(who).reindex(ids)
        rows["frames"] = rows["frames"].fillna(0).astype(np.int64)
        rows["readable_frames"] = rows["readable_frames"].fillna(0).astype(np.int64)
        rows["visible_s"] = rows["visible_s"].fillna(0.0)
        rows["dominant_emotion"] = rows["dominant_emotion"].astype(object).where(rows["dominant_emotion"].notna(), None)
        for column, only_trusted in behaviour:
            counted = inside[trusted(inside, min_p_correct)] if only_trusted else inside
            rows[f"mean_{column}"] = counted.groupby(who)[column].mean().reindex(ids).astype(np.float64)
        rows = rows.reset_index().assign(event=event, onset_s=float(onset), offset_s=float(offset))
        if names is not None:
            rows["person"] = names.reindex(ids).fillna("").to_numpy(object)
        parts.append(rows)
    table = pd.concat(parts, ignore_index=True)[columns]
    table[who] = table[who].astype(np.int64)
    return table


def _empty(columns: list[str]) -> pd.DataFrame:
    text = ("event", "person", "dominant_emotion")
    ints = ("person_id", "face_id", "frames", "readable_frames")
    return pd.DataFrame({c: pd.Series(dtype="object" if c in text else "int64" if c in ints else "float64")
                         for c in columns})  # fmt: skip


def with_blink_rates(table: pd.DataFrame, blinks: pd.DataFrame | None) -> pd.DataFrame:
    """``table`` with ``blinks_per_min``: the blinks starting in each window per minute on screen (``visible_s``).

    ``blinks`` is a blinks table (``face_id, person_id, start_s, ...``); None (no blinks table)
    leaves ``table`` as it is. NaN where the subject was not on screen in the window.
    """
    if blinks is None:
        return table
    who = "person_id" if "person_id" in table.columns else "face_id"
    starts = blinks["start_s"].to_numpy(np.float64)
    owners = blinks[who].to_numpy(np.int64) if who in blinks.columns else np.zeros(len(blinks), np.int64)
    counts = np.zeros(len(table), np.int64)
    for i, (onset, offset, subject) in enumerate(zip(table["onset_s"], table["offset_s"], table[who])):
        counts[i] = int(((owners == subject) & (starts >= onset) & (starts < offset)).sum())
    visible = table["visible_s"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(visible > 0, counts / visible * 60.0, np.nan)
    return table.assign(blinks_per_min=rate)


def tier_rows(events: Events) -> list[list[int]]:
    """Indices of ``events`` spread over as few ELAN tiers as hold them without overlap (ELAN's tiers cannot
    overlap): each window goes to the first tier whose last window has ended by its onset."""
    order = np.lexsort((events.offset_s, events.onset_s))
    tiers: list[list[int]] = []
    ends: list[float] = []
    for i in order:
        at = next((k for k, end in enumerate(ends) if end <= events.onset_s[i]), None)
        if at is None:
            tiers.append([int(i)])
            ends.append(float(events.offset_s[i]))
        else:
            tiers[at].append(int(i))
            ends[at] = float(events.offset_s[i])
    return tiers


def events_for_input(options: Any, media: MediaInfo, stem: str) -> Events | None:
    """The ``--events`` windows of one input (checked against its duration), or None without ``--events``.

    Photos have no time: rows for every input pass them by (None); a row naming one is an error.
    Called before the input is processed, so a bad file or window stops it before any work.
    """
    o = options.output
    if o.events is None:
        return None
    fps = options.input.fps if options.input.sequence else None
    events = load_events(o.events, o.events_tier)
    mine = events.for_input(*input_names(stem, media.path.name, media))
    is_timed = media.kind == "video" or timed_length(media, fps) is not None
    if not is_timed and not (mine.input != "").any():
        return None
    check_windows(mine, media, media.path.name, fps)
    return mine


class EventsSink:
    """``<stem>.events.csv`` (or ``.parquet``): the input's events table (``InputResult.events``) as it was made: its
    :func:`event_table` with blink rates (:func:`with_blink_rates`) when blinks were looked for."""

    def __init__(self, suffixes: tuple[str, ...]) -> None:
        self.suffixes = suffixes

    def write(self, result: Any, outdir: Path, stem: str) -> list[Path]:
        from fervid.io.tables import write_table

        if result.events is None:
            return []
        written = []
        for suffix in self.suffixes:
            path = outdir / f"{stem}.events{suffix}"
            write_table(result.events, path)
            written.append(path)
        return written
