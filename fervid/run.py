"""One input through the engine into its outputs: the one run loop for every kind of input.

:func:`run_input` opens the input's reader from its probe result (:class:`~fervid.io.probe.MediaInfo`,
made once), picks how faces are numbered (tracked for video and ``--sequence`` folders,
numbered per photo otherwise), streams the engine's results through the smoother into the
timeline and the frame sinks, then hands the finished :class:`~fervid.input_result.InputResult` to
:func:`write_outputs`, which runs the input sinks and writes ``<stem>.run.json`` last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fervid.annotate import FrameAnnotator
from fervid.behaviour.blinks import detect_blinks
from fervid.behaviour.summary import add_behaviour_summary
from fervid.checks import plural
from fervid.engine import Engine
from fervid.events import Events, event_table, events_for_input, with_blink_rates
from fervid.face_ids import FaceIds, PhotoFaces, TrackedFaces
from fervid.identity.persons import PersonRegistry
from fervid.identity.stage import IdentifiedFaces, IdentityResult, IdentityStage
from fervid.input_result import InputResult, is_tracked
from fervid.io.atomic import removed_if_left_empty
from fervid.io.errors import InputError
from fervid.io.images import ImageFolderReader
from fervid.io.probe import MediaInfo, probe
from fervid.io.tables import TimelineBuilder, add_persons, summarize_persons, summarize_tracks
from fervid.io.video import VideoReader
from fervid.metadata import environment, input_facts, now_utc, write_run
from fervid.metadata import invalidate as invalidate_run
from fervid.options import AnnotateOptions
from fervid.sinks import (
    FinalLabels,
    FrameSink,
    ImagesSink,
    Relabelling,
    VideoSink,
    behaviour_sinks,
    collecting_sinks,
    input_sinks,
)
from fervid.smooth import SmoothedResult, StreamSmoother, add_smoothed

ProgressCallback = Callable[[int], None]
Reader = VideoReader | ImageFolderReader


def open_reader(
    media: MediaInfo, options: AnnotateOptions, images: Sequence[Path] | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> Reader:  # fmt: skip
    """The reader for an input of this kind: a video, or images (a folder, one photo, or a list)."""
    o = options.input
    if media.kind == "video" and images is None:
        return VideoReader(media.path, o.start, o.end, o.every, info=media)
    fps = o.fps if o.sequence else None  # independent photos have no time
    return ImageFolderReader(media.path if images is None else images, fps=fps, on_skip=on_skip)


def smoother_for(media: MediaInfo, options: AnnotateOptions) -> StreamSmoother:
    """The ``--smooth`` smoother for tracked inputs; off for independent photos, which have no time."""
    smooth = options.classification
    window = smooth.smooth if is_tracked(media.kind, options) else 0.0
    return StreamSmoother(window, smooth.smooth_mode, min_p_correct=smooth.min_p_correct)


def face_ids_for(media: MediaInfo, options: AnnotateOptions, fps: float | None) -> FaceIds:
    """Tracked faces for video and ``--sequence`` folders, per-photo numbering for independent photos."""
    if is_tracked(media.kind, options) and fps:
        tracker = options.tracking.build(options.detection, fps / options.input.every)
        return TrackedFaces(tracker, shot_cuts=options.tracking.shot_cuts)
    return PhotoFaces(options.detection.det_threshold)


def stream_input(engine: Engine, source: Path, options: AnnotateOptions) -> Iterator[SmoothedResult]:
    """Frame-by-frame results of one input, writing nothing (``fervid.stream``)."""
    media = probe(source)
    with open_reader(media, options) as reader:
        face_ids = face_ids_for(media, options, reader.fps)
        identity = _identity_stage(engine, options)
        if identity is not None:
            face_ids = IdentifiedFaces(face_ids, identity)
        yield from smoother_for(media, options)(engine.results(iter(reader), face_ids, options.runtime))


def run_input(
    engine: Engine, options: AnnotateOptions, source: Path, outdir: Path | None, stem: str,
    progress: ProgressCallback | None = None, images: Sequence[Path] | None = None, media: MediaInfo | None = None,
) -> InputResult:  # fmt: skip
    """Process one input; with ``outdir`` write its outputs there (created; removed again if left empty).

    ``images`` restricts an image-folder input to those files (the loose images of a folder
    that also holds videos). ``media`` is the input's probe result when the caller has it.
    With ``outdir=None`` nothing is written; :func:`write_outputs` can save the result later.
    """
    media = media or probe(source)
    windows = events_for_input(options, media, stem)  # a bad --events file or window: before any work
    if outdir is None:
        return _process(engine, options, media, None, stem, progress, images, windows)
    invalidate_run(outdir, stem)  # outputs are about to change: no longer complete
    with removed_if_left_empty(outdir):
        outdir.mkdir(parents=True, exist_ok=True)
        return _process(engine, options, media, outdir, stem, progress, images, windows)


def _process(
    engine: Engine, options: AnnotateOptions, media: MediaInfo, outdir: Path | None, stem: str,
    progress: ProgressCallback | None, images: Sequence[Path] | None, windows: Events | None = None,
) -> InputResult:  # fmt: skip
    started = time.perf_counter()
    skipped: list[str] = []
    reader = open_reader(media, options, images, on_skip=lambda path, why: skipped.append(f"{path.name}: {why}"))
    is_video = isinstance(reader, VideoReader)
    if not is_video and reader.frame_count == 0:
        raise InputError(media.path, "no readable images")
    timeline = TimelineBuilder(engine.classes, with_file=not is_video, data_columns=engine.data_columns)
    with reader:
        face_ids = face_ids_for(media, options, reader.fps)
        identity = _identity_stage(engine, options)
        if identity is not None:
            face_ids = IdentifiedFaces(face_ids, identity)
        names = identity.online_name if identity is not None else None
        sinks = frame_sinks(reader, media, options, outdir, stem, names) if outdir is not None else []
        sinks += collecting_sinks(options)  # keep what the input sinks need of the frames (report faces)
        if outdir is not None:
            sinks += behaviour_sinks(options, outdir, stem, with_file=not is_video)
        smoother = smoother_for(media, options)
        results = smoother(engine.results(iter(reader), face_ids, options.runtime))
        loop = frame_loop(results, timeline, sinks, progress)
        warning = reader.decode_error if isinstance(reader, VideoReader) else None
    if is_video and loop.frames == 0:
        raise InputError(media.path, "no frames could be decoded in the requested range")
    if skipped:
        warning = f"skipped {plural(len(skipped), 'unreadable file')}: {skipped[0]}"
    frame, frame_times = timeline.frame(), timeline.frame_times()  # every frame's time: visible_s
    run: dict[str, Any] = {"environment": environment(engine.device), "models": engine.models,
                           "options": options.flat()}  # fmt: skip
    persons = None
    if identity is not None:
        found = identity.finish()
        # With --people the faces table always has the ``person`` column, empty where nobody matched.
        final_names = found.names if options.identity.people else None
        frame = add_persons(frame, found.person_of_track, final_names)
        persons = summarize_persons(frame, engine.classes, frame_times, options.classification.min_p_correct)
        run["identity"] = _identity_record(found, options)
    if smoother.window_s > 0:
        frame = add_smoothed(frame, engine.classes, smoother.window_s, smoother.mode, smoother.min_p_correct)
    if identity is not None:
        run["identity"]["pictures_redrawn"] = _relabel(
            sinks, frame, engine.classes, FinalLabels(found.person_of_track, final_names or {})
        )
    summary = summarize_tracks(
        frame, engine.classes, frame_times=frame_times, min_p_correct=options.classification.min_p_correct
    )
    blinks = detect_blinks(frame) if engine.behaviour is not None and is_tracked(media.kind, options) else None
    summary, persons = behaviour_summaries(summary, persons, frame, blinks, options)
    events = None
    if windows is not None:
        threshold = options.classification.min_p_correct
        events = with_blink_rates(event_table(frame, engine.classes, windows, frame_times, threshold), blinks)
        run["events"] = windows.record(len(windows))
    result = InputResult(
        source=media.path, kind="video" if is_video else "images", timeline=frame, summary=summary,
        frames=loop.frames, seconds=time.perf_counter() - started, outputs=loop.written, warning=warning,
        classes=engine.classes, time_range=loop.span, run=run, media=media, processing_s=loop.seconds,
        persons=persons, identity=found if identity is not None else None,
        collected={k: v for sink in sinks for k, v in getattr(sink, "collected", {}).items()}, blinks=blinks,
        windows=windows, events=events,
    )  # fmt: skip
    return write_outputs(result, outdir, stem, options) if outdir is not None else result


def behaviour_summaries(
    summary: pd.DataFrame, persons: pd.DataFrame | None, timeline: pd.DataFrame, blinks: pd.DataFrame | None,
    options: AnnotateOptions,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:  # fmt: skip
    """The summary and persons tables with ``blinks_per_min`` and ``mean_valence`` (:mod:`fervid.behaviour.summary`).

    Shared with ``fervid persons`` (:mod:`fervid.identity.rewrite`), so edited persons get them as a run would.
    """
    threshold = options.classification.min_p_correct
    summary = add_behaviour_summary(summary, timeline, blinks, "face_id", threshold)
    if persons is not None:
        persons = add_behaviour_summary(persons, timeline, blinks, "person_id", threshold)
    return summary, persons


@dataclass
class _Loop:
    """What the frame loop did: frames, first and last time, its own seconds, the files the frame sinks wrote."""

    frames: int = 0
    span: tuple[float, float] | None = None
    seconds: float = 0.0
    written: list[Path] = field(default_factory=list)


def frame_loop(
    results: Generator[SmoothedResult, None, None], timeline: TimelineBuilder, sinks: list[FrameSink],
    progress: ProgressCallback | None,
) -> _Loop:  # fmt: skip
    """Every result into the timeline and the frame sinks; on any error the sinks leave nothing behind."""
    loop = _Loop()
    began = time.perf_counter()
    try:
        with contextlib.closing(results):  # stops the detector threads at once on an error
            for result in results:
                timeline.add(result)
                for sink in sinks:
                    sink.add(result)
                t = result.frame.time_s
                loop.span = (loop.span[0] if loop.span else t, t)
                loop.frames += 1
                if progress:
                    progress(1)
        loop.seconds = time.perf_counter() - began
        loop.written = [path for sink in sinks for path in sink.close()]
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return loop


def _relabel(sinks: list[FrameSink], timeline: pd.DataFrame, classes: tuple[str, ...], labels: FinalLabels) -> bool:
    """Redraw what the frame sinks drew with persons identity changed at the end; whether any did.

    On an error the pictures already in place are left for the batch runner, which removes an
    input's new files when it fails (run.json, written last, is not there yet).
    """
    redrawn = [sink.relabel(timeline, classes, labels) for sink in sinks if isinstance(sink, Relabelling)]
    return any(redrawn)


def _identity_stage(engine: Engine, options: AnnotateOptions) -> IdentityStage | None:
    if engine.identity is None:
        return None
    embedder, known = engine.identity
    return IdentityStage(embedder, PersonRegistry(options.identity.identity_threshold, known))


def _identity_record(found: IdentityResult, options: AnnotateOptions) -> dict[str, Any]:
    """What run.json says about identity: the threshold, persons, names, and labels the tables changed."""
    return {
        "threshold": options.identity.identity_threshold,
        "persons": len(found.persons),
        "tracks": len(found.person_of_track),
        "tracks_compared": sum(1 for p in found.persons for t in p.tracks if t.descriptors),
        "names": {str(k): v for k, v in found.names.items()} if options.identity.people else {},
        "tracks_relabelled_at_end": found.relabelled,
    }


def frame_sinks(
    reader: Reader, media: MediaInfo, options: AnnotateOptions, outdir: Path, stem: str,
    names: Callable[[int], str | None] | None,
) -> list[FrameSink]:  # fmt: skip
    """The annotated video or images; each can read its input again to redraw persons identity changed at the end."""
    if not options.output.video:
        return []
    annotator = FrameAnnotator(
        show_bars=options.output.bars, names=names, min_p_correct=options.classification.min_p_correct
    )
    if isinstance(reader, VideoReader):
        path = outdir / f"{stem}.annotated.mp4"
        o = options.input
        reopen = functools.partial(VideoReader, media.path, o.start, o.end, o.every, info=media)  # as open_reader
        return [VideoSink(path, reader, annotator, o.every, o.start, o.end, reopen=reopen)]
    paths = list(reader.paths)
    return [ImagesSink(outdir / "annotated", annotator, source_of=paths.__getitem__)]


def write_outputs(result: InputResult, outdir: Path, stem: str, options: AnnotateOptions) -> InputResult:
    """Run the input sinks (tables, plot...) and write ``<stem>.run.json`` last; the result as written.

    The run record goes last and atomically, so its presence (``fervid.metadata.is_complete``)
    means every other output is complete. Also used by ``AnnotateResult.save`` for results
    computed in memory. ``result`` is left as it was: the returned copy has the outputs, the
    seconds (writing included) and the run record.
    """
    began = time.perf_counter()
    outdir.mkdir(parents=True, exist_ok=True)
    invalidate_run(outdir, stem)
    written = dataclasses.replace(result, run={**result.run, "input": input_facts(result.source, result.media)})
    for sink in input_sinks(options):  # each sees the files written before it (the codebook reads the tables)
        written = dataclasses.replace(written, outputs=[*written.outputs, *sink.write(written, outdir, stem)])
    seconds = result.seconds + time.perf_counter() - began
    run = {
        **written.run,
        "kind": result.kind,
        "frames_processed": result.frames,
        "faces_found": result.faces,
        "time_range_s": list(result.time_range) if result.time_range else None,
        "warning": result.warning,
        "wall_time_s": round(seconds, 3),
        "processing_s": round(result.processing_s, 3),
        "finished_at": now_utc(),
        "outputs": relative_outputs(written.outputs, outdir),
    }
    return dataclasses.replace(
        written, run=run, seconds=seconds, outputs=[*written.outputs, write_run(outdir, stem, run)]
    )


def relative_outputs(paths: list[Path], outdir: Path) -> list[str]:
    """Output names relative to ``outdir``; files in a subfolder (annotated images) are listed as the folder."""
    names: list[str] = []
    for path in paths:
        rel = Path(path).relative_to(outdir) if Path(path).is_relative_to(outdir) else Path(path)
        name = rel.parts[0] + "/" if len(rel.parts) > 1 else str(rel)
        if name not in names:
            names.append(name)
    return names
