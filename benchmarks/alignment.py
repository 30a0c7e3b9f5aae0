"""Which way of framing a detected face reproduces the training crops: box or five-landmark alignment.

An expression model learned from its dataset's crops, so ``annotate`` should cut faces out of a
video the way the dataset's faces were cut. FER's images are the answer key: detect the face in
each one (upscaled and padded, as ``fervid.train.template`` does), frame it again with each
method, and measure

* **framing error**: how far the re-framed crop is from the image itself, as the RMS distance
  (in 48x48 crop pixels) between where an 8x8 grid of crop points lands and where it should
  (the identity), by head turn (|nose offset from the eyes' midpoint| / eye distance);
* **accuracy** of a model on the re-framed crops, next to its accuracy on the images as they are.

The templates are fitted on the same faces (medians), so the table compares the methods at
their best. The baseline is the five-landmark alignment annotate used before ``box`` existed.

    python benchmarks/alignment.py --shared ../shared [--model ferplus] [--limit N] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from fervid.align import box_transforms, crop_faces, invert_similarity, similarity_transforms
from fervid.detect import FaceDetector
from fervid.devices import cpu_name
from fervid.models.expression_input import prepare, probabilities
from fervid.models.expression_weights import ExpressionConfig, load_expression_model
from fervid.train.data import load_dataset
from fervid.train.pose import head_turn
from fervid.train.template import PAD, UPSCALE, detect_dataset_faces, fit_box_template, fit_template

#: Head-turn bins: |nose x - eyes' mid x| / eye distance (0 frontal; ~0.3 is a clear three-quarter view).
TURN_BINS = ((0.0, 0.15, "frontal"), (0.15, 0.3, "turned"), (0.3, np.inf, "3/4, profile"))
_GRID = np.stack(np.meshgrid(np.linspace(0.5, 47.5, 8), np.linspace(0.5, 47.5, 8)), axis=-1).reshape(-1, 2)


#: Head-turn bins over which ``box_size_by_turn`` takes its medians.
SIZE_TURN_EDGES = (0.0, 0.15, 0.3, 0.5, 0.8, np.inf)


def box_size_by_turn(boxes: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """Per face, a box template size that follows head turn: the median ``sqrt(width * height)`` of the
    faces in each turn bin, interpolated linearly between the bins' median turns.

    Why: our detector's box of a turned FER face is smaller, relative to FER's crop, than a frontal
    one's (about 43 px frontal, 37-39 px past a turn of 0.5), so one size zooms turned faces in.
    This row measures what a turn-dependent size would gain (it is not what ``annotate`` uses).
    """
    side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    knots, values = [], []
    for lo, hi in zip(SIZE_TURN_EDGES[:-1], SIZE_TURN_EDGES[1:]):
        members = (turn >= lo) & (turn < hi)
        if members.any():
            knots.append(float(np.median(turn[members])))
            values.append(float(np.median(side[members])))
    return np.interp(turn, knots, values).astype(np.float32)


def framing_error(frame_to_crop: torch.Tensor) -> np.ndarray:
    """Per face, the RMS distance (px) between where an 8x8 grid of crop pixels samples the image
    and where the dataset's own crop has them (the same place: the image is the crop)."""
    m = invert_similarity(frame_to_crop.double()).numpy()
    mapped = _GRID @ m[:, :, :2].transpose(0, 2, 1) + m[:, None, :, 2]
    return np.sqrt(((mapped - _GRID) ** 2).sum(-1).mean(1))


@torch.inference_mode()
def reframed_accuracy(
    images: np.ndarray,
    labels: np.ndarray,
    transforms: dict[str, torch.Tensor],
    net: nn.Module,
    config: ExpressionConfig,
) -> dict[str, np.ndarray]:
    """Per-face correctness (bool) of the model on the images as they are and re-framed by each method.

    The transforms map 48 px image coordinates to 48 px crop coordinates; ``prepare`` resizes the
    crops to the model's input size, as it does for the images as they are."""
    correct: dict[str, list[np.ndarray]] = {"as is": [], **{name: [] for name in transforms}}
    for start in range(0, len(images), 256):
        chunk = slice(start, start + 256)
        x = torch.from_numpy(images[chunk]).float().unsqueeze(1)
        y = labels[chunk]
        correct["as is"].append(_predict(net, config, x) == y)
        big = F.interpolate(x, scale_factor=UPSCALE, mode="bicubic", align_corners=False).clamp(0, 255)
        big = F.pad(big, (PAD,) * 4, mode="replicate")
        index = torch.arange(len(x))
        for name, m in transforms.items():
            to_padded = m[chunk].clone()
            # frame_to_crop of 48 px image coordinates -> of the upscaled, padded image's coordinates
            to_padded[:, :, :2] /= UPSCALE
            to_padded[:, :, 2] -= (to_padded[:, :, :2] * PAD).sum(-1)
            crops = crop_faces(big, index, to_padded, images.shape[-1])
            correct[name].append(_predict(net, config, crops) == y)
    return {name: np.concatenate(parts) for name, parts in correct.items()}


def _predict(net: nn.Module, config: ExpressionConfig, crops: torch.Tensor) -> np.ndarray:
    return probabilities(net(prepare(crops, config)), config).argmax(1).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--split", default="data/ferplus/FER2013Valid.zip", help="dataset under --shared")
    parser.add_argument("--model", default="ferplus", help="model scored on the re-framed crops")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.shared / args.split
    if not path.exists():
        print(f"error: {path}: no such dataset", file=sys.stderr)
        return 1
    data = load_dataset(path)
    loaded = load_expression_model(args.model)
    net, config = loaded.model, loaded.config
    if config.classes != data.classes:
        print(f"error: {args.model} has classes {config.classes}, {path.name} {data.classes}", file=sys.stderr)
        return 1
    images, labels = data.images, data.labels
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    started = time.perf_counter()
    landmarks, boxes = detect_dataset_faces(images, FaceDetector(det_size=None, score_threshold=0.9))
    found = ~np.isnan(landmarks).any(axis=(1, 2))
    images, labels, landmarks, boxes = images[found], labels[found], landmarks[found], boxes[found]
    template = fit_template(landmarks)
    centre, size = fit_box_template(boxes)
    turn = head_turn(landmarks)
    sizes = torch.from_numpy(box_size_by_turn(boxes, turn))
    transforms = {
        "landmarks": similarity_transforms(torch.from_numpy(landmarks), torch.from_numpy(template)),
        "box": box_transforms(torch.from_numpy(boxes), torch.from_numpy(centre), size),
        "box, size by head turn": box_transforms(torch.from_numpy(boxes), torch.from_numpy(centre), sizes),
    }
    bins = [(name, (turn >= lo) & (turn < hi)) for lo, hi, name in TURN_BINS]
    correct = reframed_accuracy(images, labels, transforms, net, config)
    console = Console()
    console.print(
        f"{path.name}: {found.sum()} of {len(found)} faces found; box template centre "
        f"({centre[0]:.2f}, {centre[1]:.2f}), size {size:.2f} px; {cpu_name()}, {time.perf_counter() - started:.0f} s"
    )
    table = Table(title="Framing error (RMS crop px; lower is better) and accuracy on re-framed crops")
    table.add_column("method")
    for name, mask in bins:
        table.add_column(f"{name} n={int(mask.sum())}", justify="right")
    table.add_column("all", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column(f"{args.model} acc.", justify="right")
    baseline = framing_error(transforms["landmarks"]).mean()
    table.add_row("as is", *["0.00"] * (len(bins) + 1), "", f"{correct['as is'].mean():.2%}")
    for name, m in transforms.items():
        err = framing_error(m)
        table.add_row(
            name, *[f"{err[mask].mean():.2f}" for _, mask in bins], f"{err.mean():.2f}",
            f"{err.mean() / baseline:.2f}", f"{correct[name].mean():.2%}",
        )  # fmt: skip
    console.print(table)
    console.print("ratio: mean framing error against the five-landmark alignment (the baseline)")
    console.print("as is: the images themselves (the dataset's own crops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
