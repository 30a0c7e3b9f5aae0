"""Throughput of fervid against the decode limit and a classic Haar + CNN baseline, on the same frames.

Prints one table, every row measured in this run on the same first ``--frames`` frames:

1. decode only: PyAV with threaded decoding and RGB conversion (fervid's ``VideoReader``),
   the practical upper limit for anything that looks at every frame;
2. fervid timeline only (``--no-video --no-report``: the tables, person identity included);
2'. the same with ``--no-identity``, so 2'/2 is what person identity costs;
2''. the same with ``--no-behaviour``, so 2''/2 is what the 68 landmarks, head pose, eyes, blinks and
   valence cost (issue 32: on by default only if that is at most 15 % of timeline-only throughput);
2'''. with ``--detect-every N`` (each N given; default N = 1 when row 2's default differs): timeline only
   with the whole frame searched on key frames only (fervid.keyframes), each as a ratio to row 1;
3. fervid full annotate (annotated H.264 video encoded as well, and the research report:
   gallery, moments, ELAN file, HTML; the default);
3'. the same with ``--no-report``, so 3'/3 is what the report costs;
4. the classic approach of the naive tools, frame by frame: OpenCV's Haar cascade, then
   one forward of our expression model per face on a resized 48x48 gray crop;

then the ratios 2/1, 3/1, 2/4, 2'/2, 2''/2 and 3'/3. On a shared machine two whole runs differ by more than a
stage costs, so the identity, report and behaviour stages are also clocked inside the runs (CPU seconds in
their own methods, as a share of the run's CPU time). Each row has the peak resident memory of its stage
(``VmHWM`` from ``/proc/self/status``, reset between stages through
``/proc/self/clear_refs``) and, on CUDA, the peak GPU memory torch allocated.

``--long`` adds a timeline-only run on the clip looped (remuxed, no re-encoding) to at
least ``--long-minutes`` (default 10): its peak RSS shows whether memory stays flat.

    python benchmarks/throughput.py VIDEO [--device cpu|cuda] [--frames N] [--batch-size B]
        [--workers W] [--detect-every N ...] [--long] [--results benchmarks/RESULTS.md]

Timings are only meaningful on an otherwise idle machine: the load average and any
``fervid train`` processes seen at the start are reported next to the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fervid.classify import threshold_for
from fervid.devices import resolve_device
from fervid.engine import plan_threads
from fervid.io.probe import probe
from fervid.io.video import VideoReader
from fervid.options import AnnotateOptions, RuntimeOptions
from fervid.pipeline import Pipeline

#: Frames used to warm up the models (oneDNN/cuDNN pick their kernels on the first calls).
WARMUP_FRAMES = 8
#: The timeline-only peak RSS the long run must stay under (CPU).
LONG_RSS_TARGET_MIB = 1536


@dataclass
class Row:
    """One measured stage."""

    name: str
    frames: int
    faces: int | None
    seconds: float
    rss_mib: float | None
    gpu_mib: float | None = None
    fps_range: tuple[float, float] | None = None  # slowest and fastest of the repeats
    rss_early_mib: float | None = None  # long runs: peak RSS once the first 10% of the frames were done
    cpu_s: float | None = None  # CPU time of this process (all its threads) in the stage; median of the repeats

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def median_row(runs: list[Row]) -> Row:
    """The run with the median time, carrying the spread of all runs and their highest memory peaks."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    middle = ordered[(len(ordered) - 1) // 2]
    peaks = [r.rss_mib for r in runs if r.rss_mib is not None]
    gpu = [r.gpu_mib for r in runs if r.gpu_mib is not None]
    cpu = sorted(r.cpu_s for r in runs if r.cpu_s is not None)
    return replace(middle, rss_mib=max(peaks) if peaks else None, gpu_mib=max(gpu) if gpu else None,
                   fps_range=(ordered[-1].fps, ordered[0].fps),
                   cpu_s=cpu[(len(cpu) - 1) // 2] if cpu else None)  # fmt: skip


# --- memory --------------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS; False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident set size since the last reset (VmHWM), else over the whole process (ru_maxrss)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def measured(device: torch.device) -> Iterator[dict[str, float | None]]:
    """Wall time, CPU time (this process, all threads), peak RSS and peak GPU memory of the block.

    CPU time is the steadier measure of added work on a shared machine: wall time there swings by
    +-20 % from one run to the next, as other tenants take the cores.
    """
    out: dict[str, float | None] = {}
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start, cpu = time.perf_counter(), time.process_time()
    yield out
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out["seconds"] = time.perf_counter() - start
    out["cpu_s"] = time.process_time() - cpu
    out["rss_mib"] = peak_rss_mib()
    out["gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


# --- inputs --------------------------------------------------------------------------------------


def frame_times(video: Path, count: int) -> list[float]:
    """Times of the first ``count`` frames (this pass also warms the file cache)."""
    times = []
    with VideoReader(video) as reader:
        for frame in reader:
            times.append(frame.time_s)
            if len(times) == count:
                break
    if not times:
        raise SystemExit(f"{video}: no frames could be decoded")
    return times


def loop_video(source: Path, target: Path, min_seconds: float) -> int:
    """Write ``source``'s video stream repeated until it lasts ``min_seconds`` (packets copied); returns loops.

    Every pass starts on a keyframe and timestamps keep increasing, so the result is an
    ordinary long file to the reader: nothing in the benchmark knows it is a loop.
    """
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = inp.streams.video[0]
        packets = [p for p in inp.demux(stream) if p.size and p.pts is not None]
        if not packets or not packets[0].is_keyframe:
            raise SystemExit(f"{source}: cannot loop this file (no timestamps or no leading keyframe)")
        first = min(p.pts for p in packets)
        span = max(p.pts + (p.duration or 0) for p in packets) - first
        loops = max(1, math.ceil(min_seconds / float(span * stream.time_base)))
        ostream = out.add_stream_from_template(stream)
        for k in range(loops):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts = p.pts + k * span
                q.dts = (p.dts if p.dts is not None else p.pts) + k * span
                q.duration = p.duration
                q.is_keyframe = p.is_keyframe
                q.time_base = p.time_base
                q.stream = ostream
                out.mux(q)
    return loops


# --- stages --------------------------------------------------------------------------------------


def decode_only(video: Path, end_s: float, device: torch.device) -> Row:
    with measured(device) as m:
        frames = 0
        with VideoReader(video, end_s=end_s) as reader:
            for _ in reader:
                frames += 1
    return Row("(1) decode only (PyAV, threaded, to RGB)", frames, None, m["seconds"], m["rss_mib"], m["gpu_mib"])


def fervid_run(pipeline: Pipeline, video: Path, outdir: Path, name: str, device: torch.device) -> Row:
    with measured(device) as m:
        result = pipeline.run(video, outdir, "bench")
    return Row(name, result.frames, len(result.timeline), m["seconds"], m["rss_mib"], m["gpu_mib"], cpu_s=m["cpu_s"])


def haar_cnn_baseline(video: Path, warmup_end_s: float, end_s: float, model_name: str, device: torch.device) -> Row:
    """The naive tools' loop: Haar cascade per frame, then one CNN forward per face (batch of 1).

    Needs OpenCV 4.x: OpenCV 5 moved ``CascadeClassifier`` out of the main module (to
    opencv_contrib), so with OpenCV 5 installed the baseline runs in a child process
    with an OpenCV 4 from ``--opencv-path`` first on its path (see :func:`baseline_in_child`).
    """
    import cv2

    from fervid.models.expression_weights import load_expression_model

    if not hasattr(cv2, "CascadeClassifier"):
        raise BaselineUnavailable(f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 moved it out)")
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise BaselineUnavailable("OpenCV's haarcascade_frontalface_default.xml could not be loaded")
    loaded = load_expression_model(model_name)
    model, config = loaded.model, loaded.config
    model = model.to(device).eval()
    size = config.input_size

    @torch.inference_mode()
    def per_frame(image: np.ndarray) -> int:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        for x, y, w, h in boxes:
            face = cv2.resize(gray[y : y + h, x : x + w], (size, size), interpolation=cv2.INTER_AREA)
            tensor = torch.from_numpy(face).to(device).float().div(255.0).sub(config.mean).div(config.std)
            torch.softmax(model(tensor[None, None]), dim=1).cpu()
        return len(boxes)

    with VideoReader(video, end_s=warmup_end_s) as reader:  # warm-up on the first frames
        for frame in reader:
            per_frame(frame.image)
    with measured(device) as m:
        frames = faces = 0
        with VideoReader(video, end_s=end_s) as reader:
            for frame in reader:
                faces += per_frame(frame.image)
                frames += 1
    name = f"(4) classic: OpenCV {cv2.__version__} Haar cascade + CNN per face"
    return Row(name, frames, faces, m["seconds"], m["rss_mib"], m["gpu_mib"])


class BaselineUnavailable(RuntimeError):
    """No OpenCV with Haar cascades could be found."""


def baseline_in_child(
    video: Path, warmup_end_s: float, end_s: float, model: str, device: torch.device, opencv_path: Path | None
) -> Row:
    """Run :func:`haar_cnn_baseline` in a fresh process (own peak RSS, own OpenCV), return its row.

    The child gets ``opencv_path`` (a folder holding an OpenCV 4 ``cv2`` package, e.g. from
    ``pip install --target DIR opencv-python-headless==4.12.0.88``) first on its path.
    """
    env = dict(os.environ)
    if opencv_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(opencv_path), env.get("PYTHONPATH")]))
    try:
        return run_child(video, "--baseline-child", [warmup_end_s, end_s, model, str(device)], env)
    except ChildFailed as exc:
        raise BaselineUnavailable(str(exc)) from None


def long_in_child(video: Path, options: AnnotateOptions, outdir: Path, name: str, write_video: bool) -> Row:
    """One fervid run on ``video`` in a fresh process, as ``fervid annotate [--no-video]`` would run it.

    Its peak RSS is that process's own while it processes the input (models loaded),
    unaffected by the memory this process's allocator kept from the earlier stages.
    """
    fields = {**options.flat(), "video": write_video}
    row = run_child(video, "--long-child", [fields, str(outdir)], dict(os.environ))
    return replace(row, name=name)


class ChildFailed(RuntimeError):
    """A measurement child process failed; the message is its last line of stderr."""


def run_child(video: Path, flag: str, payload: object, env: dict[str, str]) -> Row:
    command = [sys.executable, str(Path(__file__).resolve()), str(video), flag, json.dumps(payload)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise ChildFailed((done.stderr.strip().splitlines() or ["no output"])[-1])
    return Row(**json.loads(lines[-1]))


# --- report --------------------------------------------------------------------------------------


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    import cv2

    return (
        f"{model}, {os.cpu_count()} cores ({usable} usable){gpu}; torch {torch.__version__}, "
        f"PyAV {av.__version__} (libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}), "
        f"OpenCV {cv2.__version__}, Python {platform.python_version()}"
    )


def _is_stopped(pid: str) -> bool:
    """Whether a process is stopped (SIGSTOP, state T): it then takes no CPU from the measurement."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] in ("T", "t")


def background_load() -> str:
    """Load average and any training processes, so busy-machine numbers are recognisable."""
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    busy = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        found = subprocess.run(["pgrep", "-f", "fervid train"], capture_output=True, text=True, timeout=5)
        pids = found.stdout.split()
        running = [pid for pid in pids if not _is_stopped(pid)]
        if running:
            busy = f"; WARNING: {len(running)} `fervid train` process(es) running, timings not valid"
        elif pids:
            busy = f"; {len(pids)} `fervid train` process(es) paused (SIGSTOP) during the run"
    return f"load average {' '.join(load)}{busy}"


def git_version() -> str:
    root = Path(__file__).resolve().parents[1]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True)  # fmt: skip
        if head.returncode == 0:
            return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")
    return "unknown"


def ratio_rows(rows: dict[str, Row]) -> list[tuple[str, float]]:
    pairs = [("(2)/(1) timeline-only vs decode", "timeline", "decode"),
             ("(3)/(1) full annotate vs decode", "full", "decode"),
             ("(2)/(4) timeline-only vs classic baseline", "timeline", "baseline"),
             ("(2')/(2) identity cost: timeline-only without / with person identity", "no-identity", "timeline"),
             ("(2'')/(2) behaviour cost: timeline-only without / with behaviour", "no-behaviour", "timeline"),
             ("(3')/(3) report cost: full annotate without / with the report", "no-report", "full")]  # fmt: skip
    pairs += [(f"({key})/(1) timeline-only at --detect-every {key.split('-')[1]} vs decode", key, "decode")
              for key in rows if key.startswith("every-")]  # fmt: skip
    return [(label, rows[a].fps / rows[b].fps) for label, a, b in pairs if a in rows and b in rows]


STAGE_METHODS = {
    "identity": [("fervid.identity.stage", "IdentityStage", m) for m in ("push", "flush", "finish")],
    "report": [("fervid.report.collect", "ReportCollector", m) for m in ("add", "close")]
    + [("fervid.report.sink", "ReportSink", "write")],
    "behaviour": [("fervid.behaviour.stage", "BehaviourStage", "measure")],
}
#: The run whose CPU time each stage's in-run clock is a share of (behaviour: the timeline-only run it gates).
CLOCKED_IN = {"identity": "full", "report": "full", "behaviour": "timeline"}


@contextlib.contextmanager
def stage_clocks() -> Iterator[dict[str, float]]:
    """CPU seconds spent inside the identity, report and behaviour stages during the block, by stage.

    On a shared machine two whole runs differ by more than these stages cost, so the A/B rows alone
    cannot show a few per cent. The stages' own methods are wrapped with ``time.thread_time`` (the
    calling thread's CPU time; the stages run single-threaded torch, so that is all their work) and
    summed; the wrappers are removed afterwards.
    """
    import importlib

    spent: dict[str, float] = defaultdict(float)
    lock = threading.Lock()
    originals = []

    def clocked(stage: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                with lock:
                    spent[stage] += time.thread_time() - start

        return wrapper

    for stage, targets in STAGE_METHODS.items():
        for module, cls_name, name in targets:
            cls = getattr(importlib.import_module(module), cls_name)
            originals.append((cls, name, getattr(cls, name)))
            setattr(cls, name, clocked(stage, getattr(cls, name)))
    try:
        yield spent
    finally:
        for cls, name, method in originals:
            setattr(cls, name, method)


def record_shares(shares: dict[str, list[tuple[float, float]]], spent: dict[str, float], row: Row, run: str) -> None:
    """Add the CPU seconds of the stages clocked in ``run`` (:data:`CLOCKED_IN`), and their share of its CPU time."""
    if not row.cpu_s:
        return
    for stage, seconds in spent.items():
        if CLOCKED_IN[stage] == run:
            shares.setdefault(stage, []).append((seconds, seconds / row.cpu_s))


def stage_cost(with_it: Row, without: Row) -> str:
    """What a stage adds: wall seconds and CPU seconds, each also as a share of the run without it."""
    wall = f"{with_it.seconds - without.seconds:+.2f} s wall ({100 * (with_it.seconds / without.seconds - 1):+.1f} %)"
    if with_it.cpu_s is None or without.cpu_s is None:
        return wall
    cpu = with_it.cpu_s - without.cpu_s
    return f"{wall}, {cpu:+.2f} s CPU ({100 * cpu / without.cpu_s:+.1f} % of the CPU time without it)"


def render(rows: dict[str, Row], title: str, cuda: bool) -> tuple[Table, str]:
    """The Rich table for the console and the same numbers as a Markdown table."""
    head = ["Measurement", "Frames", "Faces", "Seconds", "CPU s", "FPS", "FPS range", "Peak RSS MiB"]
    head += ["Peak GPU MiB"] if cuda else []
    table = Table(title=title)
    for i, name in enumerate(head):
        table.add_column(name, justify="left" if i == 0 else "right")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row in rows.values():
        if row.frames == 0:  # a stage that could not run: its name says why
            cells = [row.name] + [""] * (len(head) - 1)
            table.add_row(*cells, style="yellow")
            lines.append("| " + " | ".join(cells) + " |")
            continue
        spread = f"{row.fps_range[0]:.1f}-{row.fps_range[1]:.1f}" if row.fps_range else ""
        cells = [row.name, str(row.frames), "" if row.faces is None else str(row.faces), f"{row.seconds:.2f}",
                 "" if row.cpu_s is None else f"{row.cpu_s:.2f}", f"{row.fps:.1f}", spread,
                 "" if row.rss_mib is None else f"{row.rss_mib:.0f}"]  # fmt: skip
        if cuda:
            cells.append("" if row.gpu_mib is None else f"{row.gpu_mib:.0f}")
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    for label, value in ratio_rows(rows):
        cells = [label, "", "", "", "", f"{value:.2f}x", "", ""] + ([""] if cuda else [])
        table.add_row(*cells, style="bold")
        lines.append("| " + " | ".join(cells) + " |")
    return table, "\n".join(lines)


def append_results(path: Path, title: str, command: str, markdown: str, notes: list[str]) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [f"\n## {stamp}: {title}\n", f"- Command: `{command}`", f"- Machine: {machine()}",
               f"- fervid: {git_version()}", *(f"- {n}" for n in notes), "", markdown, ""]  # fmt: skip
    if not path.exists():
        path.write_text("# Throughput results\n\nAppended by `benchmarks/throughput.py --results`; newest last.\n")
    with path.open("a") as fh:
        fh.write("\n".join(section))


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when available)")
    parser.add_argument("--frames", type=int, default=300, help="measure on the first N frames (default 300)")
    parser.add_argument("--batch-size", type=int, default=RuntimeOptions.batch_size)
    parser.add_argument("--workers", type=int, default=None, help="detector threads (default: automatic)")
    parser.add_argument("--model", default="ferplus", help="expression model name or .pt path")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of stages 1-4; the median is reported")
    parser.add_argument("--detect-every", type=int, nargs="*", default=[1], metavar="N",
                        help="also a timeline-only row at each of these --detect-every values, in every round "
                             "(row 2 runs the default)")  # fmt: skip
    parser.add_argument("--long", action="store_true", help="also run timeline-only on the clip looped")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the looped input")
    parser.add_argument("--no-baseline", action="store_true", help="skip the Haar + CNN baseline")
    parser.add_argument("--no-identity", action="store_true",
                        help="every fervid row without person identity (and no 2' row): for a machine without "
                             "dlib's face-recognition weights, such as a borrowed GPU")  # fmt: skip
    parser.add_argument("--no-behaviour", action="store_true",
                        help="every fervid row without the behaviour measures (and no 2'' row): they read "
                             "dlib's 68-point model from that package; such a machine needs both flags")  # fmt: skip
    parser.add_argument("--opencv-path", type=Path, default=os.environ.get("FERVID_OPENCV4"),
                        help="folder with an OpenCV 4 cv2 package for the Haar baseline (OpenCV 5 has no Haar "
                             "cascades); default $FERVID_OPENCV4")  # fmt: skip
    parser.add_argument("--baseline-child", help=argparse.SUPPRESS)
    parser.add_argument("--long-child", help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, default=None, help="append a section to this Markdown file")
    args = parser.parse_args(argv)
    if args.baseline_child:  # internal: the baseline's own process
        warmup_end_s, end_s, model, device_name = json.loads(args.baseline_child)
        row = haar_cnn_baseline(args.video, warmup_end_s, end_s, model, torch.device(device_name))
        print(json.dumps(asdict(row)))
        return 0
    if args.long_child:  # internal: the long run's own process, so its peak RSS is its own
        fields, outdir = json.loads(args.long_child)
        options = AnnotateOptions.from_flat(**{**fields, "plots": False, "end": None})
        pipeline = Pipeline(options)
        total = probe(args.video).frame_count or 0
        done, early = [0], [None]

        def progress(n: int) -> None:  # the peak so far, once a tenth of the input is done: flat or growing?
            done[0] += n
            if early[0] is None and total and done[0] >= total / 10:
                early[0] = peak_rss_mib()

        with measured(pipeline.engine.device) as m:
            result = pipeline.run(args.video, Path(outdir), "long", progress)
        # VmHWM (reset by ``measured`` once the models are loaded): this process's own peak while
        # it processed the input. Not ru_maxrss: Linux carries the parent's peak into a child
        # across fork + exec, so it would report the parent's figure.
        rss = peak_rss_mib()
        row = Row("long", result.frames, len(result.timeline), m["seconds"], rss, m["gpu_mib"], None, early[0])
        print(json.dumps(asdict(row)))
        return 0
    if args.frames < WARMUP_FRAMES + 1:
        parser.error(f"--frames must be at least {WARMUP_FRAMES + 1}")
    device = resolve_device(args.device)
    load = background_load()
    console = Console()
    console.print(f"[dim]{machine()}\n{load}[/dim]")

    times = frame_times(args.video, args.frames)
    end_s = times[-1]
    options = AnnotateOptions.from_flat(model=args.model, min_p_correct=threshold_for(args.model),
                                        device=str(device), batch_size=args.batch_size,
                                        workers=args.workers, end=end_s, plots=False, video=False,
                                        report=False, identity=not args.no_identity,
                                        behaviour=not args.no_behaviour)  # fmt: skip
    pipeline = Pipeline(options)
    rows: dict[str, Row] = {}
    with tempfile.TemporaryDirectory(prefix="fervid-bench-") as tmp:
        out = Path(tmp)
        warmup_end_s = times[min(WARMUP_FRAMES, len(times)) - 1]
        pipeline.options = options.replace(end=warmup_end_s)
        pipeline.run(args.video, None, "warmup")
        unidentified = None  # with identity on, row 2' runs without it, with its own models (no reload per round)
        if not args.no_identity:
            unidentified = Pipeline(options.replace(identity=False))
            unidentified.options = options.replace(identity=False, end=warmup_end_s)
            unidentified.run(args.video, None, "warmup")
            unidentified.options = options.replace(identity=False)
        unmeasured = None  # with behaviour on, row 2'' runs without it, with its own models, loaded once
        if not args.no_behaviour:
            unmeasured = Pipeline(options.replace(behaviour=False))
            unmeasured.options = options.replace(behaviour=False, end=warmup_end_s)
            unmeasured.run(args.video, None, "warmup")
            unmeasured.options = options.replace(behaviour=False)
        every_pipelines: dict[int, Pipeline] = {}  # rows at other --detect-every values, models of their own
        for n in sorted(set(args.detect_every) - {options.detection.detect_every}):
            every_pipelines[n] = Pipeline(options.replace(detect_every=n, end=warmup_end_s))
            every_pipelines[n].run(args.video, None, "warmup")
            every_pipelines[n].options = options.replace(detect_every=n)
        runs: dict[str, list[Row]] = {}
        shares: dict[str, list[tuple[float, float]]] = {}  # stage: (CPU s, share of the run's CPU) per round
        # Row 2 gets models of its own, as rows 2', 2'' and every-N have (row 3 reuses ``pipeline``), and the
        # timeline-only rows run in an order rotated each round, so that no A/B pair always has one side in the same
        # slot (first after decoding, or on the pipeline that has just written a video).
        timeline_pipeline = Pipeline(options.replace(end=warmup_end_s))
        timeline_pipeline.run(args.video, None, "warmup")
        timeline_pipeline.options = options
        label = f"(2) fervid timeline only (--detect-every {options.detection.detect_every}: default)"

        def timeline_row() -> None:
            with stage_clocks() as spent:
                timeline = fervid_run(timeline_pipeline, args.video, out / "timeline", label, device)
            runs.setdefault("timeline", []).append(timeline)
            record_shares(shares, spent, timeline, "timeline")

        timeline_rows: list[tuple[str, Pipeline | None, str]] = [("timeline", None, label)]
        if unmeasured is not None:
            timeline_rows.append(("no-behaviour", unmeasured, "(2'') timeline only, --no-behaviour"))
        timeline_rows += [(f"every-{n}", other, f"(every-{n}) timeline only, --detect-every {n}")
                          for n, other in every_pipelines.items()]  # fmt: skip
        if unidentified is not None:
            timeline_rows.append(("no-identity", unidentified, "(2') timeline only, --no-identity"))
        for round_ in range(args.repeats):  # rounds of every stage, so a slow spell of the machine hits all of them
            runs.setdefault("decode", []).append(decode_only(args.video, end_s, device))
            turn = round_ % len(timeline_rows)
            for key, other, name in timeline_rows[turn:] + timeline_rows[:turn]:
                if other is None:
                    timeline_row()
                else:
                    runs.setdefault(key, []).append(fervid_run(other, args.video, out / key, name, device))
            pipeline.options = options.replace(video=True, report=True)
            with stage_clocks() as spent:
                full = fervid_run(pipeline, args.video, out / "full", "(3) fervid full annotate (+ H.264)", device)
            runs.setdefault("full", []).append(full)
            record_shares(shares, spent, full, "full")
            pipeline.options = options.replace(video=True, report=False)
            runs.setdefault("no-report", []).append(
                fervid_run(pipeline, args.video, out / "no-report", "(3') fervid full annotate, --no-report", device)
            )
            if not args.no_baseline and "baseline-missing" not in rows:
                try:
                    runs.setdefault("baseline", []).append(
                        baseline_in_child(args.video, warmup_end_s, end_s, args.model, device, args.opencv_path)
                    )
                except BaselineUnavailable as exc:
                    rows["baseline-missing"] = Row(f"(4) classic baseline not run: {exc}", 0, None, 0.0, None)
                    console.print(
                        "[yellow]no Haar baseline: pass --opencv-path DIR with OpenCV 4 (see --help)[/yellow]"
                    )
        for key in (
            "decode",
            "timeline",
            *(k for k in runs if k.startswith("every-")),
            "no-identity",
            "no-behaviour",
            "full",
            "no-report",
            "baseline",
        ):
            if runs.get(key):
                rows[key] = median_row(runs[key])
        if "baseline-missing" in rows:
            rows["baseline-missing"] = rows.pop("baseline-missing")  # keep the table's order
        if args.long:
            looped = out / f"looped{args.video.suffix or '.mp4'}"
            loops = loop_video(args.video, looped, args.long_minutes * 60)
            looped_text = f"clip looped x{loops} (>= {args.long_minutes:g} min), own process"
            rows["long"] = long_in_child(looped, options, out / "long", f"(5) timeline only, {looped_text}", False)
            rows["long-video"] = long_in_child(
                looped, options, out / "long-video", f"(6) full annotate (+ H.264), {looped_text}", True
            )

    plan = plan_threads(device, args.workers)
    workers, threads = plan.workers, plan.torch_threads
    threads_text = f"{threads} torch thread(s) each" if threads else "torch threads unchanged"
    identity_text = ", no person identity" if args.no_identity else ""
    identity_text += ", no behaviour measures" if args.no_behaviour else ""
    title = (f"{args.video.name}: first {len(times)} frames, {device.type}, batch {args.batch_size}, "
             f"{workers} detector worker(s), {threads_text}{identity_text}")  # fmt: skip
    table, markdown = render(rows, title, device.type == "cuda")
    console.print(table)
    notes = [load, f"Stages 1-4 ran {args.repeats} interleaved round(s); Seconds/FPS are the median run, FPS range "
             "the slowest and fastest. Fervid rows write the tables (CSV), timeline PNG off (a fixed ~0.5 s, not "
             "per frame). Peak RSS: VmHWM reset before each stage; rows 4-6 run in processes of their own "
             "(rows 5-6: the peak while processing, models loaded; time includes the cold start)."]  # fmt: skip
    for with_it, without, what, default in (
        ("timeline", "no-identity", "Identity cost (2 vs 2')", "identity"),
        ("timeline", "no-behaviour", "Behaviour cost (2 vs 2'')", "behaviour"),
        ("full", "no-report", "Report cost (3 vs 3')", "the report"),
    ):
        if with_it in rows and without in rows:
            cost = f"{what}: {stage_cost(rows[with_it], rows[without])} (median runs; {default} is on by default)."
            console.print(cost)
            notes.append(cost)
    for stage, measured_shares in shares.items():
        seconds, share = sorted(measured_shares, key=lambda x: x[1])[(len(measured_shares) - 1) // 2]
        run = CLOCKED_IN[stage]
        clock = (f"In-run clock, {stage} stage inside run ({'3' if run == 'full' else '2'}): {seconds:.2f} s CPU, "
                 f"{100 * share:.1f} % of the run's CPU time (median of {len(measured_shares)}; "
                 f"{1000 * seconds / rows[run].frames:.2f} ms per frame).")  # fmt: skip
        console.print(clock)
        notes.append(clock)
    for key in ("long", "long-video"):
        if key in rows:
            rss = rows[key].rss_mib
            verdict = "met" if rss is not None and rss < LONG_RSS_TARGET_MIB else "MISSED"
            early = rows[key].rss_early_mib
            growth = f" ({early:.0f} MiB after the first 10% of the frames)" if early is not None else ""
            notes.append(f"{rows[key].name.split(',')[0]}: peak RSS {rss:.0f} MiB{growth}, target < "
                         f"{LONG_RSS_TARGET_MIB} MiB {verdict}.")  # fmt: skip
    if args.results is not None:
        command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
        append_results(args.results, title, command, markdown, notes)
        console.print(f"[dim]appended to {args.results}[/dim]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
