"""Accuracy of expression models on the labelled real-footage set, through fervid's annotate path.

Prints a Markdown table per model (per class and overall; a missed face counts as wrong) for the
model card, and optionally writes every face's prediction as CSV. The set and how it was made:
``tests/data/README.md``. Usage:

    python scripts/real_footage.py ferplus fer2013 runs/joint/ferplus.pt [--csv out.csv]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _real_faces import accuracy, measure  # noqa: E402 - the helper lives with the tests that share it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model names (fervid models) or .pt files")
    parser.add_argument("--csv", type=Path, help="write every labelled face with each model's prediction here")
    args = parser.parse_args(argv)
    tables = []
    for model in args.models:
        rows = measure(model, identity=False, progress=lambda clip: print(f"  {clip}", file=sys.stderr))
        scores = accuracy(rows)
        print(f"\n### {model}\n")
        print("| class | faces | correct | accuracy |\n|---|---:|---:|---:|")
        for label, row in scores.iterrows():
            print(f"| {label} | {int(row.n)} | {int(row.correct)} | {100 * row.accuracy:.1f} % |")
        hamilton = rows[(rows["clip"] == "face_recognition/short_hamilton_clip.mp4") & (rows["frame"] == 240)]
        faces = [f"{r.predicted} {r.confidence:.2f} (happy {r.p_happy:.2f})" for r in hamilton.itertuples()]
        print(f"\nHamilton frame 240, left to right: {', '.join(faces)}")
        tables.append(rows.assign(model=model))
    if args.csv is not None:
        pd.concat(tables).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
