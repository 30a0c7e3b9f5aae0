"""Expression accuracy by head pose: how a model does on FER's turned and profile faces, and what they are labelled.

FER's profile faces are few and nearly all angry or neutral, so a model can learn pose as a cue
for the label (``fervid train --pose-balance`` counters that; :mod:`fervid.train.pose`). This
prints, per pose bin of :mod:`fervid.train.pose` (head turn from our detector's landmarks), the
number of faces, the label mix, and each model's accuracy and recall of happy, angry and neutral.
Head turns are measured once per split and cached in ``--cache``.

    python benchmarks/pose.py --shared ../shared --models ferplus runs/x/ferplus.pt [--split val] [--data ferplus]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fervid.models.expression_weights import load_expression_model
from fervid.train.data import EVALUATION_SPLITS, load_dataset
from fervid.train.pose import BIN_NAMES, cached_head_turns, pose_bins
from fervid.train.predict import predict_probs

RECALLED = ("happy", "angry", "neutral")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--data", choices=sorted(EVALUATION_SPLITS), default="ferplus", help="which dataset's split")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--models", nargs="+", default=["ferplus"])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()), help="folder for head turns")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.shared / EVALUATION_SPLITS[args.data][args.split]
    if not path.exists():
        print(f"error: {path}: no such dataset", file=sys.stderr)
        return 1
    started = time.perf_counter()
    data = load_dataset(path)
    turns = cached_head_turns(data.images, args.cache / f"fervid-head-turns-{args.data}-{args.split}.npz")
    bins = pose_bins(turns)
    labels = data.labels
    console = Console(width=None if sys.stdout.isatty() else 150)
    mix = Table(title=f"{path.name}: faces and label mix (%) per pose bin")
    mix.add_column("pose bin")
    mix.add_column("faces", justify="right")
    for name in data.classes:
        mix.add_column(name, justify="right")
    for b, name in enumerate(BIN_NAMES):
        members = bins == b
        shares = np.bincount(labels[members], minlength=len(data.classes)) / max(members.sum(), 1)
        mix.add_row(name, str(int(members.sum())), *(f"{100 * s:.0f}" for s in shares))
    console.print(mix)
    scores = Table(title="accuracy and recall (%) per pose bin")
    scores.add_column("model")
    scores.add_column("measure")
    for name in BIN_NAMES:
        scores.add_column(name, justify="right")
    scores.add_column("all", justify="right")
    for model in args.models:
        loaded = load_expression_model(model)
        net, config = loaded.model, loaded.config
        if config.classes != data.classes:
            print(f"error: {model} has classes {config.classes}, {path.name} {data.classes}", file=sys.stderr)
            return 1
        predicted = predict_probs(net, config, data.images, torch.device("cpu")).argmax(1)
        correct = predicted == labels
        rows = [("accuracy", np.ones(len(labels), bool))]
        rows += [(f"{c} recall", labels == data.classes.index(c)) for c in RECALLED if c in data.classes]
        for measure, subset in rows:
            cells = []
            for mask in [bins == b for b in range(len(BIN_NAMES))] + [np.ones(len(labels), bool)]:
                picked = mask & subset
                cells.append(f"{100 * correct[picked].mean():.1f} ({picked.sum()})" if picked.any() else "-")
            scores.add_row(model, measure, *cells)
    console.print(scores)
    console.print(f"(n) faces; head turns cached in {args.cache}; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
