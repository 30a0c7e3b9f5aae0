"""Judge p_correct and readable: risk-coverage, AURC and ECE against the top probability, on data never fitted on.

For the default model (or ``--model``), through its reliability file:

* **real footage**: the labelled faces of ``tests/data/real_faces.csv`` through ``fervid.annotate``;
* **FER+ test**, clean and under the conditions (each face under one condition drawn across its
  range, as the fit drew FER+ validation; a different seed);
* **Hamilton**: the share of frames each labelled person of ``short_hamilton_clip.mp4`` is trusted
  (readable and p_correct at the threshold): the blurred, dark audience of shot 2 and the glass
  should not be, the singer and the four clear audience members of the last shot should.

Per set: faces, accuracy, AURC of p_correct and of the top probability (lower is better; the
target is p_correct's at most 0.8 of the baseline's on real footage, 0.85 on FER+ test under the
conditions), accuracy over the 70 % of faces p_correct trusts most, ECE of p_correct, and how many
faces the threshold keeps and how right they are, and the same at ``--min-p-correct`` 0, 0.5, 0.7 and 0.9
(``by_threshold``: what the default costs and buys). ``--json`` and ``--plot`` keep the figures and the
risk-coverage curves for the model card (``python -m fervid.train.card`` writes its reliability table from them).
``--limit`` runs on a few faces of each set (the smoke test).

    python benchmarks/reliability.py --shared ../shared [--model ferplus-rule] --json x.json --plot x.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _real_faces import load_labels, measure  # noqa: E402 - the real-footage helper lives with the tests

from fervid.geometry import box_iou_np  # noqa: E402
from fervid.models.expression_weights import resolve_model, sha256_file  # noqa: E402
from fervid.options import ClassificationOptions  # noqa: E402
from fervid.reliability import load_reliability, risk_coverage  # noqa: E402
from fervid.train.calibrate import ECE_BINS  # noqa: E402
from fervid.train.reliability_data import THRESHOLDS, by_threshold, fer_faces, judge, kept_faces  # noqa: E402

HAMILTON = "media/face_recognition/short_hamilton_clip.mp4"
HAMILTON_LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "hamilton_persons.csv"
#: hamilton_persons.csv rows (0-based) the issue names: shot 2's blurred audience and the glass; the singer
#: in shot 3 and the four clear audience members of shot 4.
UNREADABLE_ROWS = (2, 3, 5, 6, 8, 9)
READABLE_ROWS = (10, 11, 12, 13, 15)


def _judged(p: np.ndarray, top: np.ndarray, correct: np.ndarray, readable: np.ndarray, threshold: float) -> tuple:
    trusted = kept_faces(p, readable, threshold)
    figures = {**judge(p, top, correct, trusted), "by_threshold": by_threshold(p, readable, correct)}
    return figures, {"p_correct": p, "top": top, "correct": correct}


def real_footage(model: str, threshold: float, limit: int | None = None) -> tuple[dict, dict]:
    """The labelled real faces (``limit``: the first so many rows of the labels) through fervid.annotate."""
    labels = load_labels()
    rows = measure(model, labels=labels.head(limit) if limit else labels, min_p_correct=threshold)
    rows = rows[rows["matched"]]
    correct = (rows["predicted"] == rows["label"]).to_numpy()
    p, top = rows["p_correct"].to_numpy(np.float64), rows["confidence"].to_numpy(np.float64)
    return _judged(p, top, correct, rows["readable"].to_numpy(bool), threshold)


def fer_test(model: str, shared: Path, clean: bool, threshold: float, cache: Path,
             limit: int | None = None) -> tuple[dict, dict]:  # fmt: skip
    from fervid.classify import ExpressionClassifier

    reliability = ExpressionClassifier(model, require_reliability=True).reliability
    probs, measures, correct = fer_faces(model, shared, "test", seed=1, cache=cache, clean_share=1.0 if clean else 0.2,
                                         limit=limit)  # fmt: skip
    p = reliability.p_correct(probs, measures)
    return _judged(p, probs.max(axis=1), correct, reliability.readable(measures), threshold)


def hamilton(shared: Path, model: str, threshold: float) -> list[dict]:
    """Per named Hamilton track: its frames and the share trusted (matched to hamilton_persons.csv by first frame
    and box)."""
    import fervid

    faces = fervid.annotate(shared / HAMILTON, model=model, min_p_correct=threshold, video=False, report=False,
                            plots=False).faces  # fmt: skip
    labels = pd.read_csv(HAMILTON_LABELS)
    trusted = faces["readable"] & (faces["p_correct"] >= threshold)
    out = []
    for row in (*UNREADABLE_ROWS, *READABLE_ROWS):
        label = labels.iloc[row]
        best, best_iou = None, 0.5
        for face_id, track in faces.groupby("face_id"):
            first = track.sort_values("frame").iloc[0]
            if abs(int(first["frame"]) - int(label["first_frame"])) <= 3:
                iou = box_iou_np(label[["x1", "y1", "x2", "y2"]].to_numpy(float)[None],
                                 first[["x1", "y1", "x2", "y2"]].to_numpy(float)[None])[0, 0]  # fmt: skip
                if iou > best_iou:
                    best, best_iou = face_id, iou
        rows = faces["face_id"] == best
        out.append({"row": row, "who": f"{label['person']}: {str(label['note'])[:60]}",
                    "should_be": "trusted" if row in READABLE_ROWS else "not trusted", "face_id": best,
                    "frames": int(rows.sum()),
                    "readable_share": float(faces.loc[rows, "readable"].mean()) if rows.any() else None,
                    "trusted_share": float(trusted[rows].mean()) if rows.any() else None})  # fmt: skip
    return out


def plot(curves: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), sharey=False)
    for ax, (name, c) in zip(np.atleast_1d(axes), curves.items()):
        for key, colour in (("p_correct", "#1f77b4"), ("top", "#7f7f7f")):
            coverage, risk, aurc = risk_coverage(c[key], c["correct"])
            ax.plot(coverage, risk, color=colour, label=f"{key} (AURC {aurc:.3f})")
        ax.set_title(name)
        ax.set_xlabel("coverage (share of faces kept, most trusted first)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("risk (error rate of the kept faces)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--model", default=ClassificationOptions().model)
    parser.add_argument("--threshold", type=float, default=None, help="default: the reliability file's")
    parser.add_argument("--cache", type=Path, default=Path("runs/reliability/ferplus_test_landmarks.npz"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--skip", nargs="*", default=[], choices=["real", "fer", "hamilton"], help="sets to leave out")
    parser.add_argument("--limit", type=int, default=None, help="only this many faces of FER+ test and real footage")
    args = parser.parse_args()
    started = time.perf_counter()
    path = resolve_model(args.model)
    reliability = load_reliability(path, sha256_file(path))
    threshold = reliability.default_threshold if args.threshold is None else args.threshold
    results, curves = {}, {}
    if "real" not in args.skip:
        results["real footage"], curves["real footage"] = real_footage(args.model, threshold, args.limit)
    if "fer" not in args.skip:
        for name, clean in (("FER+ test, clean", True), ("FER+ test, conditions", False)):
            results[name], curves[name] = fer_test(args.model, args.shared, clean, threshold, args.cache, args.limit)
    table = Table(title=f"{args.model}: p_correct against the top probability (threshold {threshold:g})")
    columns = ["n", "accuracy", "aurc_p_correct", "aurc_top", "aurc_ratio", "accuracy_top70_p_correct",
               "accuracy_top70_top", "ece_p_correct", "ece_top", "trusted_share", "accuracy_trusted"]  # fmt: skip
    table.add_column("set")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for name, r in results.items():
        table.add_row(name, *(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in columns))
    console = Console(width=200)
    console.print(table)
    by = Table(title="Coverage (share of faces a conclusion keeps) and their accuracy at each --min-p-correct")
    by.add_column("set")
    for t in THRESHOLDS:
        by.add_column(f"{t:g}: coverage, accuracy", justify="right")
    for name, r in results.items():
        by.add_row(name, *(f"{b['coverage']:.3f}, " + (f"{b['accuracy']:.3f}" if b["accuracy"] is not None else "-")
                           for b in r["by_threshold"]))  # fmt: skip
    console.print(by)
    if "hamilton" not in args.skip:
        results["hamilton"] = hamilton(args.shared, args.model, threshold)
        ham = Table(title="Hamilton: share of each labelled person's frames trusted")
        for column in ("who", "should be", "face", "frames", "readable", "trusted"):
            ham.add_column(column)
        for r in results["hamilton"]:
            ham.add_row(r["who"], r["should_be"], str(r["face_id"]), str(r["frames"]),
                        f"{r['readable_share']:.2f}" if r["readable_share"] is not None else "-",
                        f"{r['trusted_share']:.2f}" if r["trusted_share"] is not None else "-")  # fmt: skip
        console.print(ham)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        head = {"model": str(args.model), "threshold": threshold, "ece_bins": ECE_BINS}
        args.json.write_text(json.dumps({**head, **results}, indent=1, default=str))
    if args.plot and curves:
        plot(curves, args.plot)
    console.print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
