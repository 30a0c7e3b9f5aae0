"""Outputs: each file (or family of files) an input produces is written by one sink.

Two kinds, so a new output is one new class:

* a :class:`FrameSink` sees every result as it is made (the annotated video, annotated
  images): ``add(result)`` per frame, ``close()`` when the input is done (returns the files,
  renamed into place), ``abort()`` on error (leaves nothing behind);
* an :class:`InputSink` sees the finished input once (tables, the timeline plot, the report):
  ``write(result, outdir, stem)`` returns the files it wrote, each written atomically.

A frame sink may also collect for the input sinks, writing nothing itself (the report's face
crops): its ``collected`` dict goes into ``InputResult.collected`` (:func:`collecting_sinks`).

``<stem>.run.json`` is not a sink: :func:`fervid.run.write_outputs` writes it after every
sink has finished, so its presence means the outputs are complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from fervid.annotate import FrameAnnotator
from fervid.concurrency import BoundedStage
from fervid.io.atomic import atomic_path
from fervid.io.tables import write_table
from fervid.io.video_writer import VideoWriter
from fervid.options import AnnotateOptions
from fervid.smooth import SmoothedResult

if TYPE_CHECKING:
    from fervid.io.video import VideoReader
    from fervid.run import InputResult

#: Frames drawn ahead of the encoder at most (the drawing stage's capacity).
DRAW_QUEUE = 8


class FrameSink(Protocol):
    def add(self, result: SmoothedResult) -> None: ...

    def close(self) -> list[Path]: ...

    def abort(self) -> None: ...


class InputSink(Protocol):
    def write(self, result: InputResult, outdir: Path, stem: str) -> list[Path]: ...


# ------------------------------------------------------------------------------- per frame
class VideoSink:
    """``<stem>.annotated.mp4``: frames drawn in a stage of their own, then encoded with the input's audio.

    The output keeps the input's timeline (a frame at 0.85 s in the input is at 0.85 s in the
    output, so its time matches ``time_s`` in the tables); with ``--start`` the output starts at
    0 at the start time. Audio moves with the video either way.

    Drawing (OpenCV, which releases the GIL) overlaps with the model work in the calling
    thread; at most ``DRAW_QUEUE`` frames wait to be drawn, so memory stays bounded.
    """

    def __init__(
        self,
        path: Path,
        reader: VideoReader,
        annotator: FrameAnnotator,
        every: int,
        start_s: float | None,
        end_s: float | None,
    ) -> None:
        self.path = path
        self._annotator = annotator
        self._writer = VideoWriter(
            path, reader.width, reader.height, fps=reader.fps / every, time_base=reader.time_base,
            audio_from=reader.path if reader.has_audio else None, end_s=end_s, origin_s=start_s or 0.0,
        )  # fmt: skip
        self._drawing: BoundedStage[SmoothedResult, None] = BoundedStage(
            self._draw, workers=1, capacity=DRAW_QUEUE, name="fervid-draw"
        )

    def _draw(self, result: SmoothedResult) -> None:
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


class ImagesSink:
    """``annotated/<image>``: each photo drawn and saved under its own name (image-folder inputs)."""

    def __init__(self, folder: Path, annotator: FrameAnnotator) -> None:
        self.folder = folder
        self._annotator = annotator
        self._written: list[Path] = []

    def add(self, result: SmoothedResult) -> None:
        drawn = self._annotator.annotate(result.frame.image, result.detections, result.shown)
        self._written.append(save_image(drawn, self.folder / Path(result.frame.source or "").name))

    def close(self) -> list[Path]:
        return self._written

    def abort(self) -> None:
        """Images already renamed into place stay until the batch runner removes the input's new files."""


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
        if not (result.kind == "video" or o.input.sequence):
            return []
        fps = result.run.get("input", {}).get("fps") if result.kind == "video" else o.input.fps
        smooth = o.classification
        smoothing = f", smoothed {smooth.smooth:g} s {smooth.smooth_mode}" if smooth.smooth > 0 else ""
        path = plot_timeline(
            result.timeline, result.classes, outdir / f"{stem}.timeline.png",
            title=f"{result.source.name}: model {smooth.model}{smoothing}", time_range=result.time_range,
            frame_step=o.input.every / fps if fps else None,
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
                descriptors=np.concatenate([np.stack(t.descriptors) for t in tracks]) if tracks else np.zeros((0, 128)),
            )
        return [path]


def input_sinks(options: AnnotateOptions) -> list[InputSink]:
    """The per-input outputs these options ask for, in the order they are written."""
    sinks: list[InputSink] = [TablesSink(options.output.table_suffixes)]
    if options.output.plots:
        sinks.append(TimelinePlotSink(options))
    if options.identity.save_embeddings:
        sinks.append(EmbeddingsSink())
    if options.output.report:
        from fervid.report.sink import ReportSink

        sinks.append(ReportSink(options))
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
