"""Validation accuracy of expression models alone and of their averaged probabilities.

Why: before distilling an ensemble into one network (``fervid train --teacher A --teacher B``),
this says how much the ensemble has to hand down. Models that are warm restarts of one another
make the same mistakes, and their mean gains little; the model card quotes this script's figures.
Validation split only (selection), never test. Usage:

    python benchmarks/ensemble.py --shared ../shared --dataset ferplus --models ferplus runs/x/ferplus.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from fervid.models.errors import WeightsError
from fervid.models.expression_weights import load_expression_model
from fervid.train.data import EVALUATION_SPLITS, load_dataset
from fervid.train.evaluate import Evaluation
from fervid.train.predict import predict_probs


def _line(name: str, result: Evaluation) -> str:
    recalls = " ".join(f"{row['class']} {row['recall']:.3f}" for row in result.per_class().to_dict(orient="records"))
    return f"| {name} | {100 * result.accuracy:.2f} % | {result.macro_f1:.4f} | {recalls} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--dataset", choices=sorted(EVALUATION_SPLITS), default="ferplus")
    parser.add_argument("--models", nargs="+", required=True, help="model names or .pt files with the same classes")
    parser.add_argument("--limit", type=int, help="evaluate on this many random faces")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.shared / EVALUATION_SPLITS[args.dataset]["val"])
    images, labels = data.images, data.labels
    if args.limit is not None and args.limit < len(images):
        rows = np.sort(np.random.default_rng(0).choice(len(images), args.limit, replace=False))
        images, labels = images[rows], labels[rows]
    print(f"{args.dataset} validation, {len(images)} faces\n")
    print("| model | accuracy | macro-F1 | recall per class |\n|---|---|---|---|")
    probs = []
    for name in args.models:
        try:
            loaded = load_expression_model(name)
            model, cfg = loaded.model, loaded.config
        except WeightsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if cfg.classes != data.classes:
            print(f"error: {name}: classes {', '.join(cfg.classes)} are not {args.dataset}'s", file=sys.stderr)
            return 1
        probs.append(predict_probs(model, cfg, images, "cpu"))
        print(_line(name, Evaluation.from_probs(labels, probs[-1], data.classes)))
    if len(probs) > 1:
        print(_line("mean of all", Evaluation.from_probs(labels, np.mean(probs, axis=0), data.classes)))
        top = [p.argmax(1) for p in probs]
        print(f"\ntop-1 agreement of the first two: {100 * float((top[0] == top[1]).mean()):.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
