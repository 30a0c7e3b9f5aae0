"""``OUT/index.html``: every input of an output folder, linking its report, and what failed and why.

``fervid annotate`` writes it after a batch (:func:`write_batch_index`: the failures come from
the batch report), ``fervid summarize`` from the folder alone (:func:`write_index`: inputs whose
run is incomplete are listed as "incomplete"). One row per complete input: its persons (or
face tracks without identity), the file's duration and what was processed (as the report says
them), how much of the faces the conclusions rest on (readable, ``p_correct`` at or above the
run's ``--min-p-correct``; persons never readable), dominant emotions (the label most often on
top per person over those faces, counted over persons that have one) and a relative link to
``<stem>/<stem>.report.html`` when there is one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fervid import metadata
from fervid.checks import plural
from fervid.report.extent import duration_text, is_timed, processed_text
from fervid.report.html import render, write_html

INDEX = "index.html"


@dataclass(frozen=True)
class IndexRow:
    input: str  # the output folder's name (the stem)
    source: str
    kind: str
    persons: str
    duration: str  # the whole file's
    processed: str  # what the run covered: a time range and frames, or photos
    dominant: str
    report: str | None  # relative link, when the input has a report
    readable: str = "–"  # the share of faces the conclusions rest on, and who was never readable


def _table(folder: Path, stem: str, what: str) -> Path | None:
    for suffix in (".csv", ".parquet"):
        if (folder / f"{stem}.{what}{suffix}").exists():
            return folder / f"{stem}.{what}{suffix}"
    return None


def _conclusions(folder: Path, stem: str, who: str) -> tuple[str, str]:
    """An input's dominant emotions (how many persons, or tracks, had each one most often on top) and how much of
    it could be read: ``72 % of faces, 2 persons never readable`` (``who``: person or track)."""
    from fervid.io.table_reader import read_table

    path = _table(folder, stem, "persons") or _table(folder, stem, "summary")
    if path is None:
        return "–", "–"
    try:
        table = read_table(path)
        counts = Counter(table["dominant_emotion"].dropna().astype(str))
    except (OSError, ValueError, KeyError):
        return "–", "–"
    dominant = ", ".join(f"{name} ({n})" for name, n in counts.most_common(3)) or "no faces"
    if "readable_frames" not in table.columns or not len(table):  # a run from before readable_frames; no faces
        return dominant, "–"
    never = int((table["readable_frames"] == 0).sum())
    readable = f"{100 * table['readable_frames'].sum() / table['frames'].sum():.0f} % of faces"
    if never:
        readable += f", {plural(never, who)} never readable"
    return dominant if counts else "–", readable


def row_for(outdir: Path, folder: Path, stem: str) -> IndexRow:
    record = metadata.read_run(folder, stem) or {}
    identity = record.get("identity")
    faces = "face" if record.get("kind") == "images" and not is_timed(record.get("time_range_s")) else "track"
    persons = f"{identity['persons']}" if identity else plural(int(record.get("faces_found", 0)), faces)
    report = folder / f"{stem}.report.html"
    link = report.relative_to(outdir).as_posix() if report.exists() and report.is_relative_to(outdir) else None
    name = stem if folder == outdir else folder.relative_to(outdir).as_posix()
    facts, span = record.get("input", {}), record.get("time_range_s")
    processed = processed_text(int(record.get("frames_processed", 0)), span)
    kind = str(record.get("kind", ""))
    if kind == "images":
        kind = "frames (--sequence)" if is_timed(span) else "photos"
    dominant, readable = _conclusions(folder, stem, "person" if identity else faces)
    return IndexRow(name, str(facts.get("path", "")), kind, persons, duration_text(facts), processed, dominant, link,
                    readable)  # fmt: skip


def write_index(outdir: Path, failures: Iterable[tuple[str, str, str]] = ()) -> Path:
    """Write ``outdir/index.html``; ``failures`` are (input, status, reason) from a batch, listed first.

    Inputs with a run record that is not complete are listed as incomplete.
    """
    outdir = Path(outdir)
    rows, problems = [], list(failures)
    named = {name for name, _, _ in problems}
    for folder, stem in metadata.run_records(outdir):
        if metadata.is_complete(folder, stem):
            rows.append(row_for(outdir, folder, stem))
        elif folder.name not in named:
            problems.append((folder.relative_to(outdir).as_posix() if folder != outdir else stem, "incomplete",
                             "its run record is missing outputs or was not finished"))  # fmt: skip
    page = render("index.html.j2", title=outdir.resolve().name or str(outdir), rows=rows, problems=problems,
                  generated=metadata.now_utc())  # fmt: skip
    return write_html(outdir / INDEX, page)


def write_batch_index(outdir: Path, report: Any) -> Path | None:
    """The index after ``fervid annotate``: failed, interrupted and never-started inputs with their reasons.

    None is written when the folder holds no run at all (every input failed, now and before):
    a page listing only failures would be partial output of a run that made nothing; the
    console already named each file and its reason.
    """
    if not metadata.run_records(outdir):
        return None
    failures = [(o.input.label, o.status.value, o.reason or "") for o in report.failed]
    failures += [(item.label, "not started", report.stopped or "the run stopped first") for item in report.not_started]
    try:
        return write_index(outdir, failures)
    except OSError:
        return None
