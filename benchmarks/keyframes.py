"""Do key frames keep the timelines? ``--detect-every N`` against N = 1 on every real clip.

For each clip, fervid runs timeline-only (tables and person identity, no video, no report)
at N = 1 and at each N asked for, and the faces tables are compared frame by frame: faces
are paired by box overlap (Hungarian, IoU >= 0.5), then

* ``labels``: share of paired faces with the same ``emotion`` (target >= 99 %);
* ``IoU``: median box IoU of the pairs (target >= 0.95);
* ``recall``: share of N = 1's faces that have a pair (informative: new faces enter up to N - 1 frames late);
* ``missing``: faces (face IDs) present in at least 10 consecutive frames at N = 1 of which no frame
  of that run has a pair (target 0); ``worst run``: the lowest share of a such run's frames paired;
* ``tracks``/``persons``: distinct face and person IDs, N = 1 -> N (target: no growth);
* ``key``: share of frames searched in full (the rest are followed in windows);
* ``fps``: frames per second of the frame loop (only comparable within one run of this script,
  and only on an idle machine).

``ok`` is yes when every target holds. The default N (``fervid.options.DETECT_EVERY``) is
the largest N that is ok on every clip.

    python benchmarks/keyframes.py [CLIP ...] [--every 2 4 8] [--frames N] [--results FILE]

Without clips, every video under ../shared/media is used.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from scipy.optimize import linear_sum_assignment

from fervid.geometry import box_iou_np
from fervid.options import AnnotateOptions
from fervid.pipeline import Pipeline

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".h265", ".h264", ".gif")
#: Boxes overlapping at least this much are the same face.
PAIR_IOU = 0.5
#: A face present this many consecutive frames at N = 1 must not be missing.
RUN_FRAMES = 10
BOX = ["x1", "y1", "x2", "y2"]


@dataclass
class Agreement:
    """How a run at some N agrees with the run at N = 1 (see the module docstring)."""

    paired: int
    reference_faces: int
    labels: float
    median_iou: float
    missing: int
    worst_run: float
    tracks: tuple[int, int]
    persons: tuple[int, int]

    @property
    def recall(self) -> float:
        return self.paired / self.reference_faces if self.reference_faces else 1.0

    @property
    def ok(self) -> bool:
        return (self.labels >= 0.99 and self.median_iou >= 0.95 and self.missing == 0
                and self.tracks[1] <= self.tracks[0] and self.persons[1] <= self.persons[0])  # fmt: skip


def _ids(table: pd.DataFrame, column: str) -> int:
    if column not in table or table.empty:
        return 0
    ids = table[column].dropna()
    return int(ids[ids >= 1].nunique())


def compare(reference: pd.DataFrame, other: pd.DataFrame) -> Agreement:
    """Pair the faces of two faces tables frame by frame and measure their agreement."""
    paired_rows: list[tuple[int, int, float]] = []  # (reference row, other row, IoU)
    groups = {frame: rows for frame, rows in other.groupby("frame").indices.items()}
    ref_boxes, other_boxes = reference[BOX].to_numpy(float), other[BOX].to_numpy(float)
    for frame, rows in reference.groupby("frame").indices.items():
        theirs = groups.get(frame)
        if theirs is None:
            continue
        iou = box_iou_np(ref_boxes[rows], other_boxes[theirs])
        r, c = linear_sum_assignment(-iou)
        keep = iou[r, c] >= PAIR_IOU
        paired_rows += [(rows[i], theirs[j], iou[i, j]) for i, j in zip(r[keep], c[keep])]
    ref_idx = np.array([p[0] for p in paired_rows], dtype=np.int64)
    other_idx = np.array([p[1] for p in paired_rows], dtype=np.int64)
    ious = np.array([p[2] for p in paired_rows])
    same = reference["emotion"].to_numpy()[ref_idx] == other["emotion"].to_numpy()[other_idx]
    has_pair = np.zeros(len(reference), dtype=bool)
    has_pair[ref_idx] = True
    missing, worst = 0, 1.0
    for _, rows in reference.groupby("face_id").indices.items():
        frames = reference["frame"].to_numpy()[rows]
        order = np.argsort(frames)
        frames, rows = frames[order], rows[order]
        starts = np.flatnonzero(np.diff(frames, prepend=frames[0] - 2) != 1)
        for a, b in zip(starts, [*starts[1:], len(frames)]):
            if b - a >= RUN_FRAMES:
                share = has_pair[rows[a:b]].mean()
                worst = min(worst, float(share))
                missing += int(share == 0)
    return Agreement(
        paired=len(paired_rows), reference_faces=len(reference),
        labels=float(same.mean()) if len(same) else 1.0,
        median_iou=float(np.median(ious)) if len(ious) else 1.0,
        missing=missing, worst_run=worst,
        tracks=(_ids(reference, "face_id"), _ids(other, "face_id")),
        persons=(_ids(reference, "person_id"), _ids(other, "person_id")),
    )  # fmt: skip


def run(pipeline: Pipeline, clip: Path, every: int, frames: int | None) -> tuple[pd.DataFrame, float, float]:
    """The faces table of ``clip`` at ``--detect-every every``, the frame loop's fps and the share of key frames."""
    end = None
    if frames is not None:
        from fervid.io.probe import probe

        fps = probe(clip).fps or 25.0
        end = (frames - 0.5) / fps
    options = AnnotateOptions.from_flat(video=False, report=False, plots=False, detect_every=every, end=end)
    pipeline.options = options
    pipeline.engine.last_schedule = None
    result = pipeline.run(clip, None, clip.stem)
    schedule = pipeline.engine.last_schedule
    key = 1.0 if schedule is None else schedule.key_frames / max(1, schedule.key_frames + schedule.window_frames)
    return result.timeline, result.fps, key


def clips_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path, nargs="*")
    parser.add_argument("--every", type=int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames of each clip")
    parser.add_argument("--results", type=Path, default=None, help="append the table to this Markdown file")
    args = parser.parse_args(argv)
    clips = args.clips or clips_under(MEDIA)
    pipeline = Pipeline(AnnotateOptions.from_flat(video=False, report=False, plots=False))
    table = Table(title=f"--detect-every N against N = 1 (load average {os.getloadavg()[0]:.1f})")
    headers = ["clip", "N", "key", "labels", "IoU", "recall", "missing", "worst run", "tracks", "persons", "fps", "ok"]
    for h in headers:
        table.add_column(h, justify="left" if h == "clip" else "right")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    ok_for: dict[int, bool] = {n: True for n in args.every}
    console = Console()
    for clip in clips:
        reference, ref_fps, _ = run(pipeline, clip, 1, args.frames)
        cells = [clip.name, "1", "100%", "", "", "", "", "", str(_ids(reference, "face_id")),
                 str(_ids(reference, "person_id")), f"{ref_fps:.0f}", ""]  # fmt: skip
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
        console.print(lines[-1])  # as it comes: a run over every clip takes a while
        for n in args.every:
            timeline, fps, key = run(pipeline, clip, n, args.frames)
            a = compare(reference, timeline)
            ok_for[n] &= a.ok
            cells = [clip.name, str(n), f"{key:.0%}", f"{a.labels:.2%}", f"{a.median_iou:.3f}", f"{a.recall:.1%}",
                     str(a.missing), f"{a.worst_run:.0%}", f"{a.tracks[0]}->{a.tracks[1]}",
                     f"{a.persons[0]}->{a.persons[1]}", f"{fps:.0f}", "yes" if a.ok else "no"]  # fmt: skip
            table.add_row(*cells)
            lines.append("| " + " | ".join(cells) + " |")
            console.print(lines[-1])
    console.print(table)
    passing = [n for n, ok in ok_for.items() if ok]
    verdict = f"largest N meeting every target on every clip: {max(passing) if passing else 'none'}"
    console.print(verdict)
    if args.results is not None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        every = " ".join(map(str, args.every))
        with args.results.open("a") as fh:
            fh.write(f"\n### {stamp}: --detect-every against N = 1\n\n"
                     f"- Command: `python benchmarks/keyframes.py --every {every}`; {verdict}\n\n")  # fmt: skip
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
