"""Where the time goes: CPU milliseconds per frame of every pipeline stage, one thread, on real frames.

Each stage runs alone on one core (``torch.set_num_threads(1)``, single-threaded decode
and encode), timed with the process CPU clock, best of ``--repeats``. The sum is the
CPU work one frame costs; divided by the cores it gives the frame rate a perfectly
overlapped pipeline would reach, which ``throughput.py``'s measured rate can be held
against.

    python benchmarks/stage_costs.py VIDEO [--frames N] [--model NAME] [--results FILE]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fervid.annotate import FrameAnnotator
from fervid.classify import ExpressionClassifier
from fervid.defaults import MODEL
from fervid.detect import FaceDetector
from fervid.face_ids import TrackedFaces
from fervid.identity.persons import PersonRegistry
from fervid.identity.stage import IdentifiedFaces, IdentityStage
from fervid.io.video import VideoReader
from fervid.io.video_writer import VideoWriter
from fervid.options import AnnotateOptions, DetectionOptions
from fervid.shots import ShotCutDetector
from fervid.track import BackfilledTracker, FaceTracker
from fervid.types import Frame

#: Rows left out of the per-frame sums (alternatives to the detector batch the pipeline uses).
_NOT_SUMMED = ("detect, batch 1", "detect, batch 16", "detector network")  # parts of or alternatives to "batch 4"


def cpu_ms(fn: Callable[[], object], repeats: int) -> float:
    """Best process-CPU milliseconds of ``fn`` over ``repeats`` runs (after one warm-up run)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best * 1000


def decode(video: Path, count: int) -> list[Frame]:
    with VideoReader(video, threads="NONE") as reader:
        frames = []
        for frame in reader:
            frames.append(frame)
            if len(frames) == count:
                break
        return frames


def measure(video: Path, count: int, model: str, repeats: int) -> list[tuple[str, float, str]]:
    """(stage, CPU ms per frame, note) rows."""
    torch.set_num_threads(1)
    options = DetectionOptions()
    frames = decode(video, count)
    n = len(frames)
    images = [f.image for f in frames]
    detector = options.build("cpu")
    classifier = ExpressionClassifier(model, "cpu")
    rows = [("decode + RGB (PyAV, 1 thread)", cpu_ms(lambda: decode(video, count), repeats) / n, "reader thread")]

    for batch in (1, 4, 16):
        ms = cpu_ms(lambda b=batch: [detector.detect(images[i : i + b]) for i in range(0, n, b)], repeats)
        rows.append((f"detect, batch {batch}", ms / n, "channels-last, RGB-folded; pre/post-processing included"))
    bgr = torch.from_numpy(np.stack(images[:4])).permute(0, 3, 1, 2).float().flip(1).contiguous()
    rgb_last = bgr.flip(1).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ms = cpu_ms(lambda: [detector.model(bgr) for _ in range(n // 4)], repeats)
        rows.append(("detector network only, NCHW as published, batch 4", ms / (4 * (n // 4)), "before this issue"))
        ms = cpu_ms(lambda: [detector._net(rgb_last) for _ in range(n // 4)], repeats)
        rows.append(("detector network only, channels-last, batch 4", ms / (4 * (n // 4)), "what detect runs"))
    detections = [d for i in range(0, n, 4) for d in detector.detect(images[i : i + 4])]

    def track() -> list[object]:
        tracker = FaceTracker(high_threshold=options.det_threshold, low_threshold=options.low_threshold)
        backfill = BackfilledTracker[Frame](tracker)
        cuts = ShotCutDetector()
        out: list[object] = []
        for frame, dets in zip(frames, detections):
            cuts.is_cut(frame.image)
            out += backfill.push(frame, dets, frame.time_s)
        return out + backfill.flush()

    track_ms = cpu_ms(track, repeats)
    rows.append(("track + shot-cut check", track_ms / n, "calling thread"))
    identity_ms, embedded = _identity_ms(frames, detections, repeats, detector)
    rows.append(("identity (descriptors of a few faces per track, persons)", max(0.0, identity_ms - track_ms) / n,
                 f"calling thread; {embedded} faces embedded in {n} frames"))  # fmt: skip
    kept = [d[d.score >= options.det_threshold] for d in detections]
    faces = max(1, sum(len(d) for d in kept))
    tensors = [torch.from_numpy(img.copy()) for img in images]  # (H, W, 3) frames, as Engine hands them on
    chunks = range(0, n, 16)
    with torch.inference_mode():
        crops_ms = cpu_ms(lambda: [classifier.crops(tensors[i : i + 16], kept[i : i + 16]) for i in chunks], repeats)
        both_ms = cpu_ms(lambda: [classifier.classify(tensors[i : i + 16], kept[i : i + 16]) for i in chunks], repeats)
        shown = [p for i in chunks for p in classifier.classify(tensors[i : i + 16], kept[i : i + 16])]
    rows.append(
        ("crops (face regions only)", crops_ms / n, f"{faces / n:.2f} faces/frame, {crops_ms / faces:.2f} ms/face")
    )
    net_ms = both_ms - crops_ms
    rows.append(("classifier network, 16 frames' faces per forward", net_ms / n,
                 f"{net_ms / faces:.2f} ms/face; with the measurements and p_correct"))  # fmt: skip
    behaviour = AnnotateOptions().behaviour.build()
    if behaviour is not None:
        # measure writes its columns into each Detections.data: a rerun overwrites them, as the pipeline's one run would
        behaviour_ms = cpu_ms(lambda: [behaviour.measure(images[i : i + 16], kept[i : i + 16], shown[i : i + 16])
                                       for i in chunks], repeats)  # fmt: skip
        rows.append(("behaviour (68 landmarks, pose, eyes, mouth)", behaviour_ms / n,
                     f"{behaviour_ms / faces:.2f} ms/face; off with --no-behaviour"))  # fmt: skip
    annotator = FrameAnnotator()
    draw_ms = cpu_ms(lambda: [annotator.annotate(im, d, p) for im, d, p in zip(images, kept, shown)], repeats)
    rows.append(("draw (boxes, labels, bars)", draw_ms / n, "drawing thread"))

    def encode() -> None:
        height, width = images[0].shape[:2]
        with (
            tempfile.TemporaryDirectory(prefix="fervid-stage-costs-") as tmp,
            VideoWriter(Path(tmp) / "out.mp4", width, height, fps=25.0, codec="libx264", threads=1) as writer,
        ):
            for frame in frames:
                writer.write(frame, frame.image)

    rows.append(("encode H.264 (libx264 veryfast, 1 thread)", cpu_ms(encode, 1) / n, "writer thread"))
    return rows


def _identity_ms(frames: list[Frame], detections: list, repeats: int, detector: FaceDetector) -> tuple[float, int]:
    """CPU ms of tracking plus the identity stage (as ``fervid annotate`` chains them), and the faces it embedded."""
    options = AnnotateOptions()
    built = options.identity.build(torch.device("cpu"), detector)
    if built is None:
        return 0.0, 0
    embedder, known = built
    calls: list[int] = []

    def counted(images: list[np.ndarray], landmarks: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        return embedder(images, landmarks)

    def run() -> None:
        calls.clear()
        stage = IdentityStage(counted, PersonRegistry(options.identity.identity_threshold, known))
        tracker = options.tracking.build(options.detection, 25.0)
        faces = IdentifiedFaces(TrackedFaces(tracker, shot_cuts=options.tracking.shot_cuts), stage)
        for frame, dets in zip(frames, detections):
            faces.push(frame, dets)
        faces.flush()
        stage.finish()

    return cpu_ms(run, repeats), sum(calls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--model", default=MODEL, help=f"expression model (default: fervid's, {MODEL})")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=None, help="append the table to this Markdown file")
    args = parser.parse_args(argv)
    rows = measure(args.video, args.frames, args.model, args.repeats)
    summed = [r for r in rows if not r[0].startswith(_NOT_SUMMED)]
    timeline = sum(ms for name, ms, _ in summed if not name.startswith(("draw", "encode")))
    full = sum(ms for _, ms, _ in summed)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    rows_sum = [
        ("sum, timeline only (decode, detect b4, track, identity, crops, classifier, behaviour)", timeline,
         f"{1000 * cores / timeline:.0f} fps if perfectly overlapped on {cores} cores"),
        ("sum, full annotate (+ draw, encode)", full, f"{1000 * cores / full:.0f} fps if perfectly overlapped"),
    ]  # fmt: skip
    title = f"{args.video.name}: CPU ms per frame by stage, one thread each, first {args.frames} frames"
    table = Table(title=title)
    table.add_column("Stage")
    table.add_column("ms/frame", justify="right")
    table.add_column("Note")
    lines = ["| Stage | ms/frame | Note |", "|---|---:|---|"]
    for name, ms, note in rows:
        table.add_row(name, f"{ms:.2f}", note)
        lines.append(f"| {name} | {ms:.2f} | {note} |")
    for name, ms, note in rows_sum:
        table.add_row(name, f"{ms:.2f}", note, style="bold")
        lines.append(f"| **{name}** | **{ms:.2f}** | {note} |")
    Console().print(table)
    if args.results is not None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        command = f"python benchmarks/stage_costs.py {args.video} --frames {args.frames} --model {args.model}"
        with args.results.open("a") as fh:
            versions = f"torch {torch.__version__}, PyAV {av.__version__}"
            fh.write(f"\n### {stamp}: {title}\n\n- Command: `{command}`; {versions}\n\n")
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
