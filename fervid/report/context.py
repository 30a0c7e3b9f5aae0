"""What ``<stem>.report.html`` shows, as plain values for its template: facts, settings, gallery, tables, charts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fervid.input_result import InputResult
from fervid.options import AnnotateOptions
from fervid.report.chart import Chart
from fervid.report.extent import duration_text, picture_text, processed_text
from fervid.report.gallery import GalleryEntry
from fervid.report.html import data_uri
from fervid.report.moments import Moment, Smoothing
from fervid.report.subjects import Subject


@dataclass(frozen=True)
class Picture:
    uri: str
    alt: str
    caption: str


@dataclass
class Tile:
    """One gallery tile: a subject, its best face, its faces over time, and what its faces showed.

    ``verdict``: the dominant label and how much of the subject could be read (empty for a subject with no
    trusted face); ``badge``: the mark of a subject that was never readable (:func:`never_readable`).
    """

    subject: Subject
    best: Picture | None
    spread: list[Picture] = field(default_factory=list)
    verdict: str = ""
    badge: str = ""


@dataclass
class Section:
    """One subject's timeline: the chart and its moments' thumbnails."""

    subject: Subject
    chart: Chart
    moments: list[Picture] = field(default_factory=list)
    never_readable: bool = False  # no face the conclusions may rest on: no line, no moment
    valence: Chart | None = None  # the subject's valence over time (None with --no-behaviour)


def seconds(value: Any, digits: int = 2) -> str:
    """A time in seconds for a table cell; a dash for none (photos have no time)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(number) else f"{number:.{digits}f} s"


def input_facts(result: InputResult, tracked: bool = True) -> list[tuple[str, str]]:
    """The input's facts: path, kind, duration, frame rate, picture size, what was processed and found.

    ``tracked``: a video or ``--sequence`` folder (faces followed over time); photos are counted, not timed.
    """
    info = result.run.get("input", {})
    kind = str(info.get("kind", result.kind))
    kind = {"image": "photo", "image_folder": "folder of frames (--sequence)" if tracked else "folder of photos"}.get(
        kind, kind
    )
    facts = [("File", str(info.get("path", result.source))), ("Kind", kind)]
    if result.kind == "video":
        facts.append(("Duration", f"{duration_text(info)} (the whole file)"))
    if info.get("fps"):
        facts.append(("Frame rate", f"{info['fps']:.3f} fps"))
    picture = picture_text(info)
    if picture:
        facts.append(("Picture", picture))
    if info.get("has_audio") is not None and info.get("kind") == "video":
        facts.append(("Audio", str(info.get("audio_codec") or "none")))
    facts.append(("Processed", processed_text(result.frames, result.time_range)))
    facts.append(("Face tracks" if tracked else "Faces", str(result.faces)))
    if result.persons is not None:
        facts.append(("Persons", str(len(result.persons))))
    if result.warning:
        facts.append(("Warning", str(result.warning)))
    return facts


#: The gallery's mark of a subject none of whose faces a conclusion may rest on.
NEVER_READABLE = "never readable: no expression reported"


def conclusions_text(timeline: pd.DataFrame, options: AnnotateOptions) -> str:
    """Which faces the conclusions rest on, in words (the report's settings, the ELAN file's properties)."""
    threshold = options.classification.min_p_correct
    if threshold <= 0:
        return "every face (--min-p-correct 0)"
    if not all(c in timeline.columns for c in ("readable", "p_correct")):
        return "every face (no readable or p_correct column: the model has no reliability estimate)"
    return f"readable faces with p_correct ≥ {threshold:g} (--min-p-correct)"


def never_readable(table: pd.DataFrame, subjects: Sequence[Subject]) -> dict[int, str]:
    """Subject key -> :data:`NEVER_READABLE` for the subjects of a summary or persons table without a trusted face
    (``readable_frames`` 0); a table from before ``readable_frames`` marks none."""
    if "readable_frames" not in table.columns:
        return {}
    column = "person_id" if "person_id" in table.columns and "face_ids" in table.columns else "face_id"
    counts = dict(zip(table[column].astype(int), table["readable_frames"]))
    return {s.key: NEVER_READABLE for s in subjects if counts.get(s.key, 1) == 0}


def edited_persons(run: dict[str, Any]) -> list[str]:
    """Each ``fervid persons`` edit of run.json in words, with its time: ``P11 merged into P2 (2026-… UTC)``."""
    from fervid.identity.edits import PersonEdits

    return [f"{PersonEdits.from_record(e).describe()} ({str(e.get('at', ''))[:16].replace('T', ' ')} UTC)"
            for e in run.get("edits", [])]  # fmt: skip


def detection_schedule(detect_every: int) -> str:
    """``--detect-every`` as the report's settings say it: every frame, or key frames and followed faces between."""
    if detect_every == 1:
        return "whole frame searched on every frame (--detect-every 1)"
    return (f"whole frame searched every {detect_every} frames, after a cut and after a lost face; faces followed "
            f"in windows between (--detect-every {detect_every}: a new face is found up to {detect_every - 1} "
            "frames late)")  # fmt: skip


def run_settings(result: InputResult, options: AnnotateOptions, smoothing: Smoothing | None) -> list[tuple[str, str]]:
    """The settings a reader needs to judge the labels: models, thresholds, smoothing, range, versions."""
    models = result.run.get("models", {})
    expression = models.get("expression", {})
    o = options
    settings = [
        ("Expression model", f"{expression.get('name', o.classification.model)} "
                             f"(sha256 {str(expression.get('sha256', ''))[:12]}…)"),
        ("Classes", ", ".join(result.classes)),
        ("Face detector", f"{models.get('detector', {}).get('name', o.detection.detector_weights)}, "
                          f"score ≥ {o.detection.det_threshold:g}, faces ≥ {o.detection.min_face:g} px"
                          + (f", {detection_schedule(o.detection.detect_every)}" if result.kind == "video" else "")),
        *([("Frames", f"every {o.input.every}" + (f", from {o.input.start:g} s" if o.input.start is not None else "")
            + (f", to {o.input.end:g} s" if o.input.end is not None else ""))] if result.kind == "video" else []),
        ("Identity", f"on, descriptor distance < {o.identity.identity_threshold:g}" if o.identity.identity
         else "off (--no-identity): one row per face" + (" track" if result.tracked(o) else "")),
    ]  # fmt: skip
    if o.identity.people:
        settings.append(("Known people", str(o.identity.people)))
    settings += [("Persons edited", edit) for edit in edited_persons(result.run)]
    settings.append(("Conclusions", conclusions_text(result.timeline, o)))
    if smoothing is not None:
        settings.append(("Smoothing (moments, timelines, ELAN)", smoothing.describe()))
        settings.append(("Moment threshold", f"smoothed p ≥ {o.output.moment_threshold:g}"))
        settings.append(("ELAN shortest run", f"{o.output.elan_min_run:g} s"))
    env = result.run.get("environment", {})
    settings.append(("fervid", f"{env.get('fervid', '')} on {env.get('device', o.runtime.device)}"))
    return settings


def picture(jpeg: bytes, alt: str, caption: str) -> Picture:
    return Picture(data_uri(jpeg), alt, caption)


def gallery_tiles(
    entries: Sequence[GalleryEntry], badges: dict[int, str] | None = None, table: pd.DataFrame | None = None
) -> list[Tile]:
    """Tiles with captions that say where each face is: time and frame in a video, the file of an image; with
    the summary or persons ``table``, each subject's dominant label and readable share; ``badges`` by subject key
    (:func:`never_readable`)."""
    verdicts = _verdicts(table) if table is not None else {}
    tiles = []
    for entry in entries:
        who = entry.subject.title
        best = None
        if entry.best is not None:
            b = entry.best
            where = b.file or f"frame {b.frame}"
            if math.isfinite(b.time_s):
                where = f"{seconds(b.time_s)}, {where}"
            best = picture(b.jpeg, f"Best face of {who} ({where}, face {b.track_id})", f"{where} · face {b.track_id}")
        spread = [picture(c.jpeg, f"{who} at {seconds(c.time_s)}", seconds(c.time_s)) for c in entry.spread]
        badge = (badges or {}).get(entry.subject.key, "")
        verdict = "" if badge else verdicts.get(entry.subject.key, "")
        tiles.append(Tile(entry.subject, best, spread, verdict, badge))
    return tiles


def _verdicts(table: pd.DataFrame) -> dict[int, str]:
    """Subject key -> ``happy · readable 85 %`` (the dominant label; how much of the subject could be read)."""
    column = "person_id" if "person_id" in table.columns and "face_ids" in table.columns else "face_id"
    out = {}
    for _, row in table.iterrows():
        if pd.isna(row["dominant_emotion"]):
            continue
        share = row.get("readable_share", float("nan"))
        readable = f" · readable {100 * share:.0f} %" if pd.notna(share) and share < 1 else ""
        out[int(row[column])] = f"{row['dominant_emotion']}{readable}"
    return out


def moment_pictures(moments: Sequence[Moment], files: dict[int, str] | None = None) -> list[Picture]:
    """Thumbnails of moments, captioned with class, smoothed probability, time and frame (its file for images)."""
    out = []
    for m in moments:
        if not m.peak.jpeg:
            continue
        where = (files or {}).get(m.peak.frame) or f"frame {m.peak.frame}"
        text = f"{m.emotion} {m.peak.value:.2f} at {m.peak.time_s:.2f} s ({where})"
        out.append(picture(m.peak.jpeg, f"{m.subject.title}: {text}", text))
    return out


@dataclass
class Numbers:
    """The numbers table: its leading columns, the classes under one "Mean probability" header, and its rows."""

    head: list[str]
    classes: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # cell positions right-aligned (numbers)
    lists: set[int] = field(default_factory=set)  # cell positions that may wrap (names, IDs, files)
    files: int = -1  # the position of the photos' files, if any


#: Items of a list cell (face IDs, files) shown at most; the tables hold all of them.
LIST_AT_MOST = 6


def listed(items: Sequence[str], separator: str = " ") -> str:
    """At most ``LIST_AT_MOST`` items, then how many more."""
    shown = separator.join(items[:LIST_AT_MOST])
    return shown if len(items) <= LIST_AT_MOST else f"{shown} … (+{len(items) - LIST_AT_MOST})"


def summary_table(table: pd.DataFrame, subjects: Sequence[Subject], frame_step: float | None,
                  classes: Sequence[str], timeline: pd.DataFrame | None = None,
                  tracked: bool = True) -> Numbers:  # fmt: skip
    """The per-subject numbers (from ``persons`` or, without identity, ``summary``).

    Videos and ``--sequence`` folders: first and last seen, frames and time on screen
    (``visible_s``, from the frames' own times); photos: the files the subject is in and how
    many faces. The Name column is there only when a subject has a ``--people`` name. Readable:
    the share of those faces the conclusions rest on (``readable_share``); the dominant label and
    the means come from them only, a dash where there is none.
    """
    column = "person_id" if "person_id" in table.columns and "face_ids" in table.columns else "face_id"
    by_key = {int(row[column]): row for _, row in table.iterrows()}
    named = any(s.name for s in subjects)
    files = _files_of(timeline, subjects) if timeline is not None and "file" in timeline.columns else {}
    head = ["ID", *(["Name"] if named else []), "Face IDs"]
    if tracked:
        head += ["First seen", "Last seen", "Frames", "Visible"]
    else:
        head += ["Photos", "Faces"]
    readable = "readable_share" in table.columns
    if readable:
        head.append("Readable")
    head.append("Dominant")
    rows = []
    for s in subjects:
        row = by_key.get(s.key)
        if row is None:
            continue
        cells = [s.label, *([s.name or "–"] if named else []), listed([str(t) for t in s.tracks])]
        if tracked:
            if "visible_s" in row.index:
                visible = seconds(row["visible_s"], 1)
            else:  # a table from before visible_s
                visible = seconds(row["frames"] * frame_step, 1) if frame_step else "–"
            cells += [seconds(row["first_time_s"]), seconds(row["last_time_s"]), str(int(row["frames"])), visible]
        else:
            cells += [listed(files.get(s.key, []), ", ") or "–", str(int(row["frames"]))]
        if readable:
            cells.append(f"{100 * float(row['readable_share']):.0f} %")
        cells.append("–" if pd.isna(row["dominant_emotion"]) else str(row["dominant_emotion"]))
        means = [float(row[f"mean_p_{c}"]) for c in classes]
        rows.append(cells + ["–" if math.isnan(m) else f"{100 * m:.0f}" for m in means])
    first_number = head.index("First seen") if tracked else head.index("Faces")
    numeric = {*range(first_number, head.index("Dominant")), *range(len(head), len(head) + len(classes))}
    lists = {head.index(name) for name in ("Name", "Face IDs", "Photos") if name in head}
    return Numbers(head, list(classes), rows, numeric, lists, head.index("Photos") if "Photos" in head else -1)


#: The behaviour table's columns (issue 32): the summary or persons column -> its heading.
BEHAVIOUR_HEADS = {"blinks_per_min": "Blinks per min", "mean_valence": "Mean valence"}


def behaviour_table(table: pd.DataFrame, subjects: Sequence[Subject], tracked: bool = True) -> Numbers:
    """Per subject: blinks per minute (videos and sequences) and mean valence; no rows with ``--no-behaviour``."""
    columns = [c for c in BEHAVIOUR_HEADS if c in table.columns and (tracked or c != "blinks_per_min")]
    if "mean_valence" not in table.columns:
        return Numbers(["ID"], [], [])
    key = "person_id" if "person_id" in table.columns and "face_ids" in table.columns else "face_id"
    by_key = {int(row[key]): row for _, row in table.iterrows()}
    rows = []
    for s in subjects:
        row = by_key.get(s.key)
        if row is not None:
            rows.append([s.label, *("–" if pd.isna(row[c]) else _behaviour_number(c, float(row[c])) for c in columns)])
    return Numbers(["ID", *(BEHAVIOUR_HEADS[c] for c in columns)], [], rows, set(range(1, len(columns) + 1)))


def _behaviour_number(column: str, value: float) -> str:
    return f"{value:.1f}" if column == "blinks_per_min" else f"{value:+.2f}"


def event_numbers(events: pd.DataFrame, subjects: Sequence[Subject], classes: Sequence[str]) -> Numbers:
    """The events table of the report: one row per event and subject, as ``<stem>.events.csv`` has them.

    Frames and Visible count every face in the window; Readable, the dominant label and the means only
    the faces the conclusions rest on (a dash where there is none). A subject not seen in a window has a row
    in the table (``frames`` 0) but none here: the report lists who was there.
    """
    who = "person_id" if "person_id" in events.columns else "face_id"
    by_key = {s.key: s for s in subjects}
    named = any(s.name for s in subjects)
    head = ["Event", "Window", "ID", *(["Name"] if named else []), "Frames", "Visible", "Readable", "Dominant"]
    rows = []
    for _, row in events[events["frames"] > 0].iterrows():
        subject = by_key.get(int(row[who]))
        label = subject.label if subject is not None else str(row[who])
        share = row["readable_share"]
        cells = [str(row["event"]), f"{row['onset_s']:.2f}–{row['offset_s']:.2f} s", label,
                 *([(subject.name if subject else "") or "–"] if named else []), str(int(row["frames"])),
                 seconds(row["visible_s"], 1), "–" if pd.isna(share) else f"{100 * float(share):.0f} %",
                 "–" if pd.isna(row["dominant_emotion"]) else str(row["dominant_emotion"])]  # fmt: skip
        means = [float(row[f"mean_p_{c}"]) for c in classes]
        rows.append(cells + ["–" if math.isnan(m) else f"{100 * m:.0f}" for m in means])
    numeric = {*range(head.index("Frames"), head.index("Dominant")), *range(len(head), len(head) + len(classes))}
    return Numbers(head, list(classes), rows, numeric, {head.index("Name")} if named else set())


def _files_of(timeline: pd.DataFrame, subjects: Sequence[Subject]) -> dict[int, list[str]]:
    """Each subject's image files, in the folder's order (the order of the timeline)."""
    column = "person_id" if "person_id" in timeline.columns else "face_id"
    keys = {s.key for s in subjects}
    rows = timeline[timeline[column].isin(keys)]
    return {int(k): list(dict.fromkeys(str(f) for f in group)) for k, group in rows.groupby(column, sort=False)["file"]}


def frame_step(result: InputResult, options: AnnotateOptions) -> float | None:
    """Seconds between processed frames (:meth:`InputResult.frame_step`); for a video whose frame rate is not
    known, the median step of its timestamps; None for independent photos."""
    step = result.frame_step(options)
    if step is not None or result.kind != "video":
        return step
    times = np.unique(result.timeline["time_s"].to_numpy())
    steps = np.diff(times)
    return float(np.median(steps[steps > 0])) if np.any(steps > 0) else 1.0
