"""The report's input sink: gallery, moments, ELAN file and ``<stem>.report.html`` for one finished input.

Videos and ``--sequence`` folders get everything; independent photos (no time) get the
lighter version: gallery, per-person numbers and links, no moments, timelines or ELAN file.
Every conclusion rests on the trusted faces (:func:`fervid.io.tables.trusted` at
``--min-p-correct``): the numbers come from the summaries, which count only those; timelines,
moments and ELAN labels are smoothed over them; a subject with none is marked in the gallery.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fervid.behaviour.valence import valence
from fervid.events import Events, tier_rows
from fervid.input_result import InputResult
from fervid.options import AnnotateOptions
from fervid.report.chart import subject_chart, valence_chart
from fervid.report.collect import KEY, ReportMaterial
from fervid.report.context import (
    Numbers,
    Section,
    behaviour_table,
    conclusions_text,
    event_numbers,
    frame_step,
    gallery_tiles,
    input_facts,
    moment_pictures,
    never_readable,
    run_settings,
    summary_table,
)
from fervid.report.elan import Segment, label_runs, valence_labels, write_eaf
from fervid.report.gallery import pick_gallery, write_gallery
from fervid.report.html import render, write_html
from fervid.report.moments import (
    Moment,
    frame_files,
    pick_moments,
    report_smoothing,
    smoothed_probs,
    top_labels,
    write_moments,
)
from fervid.report.subjects import Subject, rows_of, subjects_of


class ReportSink:
    """Writes ``faces/``, ``<stem>.faces.png``, ``moments/``, ``<stem>.moments.csv``, ``<stem>.eaf`` and
    ``<stem>.report.html``, each atomically; ``write`` returns them for run.json.
    """

    def __init__(self, options: AnnotateOptions) -> None:
        self.options = options

    def write(self, result: InputResult, outdir: Path, stem: str) -> list[Path]:
        o = self.options
        material: ReportMaterial | None = result.collected.get(KEY)
        subjects = subjects_of(result.timeline)
        tracked = result.tracked(o)
        table = result.persons if result.persons is not None else result.summary
        badges = never_readable(table, subjects)
        entries = pick_gallery(material.tracks if material else {}, subjects)
        written = write_gallery(entries, outdir, stem, badges)
        smoothing = report_smoothing(o) if tracked else None
        sections, moments = [], []
        if smoothing is not None:
            moments = pick_moments(material.peaks if material else {}, subjects, result.classes)
            written += write_moments(moments, result.timeline, smoothing, outdir, stem, o.output.table_suffixes)
            step = frame_step(result, o) or 1.0
            smoothed = smoothed_probs(result.timeline, result.classes, smoothing, o.classification.min_p_correct)
            sections = self._sections(result, subjects, smoothed, moments, step, _bands(result.windows))
            written.append(self._elan(result, subjects, smoothed, step, outdir / f"{stem}.eaf"))
        numbers = summary_table(table, subjects, frame_step(result, o), result.classes, result.timeline, tracked)
        page = render(
            "report.html.j2", title=result.source.name, facts=input_facts(result, tracked),
            settings=run_settings(result, o, smoothing), tiles=gallery_tiles(entries, badges, table), numbers=numbers,
            behaviour=behaviour_table(table, subjects, tracked),
            sections=sections, files=self._files(result, outdir, stem, tracked, bool(entries)), tracked=tracked,
            who=self._who(result, tracked), one_photo=not tracked and result.frames == 1,
            smoothing=smoothing.describe() if smoothing else "",
            threshold=o.output.moment_threshold, conclusions=conclusions_text(result.timeline, o),
            events=self._events(result, subjects), events_file=str(o.output.events or ""),
        )  # fmt: skip
        written.append(write_html(outdir / f"{stem}.report.html", page))
        return written

    @staticmethod
    def _events(result: InputResult, subjects: list[Subject]) -> Numbers | None:
        """The events table (None without --events; no rows when the input has no subject)."""
        if result.events is None:
            return None
        return event_numbers(result.events, subjects, result.classes)

    @staticmethod
    def _sections(
        result: InputResult, subjects: list[Subject], smoothed: np.ndarray, moments: list[Moment], step: float,
        bands: list[tuple[float, float, str, int]],
    ) -> list[Section]:  # fmt: skip
        times = result.timeline["time_s"].to_numpy()
        span = result.time_range or (float(np.nanmin(times)), float(np.nanmax(times)))
        sections = []
        for subject in subjects:
            rows = rows_of(result.timeline, subject)
            mine = [m for m in moments if m.subject == subject]
            chart = subject_chart(f"Timeline of {subject.title}", times[rows], smoothed[rows], result.classes, mine,
                                  span, step, bands)  # fmt: skip
            never = bool(np.isnan(smoothed[rows]).any(axis=1).all())
            mood = None
            if "valence" in result.timeline:  # the behaviour stage ran: valence of the smoothed probabilities
                mood = valence_chart(f"Valence of {subject.title}", times[rows],
                                     valence(smoothed[rows], result.classes), span, step, bands)  # fmt: skip
            pictures = moment_pictures(mine, frame_files(result.timeline))
            sections.append(Section(subject, chart, pictures, never, mood))
        return sections

    def _elan(
        self, result: InputResult, subjects: list[Subject], smoothed: np.ndarray, step: float, path: Path
    ) -> Path:
        labels = top_labels(smoothed, result.classes)  # None for an untrusted face: a gap in the tier
        times = result.timeline["time_s"].to_numpy()
        tiers, participants = {}, {}
        moods = valence_labels(valence(smoothed, result.classes)) if "valence" in result.timeline else None
        min_run = self.options.output.elan_min_run
        for subject in subjects:
            rows = rows_of(result.timeline, subject)
            tiers[subject.label] = label_runs(times[rows], labels[rows], step, min_run)
            participants[subject.label] = subject.name or subject.label
            if moods is not None:  # a tier of valence runs beside the labels
                tiers[f"{subject.label} valence"] = label_runs(times[rows], moods[rows], step, min_run)
                participants[f"{subject.label} valence"] = subject.name or subject.label
        if result.windows is not None:  # --events: one tier, or more when windows overlap (ELAN's cannot)
            for k, in_tier in enumerate(tier_rows(result.windows)):
                w = result.windows
                name = "Events" if k == 0 else f"Events {k + 1}"
                tiers[name] = [Segment(float(w.onset_s[i]), float(w.offset_s[i]), str(w.event[i])) for i in in_tier]
                participants[name] = ""
        media = result.source if result.kind == "video" else None
        smoothing = report_smoothing(self.options)
        notes = {"fervid:labels": f"top class, {smoothing.describe()}",
                 "fervid:min_run_s": f"{self.options.output.elan_min_run:g}",
                 "fervid:conclusions": conclusions_text(result.timeline, self.options)
                 + "; other faces are gaps"}  # fmt: skip
        return write_eaf(path, tiers, media, participants, notes)

    @staticmethod
    def _who(result: InputResult, tracked: bool) -> tuple[str, str]:
        """What a subject is, singular and plural: a person, else a face track (a face, for photos)."""
        if "person_id" in result.timeline.columns:
            return "person", "persons"
        return ("face track", "face tracks") if tracked else ("face", "faces")

    def _files(
        self, result: InputResult, outdir: Path, stem: str, tracked: bool, gallery: bool
    ) -> list[tuple[str, str]]:
        """(relative link, what it is) of the input's outputs, as the options of this run make them."""
        o = self.options
        made = {Path(p) for p in result.outputs}
        files = []
        if outdir / f"{stem}.annotated.mp4" in made:
            files.append((f"{stem}.annotated.mp4", "annotated video"))
        elif any(p.parent == outdir / "annotated" for p in made):
            files.append(("annotated/", "annotated images"))
        if tracked:
            tables = [("faces", "one row per face per frame"), ("summary", "one row per face track")]
        else:
            tables = [("faces", "one row per face, with its photo"), ("summary", "one row per face")]
        if result.persons is not None:
            tables.append(("persons", "one row per person"))
        files += [(f"{stem}.{what}{suffix}", why) for what, why in tables for suffix in o.output.table_suffixes]
        if tracked and o.output.plots:
            files.append((f"{stem}.timeline.png", "timeline plot of the probabilities"))
        if gallery:
            files.append((f"{stem}.faces.png", "contact sheet of the gallery"))
        if tracked:
            files += [(f"{stem}.moments{suffix}", "emotion moments") for suffix in o.output.table_suffixes]
            files.append((f"{stem}.eaf", "ELAN annotation file"))
        if result.events is not None:
            files += [(f"{stem}.events{suffix}", "one row per person and event") for suffix in o.output.table_suffixes]
        files.append((f"{stem}.run.json", "run record: versions, models, every option"))
        return files


def _bands(windows: Events | None) -> list[tuple[float, float, str, int]]:
    """The --events windows to shade on every chart: (onset_s, offset_s, name, label row); overlapping windows
    take successive label rows, as on ELAN's tiers."""
    if windows is None:
        return []
    rows = {i: k for k, tier in enumerate(tier_rows(windows)) for i in tier}
    return [(float(windows.onset_s[i]), float(windows.offset_s[i]), str(windows.event[i]), rows[i])
            for i in range(len(windows))]  # fmt: skip
