"""``fervid persons``: apply person edits to a finished run and write every output of it again, atomically.

The edited tables come from :mod:`fervid.identity.edits`. Everything else is written by the
code that wrote it the first time, fed from the tables instead of the models:

* the faces table is replayed over the input (decode only) as the frame sinks' input
  (:meth:`fervid.sinks.TimelineFrames.result`): the annotated video or images are drawn again
  (as issue 36's end-of-input relabel does), and the report's collector cuts the gallery faces
  and moment thumbnails again, per track, so a merged person's best face is the best of all
  of its tracks;
* the input sinks (:func:`fervid.sinks.input_sinks`: tables, blinks, events, timeline plot, report
  with gallery, moments and ELAN file, codebook) run on the edited tables, in the formats the run used;
  the blinks table is the run's with each blink's new person, and the persons table's behaviour
  columns (``blinks_per_min``, ``mean_valence``) come from :func:`fervid.run.behaviour_summaries`,
  as in a run;
* ``<stem>.embeddings.npz`` gets the new person of each track.

Nothing is written in the output folder itself: every file goes to a hidden folder beside it,
which replaces the folder only when complete (two renames), so an error or Ctrl-C midway
leaves the old outputs as they were, and no file of a person that is gone (``faces/P5.jpg``)
survives. Files the run did not write (a researcher's notes) are carried over. run.json is
written last, with the edit added to its ``edits`` list.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fervid import metadata
from fervid.identity.edits import (
    NO_PERSON,
    EditError,
    EditPlan,
    PersonEdits,
    edited_blinks,
    edited_faces,
    edited_persons,
    edited_summary,
    plan_edits,
)
from fervid.io.errors import InputError
from fervid.io.tables import TimelineBuilder, classes_of
from fervid.options import AnnotateOptions, leaf_fields
from fervid.types import Frame
from fervid.version import __version__

if TYPE_CHECKING:
    from fervid.events import Events
    from fervid.io.media_info import MediaInfo
    from fervid.sinks import TimelineFrames
    from fervid.smooth import SmoothedResult

#: Frame times of the replay and of the run agree to this many seconds (the tables keep microseconds).
TIME_TOLERANCE_S = 1e-3
TEMP_TAG = ".persons-"


@dataclass
class EditOutcome:
    """What an edit did: the folder, its stem, the files written, listed outputs no longer written."""

    folder: Path
    stem: str
    edits: PersonEdits
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)
    frames_replayed: int = 0
    entry: dict[str, Any] = field(default_factory=dict)  # what run.json's ``edits`` gets


@dataclass
class _Run:
    """A finished run read back: its record, options, tables, and where its table files are."""

    folder: Path
    stem: str
    record: dict[str, Any]
    options: AnnotateOptions
    faces: pd.DataFrame
    summary: pd.DataFrame
    persons: pd.DataFrame

    @property
    def listed(self) -> list[str]:
        return list(self.record.get("outputs", []))

    @property
    def source(self) -> Path:
        return Path(self.record.get("input", {}).get("path", ""))

    @property
    def replays(self) -> bool:
        """Whether outputs drawn from the frames exist: the annotated video or images, or the report."""
        o = self.options.output
        return o.report or (o.video and any(n.endswith(".annotated.mp4") or n == "annotated/" for n in self.listed))


def edit_persons(
    folder: str | os.PathLike[str], edits: PersonEdits, progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> EditOutcome:  # fmt: skip
    """Apply ``edits`` to the run in ``folder`` (``OUT/<stem>``) and rewrite its outputs; nothing changes on error.

    ``on_start`` gets the number of frames about to be replayed (0: none), ``progress`` each one.
    Errors are :class:`~fervid.identity.edits.EditError` or :class:`~fervid.io.errors.InputError`,
    with a one-line message.
    """
    run = _read_run(Path(folder))
    plan = plan_edits(run.faces, edits)
    media = _media(run) if run.replays else None  # the input must be there before anything is written
    windows = _windows(run)  # and the --events file, when the run had one
    temp = run.folder.with_name(f".{run.folder.name}{TEMP_TAG}{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    outcome = EditOutcome(run.folder, run.stem, edits)
    outcome.entry = {"at": metadata.now_utc(), **edits.record(), "fervid": __version__}
    try:
        temp.mkdir()
        written = _write_outputs(run, plan, media, windows, temp, progress, on_start, outcome)
        outcome.carried = _carry_over(run, temp)
        outcome.removed = [n for n in run.listed if n not in metadata_names(written, temp)]
        record = _edited_record(run, plan, outcome.entry, written, temp)
        metadata.write_run(temp, run.stem, record)
        outcome.written = [*record["outputs"], f"{run.stem}{metadata.SUFFIX}"]
        _swap(temp, run.folder)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    _refresh_index(run.folder.parent)
    return outcome


# ------------------------------------------------------------------------------- reading the run
def _read_run(folder: Path) -> _Run:
    from fervid.io.table_reader import read_table

    if not folder.is_dir():
        raise EditError(f"{folder}: no such folder (give a fervid output folder, OUT/<stem>)")
    records = sorted(folder.glob(f"*{metadata.SUFFIX}"))
    if not records:
        raise EditError(f"{folder}: not a fervid output folder (no <stem>{metadata.SUFFIX}; was the run finished?)")
    if len(records) > 1:
        raise EditError(f"{folder}: {len(records)} run records; give the folder of one input (OUT/<stem>)")
    stem = records[0].name[: -len(metadata.SUFFIX)]
    record = metadata.read_run(folder, stem)
    if record is None:
        raise EditError(f"{records[0]}: not a fervid run record")
    if not metadata.is_complete(folder, stem):
        missing = [n for n in record.get("outputs", []) if not (folder / n).exists()]
        raise EditError(f"{folder}: the run is incomplete ({', '.join(missing)} missing)")
    known = {f.name for _, f in leaf_fields()}
    try:
        options = AnnotateOptions.from_flat(**{k: v for k, v in record.get("options", {}).items() if k in known})
    except (TypeError, ValueError, ImportError) as exc:
        raise EditError(f"{records[0]}: its options cannot be used again ({exc})") from None

    def table(what: str) -> pd.DataFrame:
        for suffix in (".parquet", ".csv"):  # Parquet first: exact values
            if f"{stem}.{what}{suffix}" in record.get("outputs", []):
                return read_table(folder / f"{stem}.{what}{suffix}")
        raise EditError(f"{folder}: the run wrote no {what} table")

    if "identity" not in record:
        raise EditError(f"{folder}: this run has no persons (made with --no-identity): nothing to merge, name or drop")
    return _Run(folder, stem, record, options, table("faces"), table("summary"), table("persons"))


def _media(run: _Run) -> MediaInfo:
    """The input's probe result: the input must still be there to draw the video and cut faces again."""
    from fervid.io.probe import probe

    if not str(run.source) or not run.source.exists():
        raise EditError(
            f"{run.source}: the run's input is gone; it is needed to draw the video and cut the gallery faces again"
        )
    return probe(run.source)


def _windows(run: _Run) -> Events | None:
    """The run's ``--events`` windows for this input, read again from the file run.json names (None: no events).

    The file must still be there and unchanged (its sha256 is in run.json): the events table is one row per
    person and event, so it is written again with the persons.
    """
    from fervid.events import EventsError, input_names, load_events

    recorded = run.record.get("events")
    if not recorded:
        return None
    path = Path(recorded.get("path", ""))
    if not path.is_file():
        raise EditError(f"{path}: the run's --events file is gone; it is needed to write the events table again")
    try:
        events = load_events(path, recorded.get("tier"))
    except EventsError as exc:
        raise EditError(str(exc)) from None
    if recorded.get("sha256") and events.sha256 != recorded["sha256"]:
        raise EditError(f"{path}: the --events file changed since the run (its sha256 differs from run.json's)")
    return events.for_input(*input_names(run.stem, run.source.name, None))


def _edited_events(
    run: _Run, faces: pd.DataFrame, classes: tuple[str, ...], windows: Events, plan: EditPlan
) -> pd.DataFrame:  # fmt: skip
    """The events table from the edited faces; each window's ``visible_s`` per person is the sum of its parts'.

    As for the persons table (:func:`~fervid.identity.edits.edited_persons`): merged persons never share a
    frame, so their time on screen in a window adds up, as the run measured it with every frame's time.
    The run's table has a block of rows per window, one row per person in ID order (:func:`event_table`).
    """
    from fervid.events import event_table
    from fervid.io.table_reader import read_table

    table = event_table(faces, classes, windows, None, run.options.classification.min_p_correct)
    old = _table(run, "events", read_table)
    if old is None or not len(table):
        return table
    per_window = max(1, len(old) // max(1, len(windows)))
    visible = {(i // per_window, int(p)): v for i, (p, v) in enumerate(zip(old["person_id"], old["visible_s"]))}
    per_window_new = len(table) // len(windows)
    table["visible_s"] = [
        sum(visible.get((i // per_window_new, o), 0.0) for o in plan.sources(int(p)))
        for i, p in enumerate(table["person_id"])
    ]  # fmt: skip
    return table


def _table(run: _Run, what: str, read: Callable[[Path], pd.DataFrame]) -> pd.DataFrame | None:
    """One of the run's tables (Parquet first: exact values), or None when the run did not write it."""
    for suffix in (".parquet", ".csv"):
        name = f"{run.stem}.{what}{suffix}"
        if name in run.listed:
            return read(run.folder / name)
    return None


# ------------------------------------------------------------------------------- writing the new outputs
def _write_outputs(
    run: _Run, plan: EditPlan, media: MediaInfo | None, windows: Events | None, out: Path,
    progress: Callable[[int], None] | None, on_start: Callable[[int], None] | None, outcome: EditOutcome,
) -> list[Path]:  # fmt: skip
    from fervid.events import with_blink_rates
    from fervid.io.table_reader import read_table
    from fervid.run import InputResult, behaviour_summaries
    from fervid.sinks import input_sinks

    record, options = run.record, run.options
    classes = classes_of(run.faces)
    faces = edited_faces(run.faces, plan)
    persons = edited_persons(faces, run.persons, plan, classes, options.classification.min_p_correct)
    blinks = _table(run, "blinks", read_table)  # found per face track: the run's, with the new persons
    blinks = edited_blinks(blinks, plan) if blinks is not None else None
    summary, persons = behaviour_summaries(edited_summary(run.summary, plan), persons, faces, blinks, options)
    record = {**record, "edits": [*record.get("edits", []), outcome.entry]}  # the report lists the edits
    span = record.get("time_range_s")
    result = InputResult(
        source=run.source, kind=str(record.get("kind", "video")), timeline=faces, summary=summary,
        frames=int(record.get("frames_processed", 0)), seconds=0.0, warning=record.get("warning"), classes=classes,
        time_range=(float(span[0]), float(span[1])) if span else None, run=dict(record), media=media, persons=persons,
        blinks=blinks,
    )  # fmt: skip
    if windows is not None:
        result.windows = windows
        result.events = with_blink_rates(_edited_events(run, faces, classes, windows, plan), blinks)
    if media is not None:
        if on_start is not None:
            on_start(result.frames)
        written, collected, outcome.frames_replayed = _replay(run, media, faces, classes, plan, out, progress)
        result.outputs, result.collected = list(written), collected
    elif on_start is not None:
        on_start(0)
    for sink in input_sinks(options):
        result.outputs += sink.write(result, out, run.stem)
    npz = run.folder / f"{run.stem}.embeddings.npz"
    if f"{run.stem}.embeddings.npz" in run.listed:
        result.outputs.append(_edited_embeddings(npz, plan, out / npz.name))
    return result.outputs


def _replay(
    run: _Run, media: MediaInfo, faces: pd.DataFrame, classes: tuple[str, ...], plan: EditPlan, out: Path,
    progress: Callable[[int], None] | None,
) -> tuple[list[Path], dict[str, Any], int]:  # fmt: skip
    """Decode the input again and feed every frame, with its faces from the edited table, to the frame sinks."""
    from fervid.run import frame_loop, frame_sinks, open_reader
    from fervid.sinks import TimelineFrames, collecting_sinks

    options = run.options
    with open_reader(media, options) as reader:
        drawn = run.options.output.video and any(
            n.endswith(".annotated.mp4") or n == "annotated/" for n in run.listed
        )  # fmt: skip
        sinks = frame_sinks(reader, media, options, out, run.stem, plan.names.get) if drawn else []
        sinks += collecting_sinks(options)
        replay = _replayed(iter(reader), TimelineFrames(faces, classes), faces, run.source)
        loop = frame_loop(replay, TimelineBuilder(classes), sinks, progress)
    expected = int(run.record.get("frames_processed", loop.frames))
    if loop.frames != expected:
        raise InputError(run.source, f"gave {loop.frames} frames, the run processed {expected}: it changed since")
    collected = {k: v for sink in sinks for k, v in getattr(sink, "collected", {}).items()}
    return loop.written, collected, loop.frames


def _replayed(
    frames: Iterator[Frame], table: TimelineFrames, faces: pd.DataFrame, source: Path
) -> Generator[SmoothedResult, None, None]:
    """Each frame of the input with its faces from the table, checked against the run's frames as it goes."""
    for frame in _checked_frames(frames, faces, source):
        yield table.result(frame)


def _checked_frames(frames: Iterator[Frame], faces: pd.DataFrame, source: Path) -> Iterator[Frame]:
    """The input's frames, each checked against the run's: the same time (video), the same file (photos)."""
    first = faces.drop_duplicates("frame").set_index("frame")
    times = first["time_s"].to_dict()
    files = first["file"].to_dict() if "file" in first.columns else {}
    for frame in frames:
        t = times.get(frame.index)
        if t is not None and np.isfinite(t) and abs(frame.time_s - t) > TIME_TOLERANCE_S:
            raise InputError(source, f"frame {frame.index} is at {frame.time_s:.3f} s, the run had it at {t:.3f} s: "
                                     "the input changed since the run")  # fmt: skip
        name = files.get(frame.index)
        if name is not None and frame.source is not None and Path(str(name)).name != Path(frame.source).name:
            raise InputError(source, f"image {frame.index} is {frame.source}, the run had {name}: the folder changed")
        yield frame


def _edited_embeddings(path: Path, plan: EditPlan, target: Path) -> Path:
    """The run's embeddings with each track's new person (``NO_PERSON`` when dropped)."""
    from fervid.io.atomic import atomic_path

    with np.load(path) as saved:
        arrays = {name: saved[name] for name in saved.files}
    arrays["person_id"] = np.array(
        [plan.new_of_old.get(int(p), NO_PERSON) for p in arrays["person_id"]], dtype=np.int64
    )  # fmt: skip
    with atomic_path(target) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **arrays)
    return target


def _carry_over(run: _Run, out: Path) -> list[str]:
    """Hard-link (or copy) into ``out`` the files of the folder fervid did not write (notes, a researcher's coding).

    The run's own outputs are never carried: the listed files and everything inside a listed
    folder (``faces/``, ``moments/``, ``annotated/``) are written again or are gone.
    """
    from fervid.io.atomic import PARTIAL_TAG

    listed = set(run.listed) | {f"{run.stem}{metadata.SUFFIX}"}
    folders = tuple(n for n in listed if n.endswith("/"))
    carried = []
    for path in sorted(run.folder.rglob("*")):
        rel = path.relative_to(run.folder).as_posix()
        if not path.is_file() or rel in listed or rel.startswith(folders) or PARTIAL_TAG in path.name:
            continue
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        carried.append(rel)
    return carried


def metadata_names(paths: list[Path], folder: Path) -> list[str]:
    """Output names as run.json lists them (a file in a subfolder: the folder, ``faces/``)."""
    from fervid.run import relative_outputs

    return relative_outputs(paths, folder)


def _edited_record(run: _Run, plan: EditPlan, entry: dict[str, Any], written: list[Path], out: Path) -> dict[str, Any]:
    """The run record with the new persons, names and outputs, and this edit (``entry``) appended to ``edits``."""
    record = {k: v for k, v in run.record.items() if k not in ("format", "stem")}
    identity = dict(record.get("identity", {}))
    identity["persons"] = len({p for p in plan.new_of_old.values() if p != NO_PERSON})
    identity["names"] = {str(p): name for p, name in plan.names.items()}
    record["identity"] = identity
    record["outputs"] = metadata_names(written, out)
    record["edits"] = [*record.get("edits", []), entry]
    return record


def _swap(new: Path, folder: Path) -> None:
    """Put ``new`` in place of ``folder``: two renames on one file system; the old folder is back on any error."""
    old = folder.with_name(f".{folder.name}{TEMP_TAG}old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(folder, old)
    try:
        os.rename(new, folder)
    except BaseException:
        os.rename(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _refresh_index(outdir: Path) -> None:
    """``OUT/index.html`` counts each input's persons: write it again when the batch wrote one.

    The edit is done by now, so a corpus index that cannot be written (another input's damaged
    record) does not undo it: ``fervid summarize OUT`` writes the index again.
    """
    from fervid.report.index import write_index

    if (outdir / "index.html").is_file():
        with contextlib.suppress(Exception):
            write_index(outdir)
