"""Robustness benchmark: expression accuracy on clean test faces and under what video does to faces.

Each model is evaluated on the FER+ and FER2013 splits (a model is scored on the classes a
split has; see ``fervid evaluate``), clean and under each condition of
:mod:`fervid.train.degrade` (low light with sensor noise, low contrast, gamma, Gaussian and
motion blur, a 16-24 px face, JPEG at quality 20, crop jitter). Degradations are drawn
with a fixed seed, so tables are comparable between runs and models. JPEG goes through a
real encoder (Pillow, quality 20), the rest through the batched tensor ops training uses.

Prints one table per model and split, and the mean over the conditions (the issue's
target: mean >= clean - 4 points). ``--markdown`` prints the model card's table instead.

    python benchmarks/robustness.py --shared ../shared --models ferplus fer2013 [--split test] [--limit 200]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from fervid.models.expression_weights import load_expression_model
from fervid.train.data import EVALUATION_SPLITS, ExpressionData, load_dataset
from fervid.train.degrade import DEGRADATIONS, quantize
from fervid.train.evaluate import Evaluation
from fervid.train.predict import predict_probs

JPEG_QUALITY = 20


def real_jpeg(images: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """Encode and decode each uint8 image with Pillow's JPEG encoder."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        out[i] = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))
    return out


def degraded_versions(images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Every condition applied to every image, seeded per condition (independent of the model)."""
    x = torch.from_numpy(images).float().unsqueeze(1) / 255.0
    versions = {"clean": images}
    for k, degradation in enumerate(DEGRADATIONS):
        if degradation.name == "jpeg":
            versions["jpeg"] = real_jpeg(images)
            continue
        gen = torch.Generator().manual_seed(seed * 1000 + k)
        y = quantize(degradation.apply(x, gen))
        versions[degradation.name] = (y[:, 0] * 255).round().to(torch.uint8).numpy()
    return versions


def evaluate_versions(model_name: str, data: ExpressionData, versions: dict[str, np.ndarray]) -> dict[str, dict]:
    loaded = load_expression_model(model_name, verify=False)
    net, cfg = loaded.model, loaded.config
    results = {}
    for name, images in versions.items():
        probs = predict_probs(net, cfg, images, "cpu")
        result = Evaluation.from_probs(data.labels, probs, cfg.classes, data.classes)
        results[name] = {"accuracy": result.accuracy, "macro_f1": result.macro_f1, "ece": result.ece}
    degraded = [r["accuracy"] for name, r in results.items() if name != "clean"]
    results["mean_degraded"] = {"accuracy": float(np.mean(degraded))}
    return results


def run(models: list[str], shared: Path, split: str, limit: int | None, seed: int) -> dict[str, dict[str, dict]]:
    """{model: {dataset: {condition: scores}}}, every model on every split whose classes it knows."""
    table: dict[str, dict[str, dict]] = {m: {} for m in models}
    for dataset, paths in EVALUATION_SPLITS.items():
        data = load_dataset(shared / paths[split], split)
        if limit:
            keep = np.random.default_rng(seed).permutation(len(data))[:limit]
            data = ExpressionData(data.images[keep], data.targets[keep], data.classes, [data.names[i] for i in keep])
        versions = degraded_versions(data.images, seed)
        for model in models:
            cfg = load_expression_model(model, verify=False).config
            if not set(data.classes) <= set(cfg.classes):
                continue
            table[model][dataset] = {"n": len(data), **evaluate_versions(model, data, versions)}
    return table


def print_tables(results: dict[str, dict[str, dict]], split: str) -> None:
    console = Console()
    for model, per_dataset in results.items():
        for dataset, rows in per_dataset.items():
            clean = rows["clean"]["accuracy"]
            table = Table(title=f"{model} on {dataset} {split} (n={rows['n']})")
            for column in ("condition", "accuracy", "vs clean", "macro-F1", "ECE"):
                table.add_column(column, justify="left" if column == "condition" else "right")
            for name, r in rows.items():
                if name in ("n", "mean_degraded"):
                    continue
                table.add_row(name, f"{r['accuracy']:.2%}", f"{100 * (r['accuracy'] - clean):+.1f}",
                              f"{r['macro_f1']:.3f}", f"{r['ece']:.3f}")  # fmt: skip
            mean = rows["mean_degraded"]["accuracy"]
            table.add_row("[bold]mean of conditions", f"[bold]{mean:.2%}", f"[bold]{100 * (mean - clean):+.1f}", "", "")
            console.print(table)


def markdown(results: dict[str, dict[str, dict]]) -> str:
    """One row per condition, one column per model and dataset: accuracy (change from clean)."""
    columns = [(m, d) for m, per in results.items() for d in per]
    names = ["clean", *(d.name for d in DEGRADATIONS), "mean_degraded"]
    lines = ["| condition | " + " | ".join(f"{m} on {d}" for m, d in columns) + " |",
             "|---|" + "---|" * len(columns)]  # fmt: skip
    for name in names:
        cells = []
        for m, d in columns:
            acc, clean = results[m][d][name]["accuracy"], results[m][d]["clean"]["accuracy"]
            cells.append(f"{acc:.2%}" if name == "clean" else f"{acc:.2%} ({100 * (acc - clean):+.1f})")
        label = "**mean of conditions**" if name == "mean_degraded" else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--models", nargs="+", default=["ferplus", "fer2013"], help="names or .pt paths")
    parser.add_argument("--split", choices=["val", "test"], default="test")
    parser.add_argument("--limit", type=int, default=None, help="evaluate on this many random faces per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--markdown", action="store_true", help="print the model card's table")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results = run(args.models, args.shared, args.split, args.limit, args.seed)
    if args.markdown:
        print(markdown(results), end="")
    else:
        print_tables(results, args.split)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
