"""Fit an expression model's reliability file: its ``readable`` limits and its ``p_correct`` logistic model.

The protocol, fixed before any figure was looked at (issue 30):

* **readable** limits come from ``benchmarks/readability.py --json`` for the same model: the
  measurement where the model's accuracy collapses on FER+ validation, per condition (contrast
  and brightness from darkness, sharpness from blur, face_px from small faces, |yaw| from FER's
  own turned faces where a bin of 30+ faces collapses, else from the synthetic turn).
* **p_correct** is a logistic model of the classifier's output (top probability, margin, entropy,
  the top label) and the measurements (face size, sharpness, brightness, contrast, |yaw|, |roll|),
  fitted on two sets that are never used to judge it:

  1. FER+ validation, each face under a condition drawn across its whole range
     (:func:`fervid.train.conditions.conditioned`, 20 % left clean), its yaw and roll from our
     detector's landmarks;
  2. ``../shared/data/realfaces``: 274 real photos labelled by eye, through ``fervid.annotate``
     as a user runs it (the largest face of each photo).

  Each set weighs half. The L2 penalty is chosen by 5-fold cross-validation on realfaces with
  whole identities in one fold (the log-loss on the held-out folds), from a small fixed grid.
* The default threshold is 0.5: a label fervid's conclusions use is more likely right than wrong.

It is judged elsewhere, once: ``benchmarks/reliability.py`` on the real-footage set
(tests/data/real_faces.csv) and FER+ test under the conditions.

    python benchmarks/readability.py --model ferplus-rule --json runs/readability/ferplus-rule.json
    python scripts/fit_reliability.py --model ferplus-rule --readability runs/readability/ferplus-rule.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from fervid.models.expression_weights import load_weights, resolve_model, sha256_file
from fervid.reliability import (
    LABEL_FEATURE,
    ReliabilityModel,
    expected_calibration_error,
    fit_logistic,
    reliability_path,
    risk_coverage,
    save_reliability,
)
from fervid.train.reliability_data import fer_faces, realfaces

#: Inputs of p_correct besides the top-label indicators.
FEATURES = ("top", "margin", "entropy", "log_face_px", "log_sharpness", "brightness", "contrast", "abs_yaw",
            "abs_roll")  # fmt: skip
#: Top labels that get an indicator feature (the ones with enough faces in both sets to learn from).
LABEL_FEATURES = ("neutral", "happy", "surprise", "sad", "angry")
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
FOLDS = 5
SEED = 0
THRESHOLD = 0.5


def _concat(a: dict, b: dict) -> dict:
    return {k: np.concatenate([np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)]) for k in a if k in b}


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def fit(model: str, shared: Path, readability: Path, cache: Path) -> tuple[ReliabilityModel, dict]:
    console = Console()
    path = resolve_model(model)
    _, cfg = load_weights(model, verify=False)
    sweep = json.loads(readability.read_text())
    if sweep["sha256"] != sha256_file(path):
        raise SystemExit(f"{readability}: measured for another model (sha256 {sweep['sha256'][:12]}…)")
    limits = sweep["limits"]
    minimum = {k: float(limits[k]) for k in ("face_px", "sharpness", "brightness", "contrast") if limits.get(k)}
    yaw_limit = limits.get("abs_yaw") or limits.get("abs_yaw_synthetic")
    maximum = {"abs_yaw": float(yaw_limit)} if yaw_limit else {}

    console.print("FER+ validation under conditions ...")
    fer_p, fer_m, fer_y = fer_faces(model, shared, "val", SEED, cache)
    console.print("realfaces through fervid.annotate ...")
    real_p, real_m, real_y, identity = realfaces(model, shared)
    features = (*FEATURES, *(LABEL_FEATURE + c for c in LABEL_FEATURES if c in cfg.classes))
    probs = np.concatenate([fer_p, real_p])
    measures = _concat(fer_m, real_m)
    correct = np.concatenate([fer_y, real_y])
    is_real = np.r_[np.zeros(len(fer_y), bool), np.ones(len(real_y), bool)]
    weights = np.where(is_real, 0.5 / is_real.sum(), 0.5 / (~is_real).sum())

    # L2 by grouped cross-validation on realfaces (FER faces always in the fit)
    groups = pd.factorize(identity)[0]
    fold_of = np.random.default_rng(SEED).permutation(groups.max() + 1)[groups] % FOLDS
    cv = {}
    for l2 in L2_GRID:
        held = np.zeros(len(real_y))
        for fold in range(FOLDS):
            train = np.r_[np.ones(len(fer_y), bool), fold_of != fold]
            part = fit_logistic(probs[train], {k: v[train] for k, v in measures.items()}, correct[train], features,
                                weights[train], l2, cfg.classes)  # fmt: skip
            held_out = np.flatnonzero(is_real)[fold_of == fold]
            held[fold_of == fold] = _model(part, path, minimum, maximum, cfg.classes).p_correct(
                probs[held_out], {k: v[held_out] for k, v in measures.items()}
            )
        cv[l2] = {"log_loss": _log_loss(held, real_y), "aurc": risk_coverage(held, real_y)[2],
                  "ece": expected_calibration_error(held, real_y)}  # fmt: skip
        console.print(f"l2 {l2:g}: realfaces out of fold log-loss {cv[l2]['log_loss']:.4f}, AURC {cv[l2]['aurc']:.4f}, "
                      f"ECE {cv[l2]['ece']:.3f}")  # fmt: skip
    best = min(cv, key=lambda k: cv[k]["log_loss"])
    final = fit_logistic(probs, measures, correct, features, weights, best, cfg.classes)
    reliability = _model(final, path, minimum, maximum, cfg.classes)
    fitted_p = reliability.p_correct(probs, measures)
    info = {
        "fitted_on": {"fer_plus_validation_conditioned": int(len(fer_y)), "realfaces": int(len(real_y)),
                      "seed": SEED, "weights": "each set half"},
        "readable_from": {"benchmark": "benchmarks/readability.py", "collapse_accuracy": sweep["collapse_accuracy"],
                          "clean_accuracy": sweep["clean_accuracy"], "limits": limits},
        "l2": best, "cross_validation": {str(k): v for k, v in cv.items()},
        "in_sample": {"fer_ece": expected_calibration_error(fitted_p[~is_real], fer_y),
                      "real_ece": expected_calibration_error(fitted_p[is_real], real_y)},
        "command": "python scripts/fit_reliability.py --model " + str(model),
    }  # fmt: skip
    return replace(reliability, info=info), cv


def _model(fit, path: Path, minimum: dict, maximum: dict, classes: tuple[str, ...]) -> ReliabilityModel:
    return ReliabilityModel(sha256_file(path), minimum, maximum, fit.features, fit.mean, fit.scale, fit.coef,
                            fit.intercept, THRESHOLD, classes)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--model", default="ferplus-rule")
    parser.add_argument("--readability", type=Path, required=True, help="benchmarks/readability.py --json output")
    parser.add_argument("--cache", type=Path, default=Path("runs/readability/ferplus_val_landmarks.npz"))
    parser.add_argument("--out", type=Path, default=None, help="default: beside the model")
    args = parser.parse_args()
    started = time.perf_counter()
    reliability, _ = fit(args.model, args.shared, args.readability, args.cache)
    out = args.out or reliability_path(resolve_model(args.model))
    save_reliability(out, reliability)
    Console().print(f"wrote {out} ({time.perf_counter() - started:.0f} s): limits min {reliability.minimum}, "
                    f"max {reliability.maximum}; l2 {reliability.info['l2']}")  # fmt: skip


if __name__ == "__main__":
    main()
