"""Where an expression model stops reading faces: accuracy as darkness, blur, smallness and head turn grow.

The ``readable`` rule of :mod:`fervid.reliability` comes from this sweep, not from taste. Each
condition of the robustness benchmark is applied to FER+ validation faces at growing strength
(FER+'s PNGs keep FER2013's original pixels; the FER2013 JPEGs in ../shared are equalised per
image, so their brightness and contrast say nothing). At each strength the script records the
model's accuracy and the median of the measurement annotate takes of the same crop
(:mod:`fervid.quality`):

* **darkness**: brightness times ``k`` with sensor noise, as ``fervid.train.degrade.low_light``
  (measured: ``contrast`` and ``brightness``);
* **blur**: Gaussian blur of growing sigma at 48 px (measured: ``sharpness``);
* **small face**: down to ``m`` px and back up, as annotate upsamples a small face (measured:
  ``face_px``, the eye distance the face had, ``17.45 * m / 48`` for FER's framing);
* **head turn**: FER+'s own faces binned by the ``yaw`` our detector's landmarks give them
  (measured once, cached under ``runs/``); FER holds few faces past 40 degrees, so the same faces
  are also turned synthetically, wrapped round a cylinder (``fervid.train.augment.cylinder_yaw``,
  whose far side goes out of view as a real profile's does), and measured as annotate measures
  them: the median landmark yaw of 600 turned faces per step (not the turn applied, which five
  landmarks see foreshortened).

**Collapse.** A condition's limit is where accuracy falls to the midpoint between clean
accuracy and chance (the majority class's share): below it the model is closer to guessing
than to reading. The strength is interpolated between the sweep's steps, and the limit is the
measurement's median there. ``--json`` writes the curves and limits (the model card's table
and :mod:`fervid.reliability`'s defaults come from it), ``--plot`` draws them.

    python benchmarks/readability.py --shared ../shared --model ferplus --json runs/readability.json --plot x.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fervid.models.expression_weights import load_expression_model, resolve_model, sha256_file
from fervid.quality import crop_measures, landmark_measures
from fervid.train.conditions import FER_EYE_PX, STRENGTHS, apply, dataset_landmarks
from fervid.train.data import EVALUATION_SPLITS, ExpressionData, load_dataset
from fervid.train.predict import predict_probs
from fervid.train.reliability_data import model_labels

YAW_EDGES = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 90.0)
#: Bins of real faces with fewer faces than this are shown but not used for a limit.
MIN_BIN = 30
#: Where the validation faces' landmarks are kept once measured (the detector takes minutes on a CPU).
LANDMARK_CACHE = Path("runs/readability/ferplus_val_landmarks.npz")
#: Turned faces whose landmarks are measured per turn (the detector is the slow part).
TURN_SAMPLE = 600


def _as_uint8(x: torch.Tensor) -> np.ndarray:
    return (x[:, 0] * 255).round().to(torch.uint8).numpy()


def _measured_turn(images: np.ndarray, cache: Path, sample: int = TURN_SAMPLE) -> float:
    """Median |yaw| our detector's landmarks give a sample of the turned faces (the turn applied is not what
    annotate measures: five landmarks see a cylinder's turn foreshortened)."""
    pick = np.random.default_rng(0).permutation(len(images))[:sample]
    yaw = np.abs(head_yaw(images[np.sort(pick)], cache))
    return float(np.nanmedian(yaw)) if np.isfinite(yaw).any() else float("nan")


def head_yaw(images: np.ndarray, cache: Path) -> np.ndarray:
    """Each face's yaw (degrees) from our detector's landmarks, NaN where none is found."""
    landmarks = dataset_landmarks(images, cache)
    yaw = landmark_measures(np.nan_to_num(landmarks))["yaw"].astype(np.float64)
    yaw[np.isnan(landmarks).any(axis=(1, 2))] = np.nan
    return yaw


def _accuracy(labels: np.ndarray, probs: np.ndarray, model_classes, data_classes) -> float:
    """Accuracy on the faces of the classes the model names (a seven-class model leaves FER+'s contempt out:
    :func:`~fervid.train.reliability_data.model_labels`)."""
    truth = model_labels(np.asarray(data_classes)[labels], model_classes)
    known = truth >= 0
    return float((probs[known].argmax(axis=1) == truth[known]).mean()) if known.any() else float("nan")


def sweep(model: str, shared: Path, limit: int | None, seed: int, cache: Path = LANDMARK_CACHE) -> dict:
    """Curves and limits for one model on FER+ validation (see the module docstring)."""
    data = load_dataset(shared / EVALUATION_SPLITS["ferplus"]["val"], "val")
    if limit:
        keep = np.sort(np.random.default_rng(seed).permutation(len(data))[:limit])
        data = ExpressionData(data.images[keep], data.targets[keep], data.classes, [data.names[i] for i in keep])
    loaded = load_expression_model(model, verify=False)
    net, cfg = loaded.model, loaded.config
    labels = data.labels
    known = model_labels(np.asarray(data.classes)[labels], cfg.classes) >= 0  # the faces accuracy is counted on
    chance = float(np.bincount(labels[known]).max() / known.sum())
    x = torch.from_numpy(data.images).float().unsqueeze(1) / 255.0

    def score(images: np.ndarray) -> tuple[float, dict[str, float]]:
        probs = predict_probs(net, cfg, images, "cpu")
        measured = crop_measures(torch.from_numpy(images).float().unsqueeze(1))
        return _accuracy(labels, probs, cfg.classes, data.classes), {
            k: float(np.median(np.asarray(v)[known])) for k, v in measured.items()
        }

    curves: dict[str, list[dict]] = {}
    for condition, strengths in STRENGTHS.items():
        name = "synthetic turn" if condition == "turn" else condition
        rows = []
        for strength in strengths:
            images = _as_uint8(apply(x, condition, strength, seed))
            accuracy, measured = score(images)
            if name == "small face":
                measured["face_px"] = FER_EYE_PX * strength / 48
            if name == "synthetic turn":  # in the units annotate measures: the landmarks' yaw of the turned faces
                measured["yaw"] = _measured_turn(images, cache.with_name(f"{cache.stem}_turn{int(strength)}.npz"))
            rows.append({"strength": strength, "accuracy": accuracy, **measured})
        curves[name] = rows
    yaw = np.abs(head_yaw(data.images, cache))
    probs = predict_probs(net, cfg, data.images, "cpu")
    rows = []
    for low, high in zip(YAW_EDGES[:-1], YAW_EDGES[1:]):
        inside = (yaw >= low) & (yaw < high) & known
        n = int(inside.sum())
        accuracy = _accuracy(labels[inside], probs[inside], cfg.classes, data.classes) if n else float("nan")
        rows.append({"strength": (low + high) / 2, "range": [low, high], "n": n, "accuracy": accuracy,
                     "yaw": float(np.median(yaw[inside])) if inside.any() else float("nan")})  # fmt: skip
    curves["head turn"] = rows
    clean = curves["blur"][0]["accuracy"]
    floor = chance + 0.5 * (clean - chance)
    limits = {
        "contrast": _limit(curves["darkness"], "contrast", floor),
        "brightness": _limit(curves["darkness"], "brightness", floor),
        "sharpness": _limit(curves["blur"], "sharpness", floor),
        "face_px": _limit(curves["small face"], "face_px", floor),
        "abs_yaw": _limit([r for r in curves["head turn"] if r["n"] >= MIN_BIN], "yaw", floor),
        "abs_yaw_synthetic": _limit(curves["synthetic turn"], "yaw", floor),
    }
    path = resolve_model(model)
    return {"model": str(model), "sha256": sha256_file(path), "data": "FER+ validation", "n": len(data),
            "clean_accuracy": clean, "chance": chance, "collapse_accuracy": floor, "curves": curves,
            "limits": limits}  # fmt: skip


def _limit(rows: list[dict], key: str, floor: float) -> float | None:
    """The measurement where accuracy first crosses ``floor``, interpolated between steps (None: never)."""
    for before, after in zip(rows[:-1], rows[1:]):
        if before["accuracy"] >= floor > after["accuracy"]:
            t = (before["accuracy"] - floor) / (before["accuracy"] - after["accuracy"])
            return float(before[key] + t * (after[key] - before[key]))
    return None


def print_table(result: dict) -> None:
    console = Console()
    for name, rows in result["curves"].items():
        table = Table(title=f"{result['model']}: {name} (clean {result['clean_accuracy']:.1%}, "
                      f"collapse below {result['collapse_accuracy']:.1%})")  # fmt: skip
        keys = [k for k in rows[0] if k not in ("range",)]
        for key in keys:
            table.add_column(key, justify="right")
        for row in rows:
            table.add_row(*(f"{row[k]:.3g}" if isinstance(row[k], float) else str(row[k]) for k in keys))
        console.print(table)
    console.print({k: (round(v, 2) if v is not None else None) for k, v in result["limits"].items()})


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = [("darkness", "contrast", "crop contrast (grey std)", "contrast"),
              ("blur", "sharpness", "crop sharpness (log)", "sharpness"),
              ("small face", "face_px", "eye distance (px)", "face_px"),
              ("head turn", "yaw", "|yaw| (degrees), FER's own faces", "abs_yaw"),
              ("synthetic turn", "yaw", "|yaw| measured on turned faces", "abs_yaw_synthetic")]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(17, 3.4), sharey=True)
    for ax, (name, key, label, limit_key) in zip(axes, panels):
        rows = [r for r in result["curves"][name] if name != "head turn" or r["n"] >= MIN_BIN]
        ax.plot([r[key] for r in rows], [r["accuracy"] for r in rows], "o-", color="#1f77b4")
        ax.axhline(result["collapse_accuracy"], color="#d62728", linestyle="--", linewidth=1)
        ax.axhline(result["chance"], color="#7f7f7f", linestyle=":", linewidth=1)
        limit = result["limits"][limit_key]
        if limit is not None:
            ax.axvline(limit, color="#d62728", linewidth=1)
        if key == "sharpness":
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (FER+ validation)")
    fig.suptitle(f"{result['model']}: accuracy against each measurement; red: collapse level and limit", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--model", default="ferplus", help="a shipped model name or a .pt path")
    parser.add_argument("--limit", type=int, default=None, help="use this many random validation faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the curves and limits here")
    parser.add_argument("--plot", type=Path, default=None, help="draw the curves to this PNG")
    parser.add_argument("--cache", type=Path, default=LANDMARK_CACHE, help="the faces' landmark cache")
    args = parser.parse_args()
    started = time.perf_counter()
    result = sweep(args.model, args.shared, args.limit, args.seed, args.cache)
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(result, args.plot)
    Console().print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
