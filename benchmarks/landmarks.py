"""Speed of the 68-point landmarks: fervid's numpy port of dlib's shape predictor against dlib-bin, in one run.

Faces come from fervid's detector mapped to dlib's framing (:func:`fervid.landmarks68.dlib_boxes`),
rounded to dlib's integer rectangles so both get the same boxes. Rows: one face per call
(a video frame at a time), a batch of frames in one call (how the pipeline calls it), and
a crowded photo in one call; dlib-bin always runs one face per call (it has no batch).
Times are the median of ``--repeats`` runs, in ms per face, as wall-clock and as this
process's CPU time (both run on one thread; on a shared machine CPU time is the steadier
figure); the load row is the time to read the ``.dat`` (once per process), in seconds. torch runs
one intra-op thread (``--torch-threads``), as each of fervid's detector threads does on a 2-core
machine (:func:`fervid.engine.plan_threads`): the port's one torch op per level is too small to split,
and with two threads OpenMP's waiting thread spins through the numpy work between them, which
doubles the CPU time without saving wall-clock time.

    python benchmarks/landmarks.py [--shared ../shared] [--frames 32] [--repeats 5] [--torch-threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fervid.detect import FaceDetector
from fervid.landmarks68 import dlib_boxes
from fervid.models.shape_predictor_weights import load_shape_predictor, packaged_shape_predictor_path

CLIP = "media/pyfeat/WolfgangLanger_Pexels.mp4"
CROWD = "media/dlib_faces/bald_guys.jpg"


def median_seconds(work: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and median CPU seconds of this process (both run on one thread)."""
    work()  # warm caches
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        work()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return float(np.median(wall)), float(np.median(cpu))


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    parser.add_argument("--frames", type=int, default=32, help="frames of the clip in the batched row")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (see above)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    clip, crowd = args.shared / CLIP, args.shared / CROWD
    if not clip.exists() or not crowd.exists():
        print(f"error: {clip} or {crowd}: not found (needs ../shared)", file=sys.stderr)
        return 1
    import dlib

    started, started_cpu = time.perf_counter(), time.process_time()
    predictor = load_shape_predictor().model
    port_load = (time.perf_counter() - started, time.process_time() - started_cpu)
    started, started_cpu = time.perf_counter(), time.process_time()
    reference = dlib.shape_predictor(str(packaged_shape_predictor_path()))
    dlib_load = (time.perf_counter() - started, time.process_time() - started_cpu)

    cases: dict[str, tuple[list[np.ndarray], np.ndarray, np.ndarray]] = {}
    frames = read_frames(clip, args.frames)
    photo = cv2.cvtColor(cv2.imread(str(crowd)), cv2.COLOR_BGR2RGB)
    detector = FaceDetector(det_size=640)
    for name, images in ((f"{len(frames)} clip frames, one call", frames), ("crowd photo, one call", [photo])):
        found = detector.detect(images)
        boxes = np.concatenate([dlib_boxes(d.xyxy, d.landmarks) for d in found]).round()
        index = np.concatenate([np.full(len(d), i) for i, d in enumerate(found)]).astype(np.int64)
        cases[name] = (images, boxes, index)
    images, boxes, index = cases[f"{len(frames)} clip frames, one call"]
    cases = {"1 face, one call": (images[:1], boxes[:1], index[:1]), **cases}

    title = (
        f"68-point landmarks, ms per face (median of {args.repeats}; {platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch thread(s))"
    )
    table = Table(title=title)
    columns = ("case", "faces", "port wall", "dlib-bin wall", "port CPU", "dlib-bin CPU", "port / dlib (CPU)")
    for column in columns:
        table.add_column(column, justify="right")
    for name, (images, boxes, index) in cases.items():
        rects = [dlib.rectangle(*map(int, box)) for box in boxes]

        def port(images=images, boxes=boxes, index=index) -> object:
            return predictor.predict(images, boxes, index)

        def original(images=images, rects=rects, index=index) -> object:
            return [reference(images[i], rect) for rect, i in zip(rects, index)]

        faces = len(boxes)
        ours = np.array(median_seconds(port, args.repeats)) / faces * 1000
        theirs = np.array(median_seconds(original, args.repeats)) / faces * 1000
        cells = (
            f"{ours[0]:.2f}",
            f"{theirs[0]:.2f}",
            f"{ours[1]:.2f}",
            f"{theirs[1]:.2f}",
            f"{ours[1] / theirs[1]:.2f}",
        )
        table.add_row(name, str(faces), *cells)
    table.add_row("load the .dat (s)", "", f"{port_load[0]:.2f}", f"{dlib_load[0]:.2f}", f"{port_load[1]:.2f}",
                  f"{dlib_load[1]:.2f}", f"{port_load[1] / dlib_load[1]:.2f}")  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 150).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
