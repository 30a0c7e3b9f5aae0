"""Which part of each face drives an expression model's reading of one video frame or photo.

Why: when a model misreads a face on real footage (Hamilton frame 240: two smiles in near profile
read as ``neutral``) the next step depends on the cause. Occlusion sensitivity answers it without
touching the model: a grey square (the crop's mean after normalisation) slides over the crop
exactly as ``annotate`` cuts it, and the chosen class's probability is recorded at each place. A
class that rises when one region is hidden says that region (a hand at the chin, a closed mouth)
is what argues against it. Prints per face, left to right in the frame: the label, the class's
probability, its highest with one square hidden, and the map's highest and lowest values and
where they are (crop pixels, y, x).
Writes a PNG with the crops as the model sees them above their maps (bright: the class rises
when that region is hidden). ``--reframe`` also prints each face's probability with its box
rescaled and shifted, to tell a framing problem from a model one.

    python scripts/occlusion_map.py ../shared/media/face_recognition/short_hamilton_clip.mp4 \
        --frame 240 --model ferplus --target happy --png occlusion.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fervid.align import box_transforms, crop_faces_rgb
from fervid.classify import ExpressionClassifier
from fervid.detect import FaceDetector
from fervid.io.errors import InputError
from fervid.io.images import read_image
from fervid.io.probe import probe
from fervid.io.video import VideoReader
from fervid.models.expression_input import prepare, probabilities

PATCH = 12  # crop pixels (of 48): about an eye, or the mouth
STRIDE = 4
#: ``--reframe``: the detector's box scaled by each factor, and shifted by each (x, y) fraction of its size.
REFRAME_SCALES = (0.8, 0.9, 1.0, 1.1, 1.25)
REFRAME_SHIFTS = ((0.0, 0.0), (0.1, 0.0), (-0.1, 0.0), (0.0, 0.1), (0.0, -0.1))


def read_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based) of a video, or the photo itself, as (H, W, 3) uint8 RGB, read as ``annotate``
    reads it (``fervid.io``: rotation and EXIF orientation applied); InputError with the reason otherwise."""
    media = probe(path)
    if media.kind != "video":
        return read_image(path)
    with VideoReader(path, info=media) as reader:
        for frame in reader:
            if frame.index == index:
                return frame.image
    raise InputError(path, f"has no frame {index}")


@torch.inference_mode()
def occlusion_maps(
    classifier: ExpressionClassifier, crops: torch.Tensor, target: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per crop: the model's probabilities (n, K), the highest of ``target``'s with one square hidden (n,),
    and (n, S, S) its mean probability over the squares that hide each pixel."""
    x = prepare(crops, classifier.config)
    size = x.shape[-1]
    probs = probabilities(classifier.model(x), classifier.config).numpy()
    places = [(y, x0) for y in range(0, size - PATCH + 1, STRIDE) for x0 in range(0, size - PATCH + 1, STRIDE)]
    maps = np.zeros((len(x), size, size))
    best = np.zeros(len(x))
    for i in range(len(x)):
        views = x[i].repeat(len(places), 1, 1, 1)
        for k, (y, x0) in enumerate(places):
            views[k, :, y : y + PATCH, x0 : x0 + PATCH] = x[i].mean()
        p = probabilities(classifier.model(views), classifier.config)[:, target].numpy()
        total, count = np.zeros((size, size)), np.zeros((size, size))
        for (y, x0), q in zip(places, p):
            total[y : y + PATCH, x0 : x0 + PATCH] += q
            count[y : y + PATCH, x0 : x0 + PATCH] += 1
        maps[i] = total / np.maximum(count, 1)
        best[i] = p.max()
    return probs, best, maps


@torch.inference_mode()
def reframed(classifier: ExpressionClassifier, frame: torch.Tensor, xyxy: np.ndarray) -> dict[tuple, np.ndarray]:
    """Per (scale, shift x, shift y): the model's probabilities (n, K) for each box, rescaled and shifted
    before the model's box framing cuts the crop (a model framed by its box, ``alignment`` "box")."""
    boxes = torch.from_numpy(xyxy).double()
    centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    out = {}
    for scale in REFRAME_SCALES:
        for dx, dy in REFRAME_SHIFTS:
            moved = centre + size * torch.tensor([dx, dy], dtype=torch.float64)
            box = torch.cat([moved - size * scale / 2, moved + size * scale / 2], dim=1)
            m = box_transforms(box, classifier.box_centre, classifier.box_size)
            index = torch.zeros(len(box), dtype=torch.long)
            crops = crop_faces_rgb(frame[None], index, m, classifier.config.input_size)
            x = prepare(crops, classifier.config)
            out[(scale, dx, dy)] = probabilities(classifier.model(x), classifier.config).numpy()
    return out


def picture(crops: torch.Tensor, classifier: ExpressionClassifier, maps: np.ndarray, zoom: int = 4) -> Image.Image:
    """Crops (normalised as the model sees them, stretched to 0-255) above their occlusion maps."""
    x = prepare(crops, classifier.config)[:, 0].numpy()
    lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    faces = np.concatenate(list((x - lo) / np.maximum(hi - lo, 1e-6)), axis=1)
    heat = np.concatenate(list(maps), axis=1)
    grid = np.kron(np.concatenate([faces, heat], axis=0), np.ones((zoom, zoom)))
    return Image.fromarray((grid * 255).clip(0, 255).astype(np.uint8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("media", type=Path, help="a video or a photo")
    parser.add_argument("--frame", type=int, default=0, help="frame index of a video (0 for a photo)")
    parser.add_argument("--model", default="ferplus")
    parser.add_argument("--target", default="happy", help="the class whose probability is mapped")
    parser.add_argument("--png", type=Path, help="write the crops and their maps here")
    parser.add_argument(
        "--reframe", action="store_true", help="also print p(target) with each box rescaled and shifted"
    )
    args = parser.parse_args(argv)
    try:
        image = read_frame(args.media, args.frame)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    classifier = ExpressionClassifier(args.model)
    if args.target not in classifier.classes:
        print(f"error: {args.model} has no class {args.target!r} ({', '.join(classifier.classes)})", file=sys.stderr)
        return 2
    target = classifier.classes.index(args.target)
    frame = torch.from_numpy(np.array(image))  # a photo decodes read-only; torch wants to own a writable array
    detections = FaceDetector()([frame])[0]
    if len(detections) == 0:
        print(f"{args.media} frame {args.frame}: no face found")
        return 0
    order = np.argsort(detections.xyxy[:, 0], kind="stable")
    crops = classifier.crops(frame[None], [detections])[torch.from_numpy(order)]
    probs, best, maps = occlusion_maps(classifier, crops, target)
    places = maps.reshape(len(maps), -1)
    for i, face in enumerate(order):
        high = tuple(int(v) for v in np.unravel_index(places[i].argmax(), maps.shape[1:]))
        low = tuple(int(v) for v in np.unravel_index(places[i].argmin(), maps.shape[1:]))
        box = ", ".join(f"{v:.0f}" for v in detections.xyxy[face])
        print(
            f"face at ({box}): {classifier.classes[int(probs[i].argmax())]}; p({args.target}) {probs[i, target]:.2f}; "
            f"one square hidden: up to "
            f"{best[i]:.2f}; map (mean over the squares hiding a pixel): up to {places[i].max():.2f} at {high}, "
            f"down to {places[i].min():.2f} at {low}"
        )
    if args.reframe:
        if classifier.config.alignment != "box":
            print(f"error: --reframe needs a model framed by its box; {args.model} uses {classifier.config.alignment}")
            return 2
        print(f"\np({args.target}) per face, left to right, with the box rescaled and shifted (fraction of its size):")
        for (scale, dx, dy), p in reframed(classifier, frame, detections.xyxy[order]).items():
            faces = " ".join(f"{classifier.classes[int(r.argmax())]} {r[target]:.2f}" for r in p)
            print(f"  scale {scale:.2f} shift ({dx:+.1f}, {dy:+.1f}): {faces}")
    if args.png is not None:
        picture(crops, classifier, maps).save(args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
