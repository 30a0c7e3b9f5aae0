"""Evaluate the shipped models for the model card (run once, after training; test splits used here only).

Writes weights/metrics.json (figures the CI test checks), weights/cards/<model>-<split>[-tta].confusion.{csv,png},
weights/SHA256SUMS (weight files and decision rules) and the model card's results table (fervid.train.card).
Each model is scored on its own dataset's splits (a decision rule: its first member's) as ``val`` and ``test``,
and on any other dataset whose classes it has as ``<dataset>_val`` and ``<dataset>_test`` (``ferplus`` on
FER2013's seven classes, still choosing among its own eight). Usage:

    python scripts/evaluate_shipped.py --shared ../shared [--models ferplus-rule]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from fervid.models.expression_rule import RULE_SUFFIX, RuleNet
from fervid.models.expression_weights import (
    MANIFEST,
    WEIGHTS_DIR,
    ExpressionConfig,
    ExpressionModel,
    load_expression_model,
    resolve_model,
    sha256_file,
    shipped_models,
)
from fervid.train.card import update_card
from fervid.train.data import EVALUATION_SPLITS, ExpressionData, load_dataset
from fervid.train.evaluate import Evaluation, majority_protocol
from fervid.train.predict import average_probabilities, predict_view_logits

DATASETS = {"ferplus": "FER+", "fer2013": "FER2013"}


def own_dataset(name: str) -> str:
    """The EVALUATION_SPLITS key a model is scored on as ``val``/``test``: its own, or a rule's first member's."""
    if name in EVALUATION_SPLITS:
        return name
    rule = json.loads(resolve_model(name).read_text())
    return Path(rule["members"][0]["file"]).stem


def card_order(names: list[str]) -> list[str]:
    """The heads in EVALUATION_SPLITS order, then the decision rules."""
    return [n for n in EVALUATION_SPLITS if n in names] + sorted(n for n in names if n not in EVALUATION_SPLITS)


def evaluate(name: str, shared: Path, cards: Path) -> dict:
    loaded = load_expression_model(name, verify=False)
    model, cfg = loaded.model, loaded.config
    raw_model = model.uncalibrated() if isinstance(model, RuleNet) else model
    own = own_dataset(name)
    entry: dict = {"classes": list(cfg.classes), "dataset": DATASETS[own], "training": cfg.info}
    for dataset, splits in EVALUATION_SPLITS.items():
        for split, rel in splits.items():
            data = load_dataset(shared / rel)
            if dataset != own and not set(data.classes) <= set(cfg.classes):
                break
            for tta in (False, True):
                key = f"{'' if dataset == own else f'{dataset}_'}{split}{'_tta' if tta else ''}"
                entry.update(score(name, key, model, raw_model, cfg, data, tta, cards))
    return entry


def score(
    name: str, key: str, model: ExpressionModel, raw_model: ExpressionModel, cfg: ExpressionConfig,
    data: ExpressionData, tta: bool, cards: Path,
) -> dict[str, dict]:  # fmt: skip
    """The figures of one model on one split (and FER+'s majority protocol where the split has votes)."""
    logits = predict_view_logits(model, cfg, data.images, "cpu", tta=tta)
    probs = average_probabilities(logits, cfg)
    result = Evaluation.from_probs(data.labels, probs, cfg.classes, data.classes)
    raw_logits = logits if raw_model is model else predict_view_logits(raw_model, cfg, data.images, "cpu", tta=tta)
    raw = average_probabilities(raw_logits, replace(cfg, temperature=1.0))
    uncalibrated = Evaluation.from_probs(data.labels, raw, cfg.classes, data.classes)
    out = {key: {"accuracy": result.accuracy, "macro_f1": result.macro_f1, "n": result.n, "ece": result.ece,
                 "ece_uncalibrated": uncalibrated.ece, "temperature": cfg.temperature,
                 "per_class": result.per_class().to_dict(orient="records")}}  # fmt: skip
    majority = majority_protocol(data, probs, cfg.classes)
    if majority is not None:  # FER+: the subset published figures are on
        out[f"{key.removesuffix('_tta')}_majority{'_tta' if tta else ''}"] = {
            "accuracy": majority.accuracy, "macro_f1": majority.macro_f1, "n": majority.n,
            "per_class": majority.per_class().to_dict(orient="records")}  # fmt: skip
        print(f"{name:12s} {key:16s} FER+ majority protocol accuracy {majority.accuracy:.4f} n={majority.n}")
    stem = cards / f"{name}-{key}"
    result.confusion_frame().to_csv(f"{stem}.confusion.csv")
    result.save_confusion_png(Path(f"{stem}.confusion.png"),
                              f"{name}, {key}: accuracy {result.accuracy:.4f} (n={result.n})")  # fmt: skip
    print(f"{name:12s} {key:16s} accuracy {result.accuracy:.4f} macro-F1 {result.macro_f1:.4f} n={result.n}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--models", nargs="+", choices=shipped_models(), default=shipped_models(),
                        help="re-evaluate only these (a new model); the others keep their entries")  # fmt: skip
    args = parser.parse_args()
    cards = WEIGHTS_DIR / "cards"
    cards.mkdir(exist_ok=True)
    metrics_path = WEIGHTS_DIR / "metrics.json"
    kept = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    metrics: dict[str, dict] = {
        name: kept[name] for name in shipped_models() if name not in args.models and name in kept
    }
    for name in args.models:
        metrics[name] = {**kept.get(name, {}), **evaluate(name, args.shared, cards)}  # keeps real_footage etc.
    metrics = {name: metrics[name] for name in card_order(list(metrics))}
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
    (cards / "metrics.md").write_text(markdown(metrics))
    update_card(WEIGHTS_DIR)
    names = {f"{n}.pt" for n in shipped_models()} | {f"{n}{RULE_SUFFIX}" for n in shipped_models()}
    lines = [f"{sha256_file(p)}  {p.name}" for p in sorted(WEIGHTS_DIR.iterdir()) if p.name in names]
    (WEIGHTS_DIR / MANIFEST).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def markdown(metrics: dict[str, dict]) -> str:
    """The model card's tables: overall figures, then per-class test scores per model."""
    lines = [
        "| model | split | accuracy | macro-F1 | accuracy (TTA) | macro-F1 (TTA) | ECE raw → calibrated | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    splits = {"val": "val", "test": "test", "fer2013_val": "FER2013 val", "fer2013_test": "FER2013 test"}
    for name, entry in metrics.items():
        for split, label in splits.items():
            if split not in entry:
                continue
            plain, tta = entry[split], entry[f"{split}_tta"]
            ece = f"{plain['ece_uncalibrated']:.3f} → {plain['ece']:.3f}" if "ece" in plain else "-"
            lines.append(
                f"| {name} | {label} | {plain['accuracy']:.2%} | {plain['macro_f1']:.4f} | {tta['accuracy']:.2%} "
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
