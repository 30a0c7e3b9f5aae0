"""Outputs: each file (or family of files) an input produces is written by one sink.

Two kinds, so a new output is one new class:

* a :class:`FrameSink` sees every result as it is made (the annotated video, annotated
  images): ``add(result)`` per frame, ``close()`` when the input is done (returns the files,
  renamed into place), ``abort()`` on error (leaves nothing behind);
* an :class:`InputSink` sees the finished input once (tables, the timeline plot, the report):
  ``write(result, outdir, stem)`` returns the files it wrote, each written atomically.

Frame sinks draw persons as identity knew them while the frames streamed; identity's last
word comes at the end of the input (:meth:`fervid.identity.stage.IdentityStage.finish` may
merge persons). A sink that draws persons is therefore also a :class:`Relabelling` sink:
``relabel(timeline, labels)`` redraws, from the final faces table, what it drew with a person
or name the tables do not have, so the pictures and the tables always agree.

A frame sink may also collect for the input sinks, writing nothing itself (the report's face
crops): its ``collected`` dict goes into ``InputResult.collected`` (:func:`collecting_sinks`).

``<stem>.run.json`` is not a sink: :func:`fervid.run.write_outputs` writes it after every
sink has finished, so its presence means the outputs are complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypedDict, runtime_checkable

import numpy as np
import pandas as pd

from fervid.annotate import FrameAnnotator
from fervid.concurrency import BoundedStage
from fervid.io.atomic import atomic_path
from fervid.io.tables import write_table
from fervid.io.video_writer import VideoWriter
from fervid.options import AnnotateOptions
from fervid.smooth import SmoothedResult
from fervid.types import Detections, Frame, Predictions

if TYPE_CHECKING:
    from fervid.input_result import InputResult
    from fervid.io.video import VideoReader

#: Frames drawn ahead of the encoder at most (the drawing stage's capacity).
DRAW_QUEUE = 8


class FrameSink(Protocol):
    def add(self, result: SmoothedResult) -> None: ...

    def close(self) -> list[Path]: ...

    def abort(self) -> None: ...


class InputSink(Protocol):
    def write(self, result: InputResult, outdir: Path, stem: str) -> list[Path]: ...


@runtime_checkable
class Relabelling(Protocol):
    """A frame sink that drew persons and can redraw them once identity is final (see the module docstring)."""

    def relabel(self, timeline: pd.DataFrame, classes: tuple[str, ...], labels: FinalLabels) -> bool: ...


#: What a sink drew for one face: (track ID, person ID, name or None).
Drawn = tuple[int, int, "str | None"]


@dataclass(frozen=True)
class FinalLabels:
    """Identity's final word: every track's person and every person's name (empty without ``--people``)."""

    person_of_track: Mapping[int, int]
    names: Mapping[int, str] = field(default_factory=dict)

    def name(self, person_id: int) -> str | None:
        return self.names.get(person_id)

    def disagrees(self, drawn: Iterable[Drawn]) -> bool:
        """Whether any face was drawn with a person or a name other than the final ones."""
        for track_id, person_id, name in drawn:
            final = self.person_of_track.get(track_id, person_id)
            if final != person_id or (final >= 1 and self.name(final) != name):
                return True
        return False


def drawn_faces(detections: Detections, names: Callable[[int], str | None] | None) -> list[Drawn]:
    """(track, person, name) of every face as the annotator labels it."""
    return [
        (t, p, names(p) if names is not None and p >= 1 else None)
        for t, p in zip(detections.track_id.tolist(), detections.person_id.tolist())
    ]


class TimelineFrames:
    """The faces table read back frame by frame as the annotator's input: detections and the probabilities shown.

    The probabilities are the smoothed ``ps_`` columns when the table has them (what the video
    shows with ``--smooth``), the raw ``p_`` columns otherwise. ``readable`` and ``p_correct``
    go back into ``Detections.data``, so a redrawn face is marked untrusted as it was the first time.
    """

    def __init__(self, timeline: pd.DataFrame, classes: tuple[str, ...]) -> None:
        from fervid.io.tables import LANDMARK_COLUMNS

        table = timeline.sort_values("frame", kind="stable")
        self.classes = classes
        self._frame = table["frame"].to_numpy()
        self._xyxy = table[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
        self._score = table["det_score"].to_numpy(np.float32)
        self._landmarks = table[list(LANDMARK_COLUMNS)].to_numpy(np.float32).reshape(-1, 5, 2)
        self._track = table["face_id"].to_numpy(np.int64)
        person = table["person_id"] if "person_id" in table else pd.Series(-1, index=table.index)
        self._person = person.to_numpy(np.int64)
        shown = "ps_" if all(f"ps_{c}" in table for c in classes) else "p_"
        self._probs = table[[f"{shown}{c}" for c in classes]].to_numpy(np.float32)
        self._raw = table[[f"p_{c}" for c in classes]].to_numpy(np.float32)
        self._smoothed = self._probs if shown == "ps_" else None  # NaN for untrusted faces, as the run's columns
        self._probs = np.where(np.isnan(self._probs), self._raw, self._probs)  # untrusted faces: no smoothed value
        self._data = {name: table[name].to_numpy() for name in ("readable", "p_correct") if name in table}

    def at(self, frame_index: int) -> tuple[Detections, Predictions]:
        """The faces of one frame (none: empty containers)."""
        rows = slice(*np.searchsorted(self._frame, [frame_index, frame_index + 1]))
        detections = Detections(
            self._xyxy[rows], self._score[rows], self._landmarks[rows], self._track[rows], self._person[rows],
            {name: values[rows] for name, values in self._data.items()},
        )  # fmt: skip
        return detections, Predictions(self._probs[rows], self.classes)

    def result(self, frame: Frame) -> SmoothedResult:
        """One frame of the input with its faces as the run saw them: the raw ``p_`` probabilities as
        ``predictions`` (what the report's collector reads), the drawn ones as ``shown``.

        So a saved run can be replayed through the frame sinks without any model (``fervid persons``).
        """
        detections, shown = self.at(frame.index)
        rows = slice(*np.searchsorted(self._frame, [frame.index, frame.index + 1]))
        smoothed = shown if self._smoothed is not None else None
        return SmoothedResult(frame, detections, Predictions(self._raw[rows], self.classes), smoothed)


# ------------------------------------------------------------------------------- per frame
class _WriterArgs(TypedDict):
    """The :class:`VideoWriter` arguments a :class:`VideoSink` keeps, to encode the video again in ``relabel``."""

    width: int
    height: int
    fps: float
    time_base: Fraction
    audio_from: Path | None
    end_s: float | None
    origin_s: float


class VideoSink:
    """``<stem>.annotated.mp4``: frames drawn in a stage of their own, then encoded with the input's audio.

    The output keeps the input's timeline (a frame at 0.85 s in the input is at 0.85 s in the
    output, so its time matches ``time_s`` in the tables); with ``--start`` the output starts at
    0 at the start time. Audio moves with the video either way.

    Drawing (OpenCV, which releases the GIL) overlaps with the model work in the calling
    thread; at most ``DRAW_QUEUE`` frames wait to be drawn, so memory stays bounded.

    Every (track, person, name) drawn is remembered (a set: memory follows the tracks, not
    the frames). When identity's final grouping disagrees with any of them, :meth:`relabel`
    decodes the input a second time (``reopen``) and draws every frame again from the final
    faces table, so the video's labels and colours are the tables'. That costs a decode and
    an encode, no model work, and only inputs whose persons were merged at the end pay it.
    """

    def __init__(
        self,
        path: Path,
        reader: VideoReader,
        annotator: FrameAnnotator,
        every: int,
        start_s: float | None,
        end_s: float | None,
        reopen: Callable[[], VideoReader] | None = None,
    ) -> None:
        self.path = path
        self._annotator = annotator
        self._reopen = reopen
        self._writer_args: _WriterArgs = {
            "width": reader.width, "height": reader.height, "fps": reader.fps / every, "time_base": reader.time_base,
            "audio_from": reader.path if reader.has_audio else None, "end_s": end_s, "origin_s": start_s or 0.0,
        }  # fmt: skip
        self._writer = VideoWriter(path, **self._writer_args)
        self._drawing: BoundedStage[SmoothedResult, None] = BoundedStage(
            self._draw, workers=1, capacity=DRAW_QUEUE, name="fervid-draw"
        )
        #: Every (track, person, name) the video shows.
        self.drawn: set[Drawn] = set()

    def _draw(self, result: SmoothedResult) -> None:
        self.drawn.update(drawn_faces(result.detections, self._annotator.names))
        self._writer.write(result.frame, self._annotator.annotate(result.frame.image, result.detections, result.shown))

    def add(self, result: SmoothedResult) -> None:
        self._drawing.put(result)

    def close(self) -> list[Path]:
        try:
            self._drawing.finish()
        except BaseException:
            self.abort()
            raise
        self._drawing.close()
        self._writer.close()
        return [self.path]

    def abort(self) -> None:
        self._drawing.close()
        self._writer.abort()

    def relabel(self, timeline: pd.DataFrame, classes: tuple[str, ...], labels: FinalLabels) -> bool:
        """Draw the whole video again from the final faces table when any label drawn is not final; whether it did."""
        if self._reopen is None or not labels.disagrees(self.drawn):
            return False
        annotator = self._annotator.with_names(labels.name)
        faces = TimelineFrames(timeline, classes)
        self.drawn = set()
        with self._reopen() as reader, VideoWriter(self.path, **self._writer_args) as writer:
            for frame in reader:
                detections, shown = faces.at(frame.index)
                self.drawn.update(drawn_faces(detections, annotator.names))
                writer.write(frame, annotator.annotate(frame.image, detections, shown))
        return True


class ImagesSink:
    """``annotated/<image>``: each photo drawn and saved under its own name (image-folder inputs).

    Like :class:`VideoSink` it remembers what it drew, per photo; :meth:`relabel` draws again
    (from the file, ``source_of`` its frame index) the photos whose persons changed at the end.
    """

    def __init__(self, folder: Path, annotator: FrameAnnotator, source_of: Callable[[int], Path] | None = None) -> None:
        self.folder = folder
        self._annotator = annotator
        self._source_of = source_of
        self._written: list[Path] = []
        #: Per photo (frame index): the file written and the (track, person, name) drawn on it.
        self.drawn: dict[int, tuple[Path, list[Drawn]]] = {}

    def add(self, result: SmoothedResult) -> None:
        image = self._annotator.annotate(result.frame.image, result.detections, result.shown)
        path = save_image(image, self.folder / Path(result.frame.source or "").name)
        self.drawn[result.frame.index] = (path, drawn_faces(result.detections, self._annotator.names))
        self._written.append(path)

    def close(self) -> list[Path]:
        return self._written

    def abort(self) -> None:
        """Images already renamed into place stay until the batch runner removes the input's new files."""

    def relabel(self, timeline: pd.DataFrame, classes: tuple[str, ...], labels: FinalLabels) -> bool:
        """Draw again, from their files, the photos with a person or name the tables do not have; whether any."""
        if self._source_of is None:
            return False
        from fervid.io.images import read_image

        stale = [index for index, (_, drawn) in self.drawn.items() if labels.disagrees(drawn)]
        annotator = self._annotator.with_names(labels.name)
        faces = TimelineFrames(timeline, classes)
        for index in stale:
            detections, shown = faces.at(index)
            path = self.drawn[index][0]
            save_image(annotator.annotate(read_image(self._source_of(index)), detections, shown), path)
            self.drawn[index] = (path, drawn_faces(detections, annotator.names))
        return bool(stale)


# ------------------------------------------------------------------------------- per input
class TablesSink:
    """``<stem>.faces.csv``, ``<stem>.summary.csv`` and, with identity, ``<stem>.persons.csv`` (or ``.parquet``)."""

    def __init__(self, suffixes: tuple[str, ...]) -> None:
        self.suffixes = suffixes

    def write(self, result: InputResult, outdir: Path, stem: str) -> list[Path]:
        written = []
        tables = [(result.timeline, "faces"), (result.summary, "summary")]
        if result.persons is not None:
            tables.append((result.persons, "persons"))
        for table, what in tables:
            for suffix in self.suffixes:
                path = outdir / f"{stem}.{what}{suffix}"
                write_table(table, path)
                written.append(path)
        return written


class TimelinePlotSink:
    """``<stem>.timeline.png``: one panel per face, probabilities over time (video and sequences)."""

    def __init__(self, options: AnnotateOptions) -> None:
        self.options = options

    def write(self, result: InputResult, outdir: Path, stem: str) -> list[Path]:
        from fervid.plots import plot_timeline

        o = self.options
        if not result.tracked(o):
            return []
        smooth = o.classification
        smoothing = f", smoothed {smooth.smooth:g} s {smooth.smooth_mode}" if smooth.smooth > 0 else ""
        path = plot_timeline(
            result.timeline, result.classes, outdir / f"{stem}.timeline.png",
            title=f"{result.source.name}: model {smooth.model}{smoothing}", time_range=result.time_range,
            frame_step=result.frame_step(o), min_p_correct=smooth.min_p_correct,
        )  # fmt: skip
        return [path]


class EmbeddingsSink:
    """``<stem>.embeddings.npz`` (``--save-embeddings`` only): each track's face descriptors and its person.

    Face descriptors are biometric data: they identify a person across recordings. fervid keeps
    them in memory only, unless a researcher asks for this file.
    """

    def write(self, result: InputResult, outdir: Path, stem: str) -> list[Path]:
        if result.identity is None:
            return []
        tracks = [t for p in result.identity.persons for t in p.tracks]
        path = outdir / f"{stem}.embeddings.npz"
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                face_id=np.array([t.track_id for t in tracks], dtype=np.int64),
                person_id=np.array([result.identity.person_of_track[t.track_id] for t in tracks], dtype=np.int64),
                descriptor_count=np.array([len(t.descriptors) for t in tracks], dtype=np.int64),
                descriptors=np.concatenate(
                    [np.zeros((0, 128), np.float32), *(np.stack(t.descriptors) for t in tracks if t.descriptors)]
                ),
            )
        return [path]


class CodebookSink:
    """``<stem>.codebook.csv``: every column of the tables written before it, defined by :mod:`fervid.columns`.

    It reads the tables' headers back from the files the other sinks wrote (``result.outputs``,
    which :func:`fervid.run.write_outputs` keeps current), so it describes exactly what was
    written; it must come last.
    """

    def write(self, result: InputResult, outdir: Path, stem: str) -> list[Path]:
        from fervid.io.codebook import codebook_path, write_codebook, written_tables

        return [write_codebook(written_tables(result.outputs, stem), codebook_path(outdir, stem))]


def input_sinks(options: AnnotateOptions) -> list[InputSink]:
    """The per-input outputs these options ask for, in the order they are written."""
    sinks: list[InputSink] = [TablesSink(options.output.table_suffixes)]
    if options.behaviour.behaviour:
        from fervid.behaviour.outputs import BlinksSink

        sinks.append(BlinksSink(options.output.table_suffixes))
    if options.output.plots:
        sinks.append(TimelinePlotSink(options))
    if options.identity.save_embeddings:
        sinks.append(EmbeddingsSink())
    if options.output.events is not None:  # before the report, which shows its table
        from fervid.events import EventsSink

        sinks.append(EventsSink(options.output.table_suffixes))
    if options.output.report:
        from fervid.report.sink import ReportSink

        sinks.append(ReportSink(options))
    sinks.append(CodebookSink())  # last: it describes the tables the others wrote
    return sinks


def collecting_sinks(options: AnnotateOptions) -> list[FrameSink]:
    """Frame sinks that write nothing but keep what input sinks need of the frames, for ``InputResult.collected``.

    Frames are gone after the frame loop, so the report's faces are cut while they stream
    (:class:`fervid.report.collect.ReportCollector`); such a sink has a ``collected`` dict.
    """
    if not options.output.report:
        return []
    from fervid.report.collect import ReportCollector

    return [ReportCollector(options)]


def behaviour_sinks(options: AnnotateOptions, outdir: Path, stem: str, with_file: bool) -> list[FrameSink]:
    """``<stem>.landmarks.parquet`` with ``--landmarks`` (the 68 points are gone after the frame loop)."""
    if not options.behaviour.landmarks:
        return []
    from fervid.behaviour.outputs import LandmarksSink

    return [LandmarksSink(outdir / f"{stem}.landmarks.parquet", with_file)]


def save_image(image: np.ndarray, path: Path) -> Path:
    """Save an RGB image atomically, in the format its name asks for."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=_pil_format(path))
    return path


def _pil_format(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    return {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "webp": "WEBP", "tif": "TIFF",
            "tiff": "TIFF", "gif": "GIF"}.get(ext, "PNG")  # fmt: skip
