"""What ``<stem>.report.html`` shows, as plain values for its template: facts, settings, gallery, tables, charts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fervid.report.chart import Chart
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
    """One gallery tile: a subject, its best face, its faces over time."""

    subject: Subject
    best: Picture | None
    spread: list[Picture] = field(default_factory=list)


@dataclass
class Section:
    """One subject's timeline: the chart and its moments' thumbnails."""

    subject: Subject
    chart: Chart
    moments: list[Picture] = field(default_factory=list)


def seconds(value: Any, digits: int = 2) -> str:
    """A time in seconds for a table cell; a dash for none (photos have no time)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(number) else f"{number:.{digits}f} s"


def input_facts(result: Any) -> list[tuple[str, str]]:
    """The input's facts: path, kind, duration, frame rate, size, what was processed and found."""
    info = result.run.get("input", {})
    facts = [("File", str(info.get("path", result.source))), ("Kind", str(info.get("kind", result.kind)))]
    if info.get("duration_s"):
        facts.append(("Duration", seconds(info["duration_s"])))
    if info.get("fps"):
        facts.append(("Frame rate", f"{info['fps']:.3f} fps"))
    if info.get("width"):
        facts.append(("Picture", f"{info['width']} × {info['height']} px"))
    if info.get("has_audio") is not None and info.get("kind") == "video":
        facts.append(("Audio", str(info.get("audio_codec") or "none")))
    facts.append(("Frames processed", str(result.frames)))
    if result.time_range and all(math.isfinite(t) for t in result.time_range):
        facts.append(("Time processed", f"{result.time_range[0]:.2f} s – {result.time_range[1]:.2f} s"))
    facts.append(("Face tracks", str(result.faces)))
    if result.persons is not None:
        facts.append(("Persons", str(len(result.persons))))
    if result.warning:
        facts.append(("Warning", str(result.warning)))
    return facts


def run_settings(result: Any, options: Any, smoothing: Smoothing | None) -> list[tuple[str, str]]:
    """The settings a reader needs to judge the labels: models, thresholds, smoothing, range, versions."""
    models = result.run.get("models", {})
    expression = models.get("expression", {})
    o = options
    settings = [
        ("Expression model", f"{expression.get('name', o.classification.model)} "
                             f"(sha256 {str(expression.get('sha256', ''))[:12]}…)"),
        ("Classes", ", ".join(result.classes)),
        ("Face detector", f"{models.get('detector', {}).get('name', o.detection.detector_weights)}, "
                          f"score ≥ {o.detection.det_threshold:g}, faces ≥ {o.detection.min_face:g} px"),
        ("Frames", f"every {o.input.every}" + (f", from {o.input.start:g} s" if o.input.start is not None else "")
         + (f", to {o.input.end:g} s" if o.input.end is not None else "")),
        ("Identity", f"on, descriptor distance < {o.identity.identity_threshold:g}" if o.identity.identity
         else "off (--no-identity): one row per face track"),
    ]  # fmt: skip
    if o.identity.people:
        settings.append(("Known people", str(o.identity.people)))
    if smoothing is not None:
        settings.append(("Smoothing (moments, timelines, ELAN)", smoothing.describe()))
        settings.append(("Moment threshold", f"smoothed p ≥ {o.output.moment_threshold:g}"))
        settings.append(("ELAN shortest run", f"{o.output.elan_min_run:g} s"))
    env = result.run.get("environment", {})
    settings.append(("fervid", f"{env.get('fervid', '')} on {env.get('device', o.runtime.device)}"))
    return settings


def picture(jpeg: bytes, alt: str, caption: str) -> Picture:
    return Picture(data_uri(jpeg), alt, caption)


def gallery_tiles(entries: Sequence[GalleryEntry]) -> list[Tile]:
    tiles = []
    for entry in entries:
        who = entry.subject.title
        best = None
        if entry.best is not None:
            b = entry.best
            where = f"{seconds(b.time_s)}, frame {b.frame}" if math.isfinite(b.time_s) else f"frame {b.frame}"
            best = picture(b.jpeg, f"Best face of {who} ({where}, face {b.track_id})", f"{where} · face {b.track_id}")
        spread = [picture(c.jpeg, f"{who} at {seconds(c.time_s)}", seconds(c.time_s)) for c in entry.spread]
        tiles.append(Tile(entry.subject, best, spread))
    return tiles


def moment_pictures(moments: Sequence[Moment]) -> list[Picture]:
    out = []
    for m in moments:
        if not m.peak.jpeg:
            continue
        text = f"{m.emotion} {m.peak.value:.2f} at {m.peak.time_s:.2f} s (frame {m.peak.frame})"
        out.append(picture(m.peak.jpeg, f"{m.subject.title}: {text}", text))
    return out


def summary_table(table: pd.DataFrame, subjects: Sequence[Subject], frame_step: float | None,
                  classes: Sequence[str]) -> tuple[list[str], list[list[str]]]:  # fmt: skip
    """Header and rows of the per-subject numbers (from ``persons`` or, without identity, ``summary``)."""
    column = "person_id" if "person_id" in table.columns and "face_ids" in table.columns else "face_id"
    by_key = {int(row[column]): row for _, row in table.iterrows()}
    head = ["ID", "Name", "Face IDs", "First seen", "Last seen", "Frames", "Visible", "Dominant",
            *(f"mean p({c})" for c in classes)]  # fmt: skip
    rows = []
    for s in subjects:
        row = by_key.get(s.key)
        if row is None:
            continue
        visible = seconds(row["frames"] * frame_step, 1) if frame_step else "–"
        means = [f"{100 * float(row[f'mean_p_{c}']):.0f} %" for c in classes]
        rows.append([s.label, s.name or "–", " ".join(map(str, s.tracks)), seconds(row["first_time_s"]),
                     seconds(row["last_time_s"]), str(int(row["frames"])), visible, str(row["dominant_emotion"]),
                     *means])  # fmt: skip
    return head, rows


def frame_step(result: Any, options: Any) -> float | None:
    """Seconds between processed frames: ``--every`` over the frame rate; None for independent photos."""
    if result.kind == "video":
        fps = result.run.get("input", {}).get("fps") or (result.media.fps if result.media else None)
        if fps:
            return options.input.every / fps
    elif options.input.sequence:
        return options.input.every / options.input.fps
    else:
        return None
    times = np.unique(result.timeline["time_s"].to_numpy())
    steps = np.diff(times)
    return float(np.median(steps[steps > 0])) if np.any(steps > 0) else 1.0
