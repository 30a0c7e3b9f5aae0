"""Evaluate the shipped models for the model card (run once, after training; test splits used here only).

Writes weights/metrics.json (figures the CI test checks), weights/cards/<model>-<split>[-tta].confusion.{csv,png}
and weights/SHA256SUMS. Usage:

    python scripts/evaluate_shipped.py --shared ../shared [--models ferplus]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from fervid.models.expression_weights import MANIFEST, WEIGHTS_DIR, load_weights, sha256_file
from fervid.train.data import EVALUATION_SPLITS, load_dataset
from fervid.train.evaluate import Evaluation, majority_protocol
from fervid.train.predict import average_probabilities, predict_view_logits

DATASETS = {"ferplus": "FER+", "fer2013": "FER2013"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--models", nargs="+", choices=list(EVALUATION_SPLITS), default=list(EVALUATION_SPLITS),
                        help="re-evaluate only these (a new model); the others keep their entries")  # fmt: skip
    args = parser.parse_args()
    cards = WEIGHTS_DIR / "cards"
    cards.mkdir(exist_ok=True)
    metrics_path = WEIGHTS_DIR / "metrics.json"
    kept = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    kept_names = [name for name in EVALUATION_SPLITS if name not in args.models and name in kept]
    metrics: dict[str, dict] = {name: kept[name] for name in kept_names}
    for name, splits in EVALUATION_SPLITS.items():
        if name not in args.models:
            continue
        model, cfg = load_weights(name, verify=False)
        entry: dict = {"classes": list(cfg.classes), "dataset": DATASETS[name], "training": cfg.info}
        for split, rel in splits.items():
            data = load_dataset(args.shared / rel)
            for tta in (False, True):
                logits = predict_view_logits(model, cfg, data.images, "cpu", tta=tta)
                probs = average_probabilities(logits, cfg)
                result = Evaluation.from_probs(data.labels, probs, cfg.classes)
                raw = average_probabilities(logits, replace(cfg, temperature=1.0))
                uncalibrated = Evaluation.from_probs(data.labels, raw, cfg.classes)
                key = f"{split}{'_tta' if tta else ''}"
                entry[key] = {"accuracy": result.accuracy, "macro_f1": result.macro_f1, "n": result.n,
                              "ece": result.ece, "ece_uncalibrated": uncalibrated.ece, "temperature": cfg.temperature,
                              "per_class": result.per_class().to_dict(orient="records")}  # fmt: skip
                majority = majority_protocol(data, probs, cfg.classes)
                if majority is not None:  # FER+: the subset published figures are on
                    entry[f"{split}_majority{'_tta' if tta else ''}"] = {
                        "accuracy": majority.accuracy, "macro_f1": majority.macro_f1, "n": majority.n,
                        "per_class": majority.per_class().to_dict(orient="records")}  # fmt: skip
                    print(f"{name:8s} {key:9s} FER+ majority protocol accuracy {majority.accuracy:.4f} n={majority.n}")
                stem = cards / f"{name}-{key}"
                result.confusion_frame().to_csv(f"{stem}.confusion.csv")
                result.save_confusion_png(
                    Path(f"{stem}.confusion.png"),
                    f"{name}, {split}{' + TTA' if tta else ''}: accuracy {result.accuracy:.4f} (n={result.n})",
                )
                print(f"{name:8s} {key:9s} accuracy {result.accuracy:.4f} macro-F1 {result.macro_f1:.4f} n={result.n}")
        metrics[name] = entry
    metrics = {name: metrics[name] for name in EVALUATION_SPLITS if name in metrics}  # the card's order
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
    (cards / "metrics.md").write_text(markdown(metrics))
    lines = [f"{sha256_file(p)}  {p.name}" for p in sorted(WEIGHTS_DIR.glob("*.pt")) if "." not in p.stem]
    (WEIGHTS_DIR / MANIFEST).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def markdown(metrics: dict[str, dict]) -> str:
    """The model card's tables: overall figures, then per-class test scores per model."""
    lines = [
        "| model | split | accuracy | macro-F1 | accuracy (TTA) | macro-F1 (TTA) | ECE raw → calibrated | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in metrics.items():
        for split in ("val", "test"):
            plain, tta = entry[split], entry[f"{split}_tta"]
            ece = f"{plain['ece_uncalibrated']:.3f} → {plain['ece']:.3f}" if "ece" in plain else "-"
            lines.append(
                f"| {name} | {split} | {plain['accuracy']:.2%} | {plain['macro_f1']:.4f} | {tta['accuracy']:.2%} "
                f"| {tta['macro_f1']:.4f} | {ece} | {plain['n']} |"
            )
    for name, entry in metrics.items():
        for split in ("val", "test"):
            if f"{split}_majority" in entry:
                plain, tta = entry[f"{split}_majority"], entry[f"{split}_majority_tta"]
                lines.append(
                    f"| {name} | {split}, FER+ protocol | {plain['accuracy']:.2%} | {plain['macro_f1']:.4f} "
                    f"| {tta['accuracy']:.2%} | {tta['macro_f1']:.4f} | - | {plain['n']} |"
                )
    for name, entry in metrics.items():
        lines += ["", f"Per-class test scores, {name} (no TTA):", "",
                  "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]  # fmt: skip
        for row in entry["test"]["per_class"]:
            scores = " | ".join(f"{row[k]:.3f}" for k in ("precision", "recall", "f1"))
            lines.append(f"| {row['class']} | {scores} | {row['support']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
