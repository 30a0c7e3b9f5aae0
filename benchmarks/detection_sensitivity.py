"""How far do the timelines move when the detector's boxes move a little? Any cheaper detection against today's.

Issue 33 asks for a faster detection path whose timelines match today's (labels on >= 99 % of paired
faces, median box IoU >= 0.95). ``benchmarks/keyframes.py`` measures the key-frame schedule; this
script measures the cheaper detections any faster schedule would be built from, on whole clips, each
against the default run (``--det-size 640``, float32):

* ``det-size S``: the whole frame searched at a long side of S px instead of 640 (what a downscaled
  window does to a large face: fewer pixels, the face on a finer anchor level);
* ``bfloat16``: the detector network in bfloat16 (2-3x faster on CPUs with AMX; the same pixels and
  anchors, only the arithmetic rounds differently).

Everything after detection (alignment, classifier, tracker, identity) is today's. The columns are
``benchmarks/keyframes.py``'s: ``labels``, ``IoU``, ``recall``, ``missing``, ``tracks``, ``persons``,
``ok`` (every equality target of issue 33 holds), and ``wall`` the seconds of each run (noise on a
shared host; only a hint of the speed).

    python benchmarks/detection_sensitivity.py [CLIP ...] [--det-size 480 320] [--no-bfloat16] [--results FILE]

Without clips, WolfgangLanger_Pexels.mp4 and short_hamilton_clip.mp4 from ../shared/media.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from keyframes import MEDIA, compare
from rich.console import Console
from rich.table import Table

from fervid.options import AnnotateOptions
from fervid.pipeline import Pipeline

CLIPS = (MEDIA / "pyfeat" / "WolfgangLanger_Pexels.mp4", MEDIA / "face_recognition" / "short_hamilton_clip.mp4")


class BFloat16(torch.nn.Module):
    """A network run in bfloat16: inputs cast down, outputs cast back to float32 for decoding."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net.to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(out.float() for out in self.net(x.to(torch.bfloat16)))


def timeline(clip: Path, det_size: int = 640, bfloat16: bool = False) -> tuple[pd.DataFrame, float]:
    """The faces table of a timeline-only run of ``clip`` and its wall seconds."""
    pipeline = Pipeline(AnnotateOptions.from_flat(video=False, report=False, plots=False, det_size=det_size))
    if bfloat16:
        detector = pipeline.engine.detector
        detector._net = BFloat16(detector._net)  # the network ``detect`` runs (fervid.detect.FaceDetector)
    started = time.perf_counter()
    result = pipeline.run(clip, None, clip.stem)
    return result.timeline, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path, nargs="*")
    parser.add_argument("--det-size", type=int, nargs="*", default=[480, 320])
    parser.add_argument("--no-bfloat16", dest="bfloat16", action="store_false")
    parser.add_argument("--results", type=Path, default=None, help="append the table to this Markdown file")
    args = parser.parse_args(argv)
    clips = args.clips or [c for c in CLIPS if c.is_file()]
    if not clips:
        raise SystemExit(f"no clips given and none found under {MEDIA}")
    variants: list[tuple[str, dict]] = [(f"det-size {s}", {"det_size": s}) for s in args.det_size]
    if args.bfloat16:
        variants.append(("bfloat16", {"bfloat16": True}))
    headers = ["clip", "detection", "labels", "IoU", "recall", "missing", "tracks", "persons", "wall s", "ok"]
    table = Table(title=f"Cheaper detection against --det-size 640, float32 (load {os.getloadavg()[0]:.1f})")
    for h in headers:
        table.add_column(h, justify="left" if h in ("clip", "detection") else "right")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    console = Console()
    for clip in clips:
        reference, wall = timeline(clip)
        rows = [[clip.name, "det-size 640, float32", "", "", "", "", "", "", f"{wall:.1f}", ""]]
        for name, kwargs in variants:
            other, wall = timeline(clip, **kwargs)
            a = compare(reference, other)
            rows.append([clip.name, name, f"{a.labels:.2%}", f"{a.median_iou:.3f}", f"{a.recall:.1%}", str(a.missing),
                         f"{a.tracks[0]}->{a.tracks[1]}", f"{a.persons[0]}->{a.persons[1]}", f"{wall:.1f}",
                         "yes" if a.ok else "no"])  # fmt: skip
        for cells in rows:
            table.add_row(*cells)
            lines.append("| " + " | ".join(cells) + " |")
            console.print(lines[-1])
    console.print(table)
    if args.results is not None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with args.results.open("a") as fh:
            fh.write(f"\n### {stamp}: cheaper detection against today's (benchmarks/detection_sensitivity.py)\n\n")
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
