"""Fit the map from RetinaFace's faces to dlib's detector boxes, and measure its landmark error.

dlib's 68-point shape predictor was trained on boxes from dlib's HOG face detector, so fervid
places its RetinaFace faces in that framing before running it (:func:`fervid.landmarks68.dlib_boxes`).
This script measures the map on real faces and prints the constants stored there:

1. frames: every photo in ``../shared/media`` (pyfeat, face_recognition, dlib_faces, fer,
   facenet_pytorch, widerface) and frames sampled from four real clips;
2. both detectors on every frame: dlib's ``get_frontal_face_detector()`` (upsampled once, as
   dlib's examples run it) and fervid's ``FaceDetector`` (det_size 640, its default);
   faces are matched one to one by IoU >= 0.3;
3. for each candidate map, least squares on the matched faces: dlib's box centre is an
   offset from a reference point and its side a multiple of a face scale, both in units of
   that scale (closed form: the offset and ratio are sum(y * s) / sum(s * s));
4. the error that matters: the 68 points from dlib's detector and predictor end to end
   against the 68 points of the port on the mapped RetinaFace box, per face the mean point
   distance, in pixels and over the inter-ocular distance (outer eye corners, points 36 and
   45 of dlib's own points), as the mean and 90th percentile over faces. Held out: each
   source file's faces are scored with a map fitted on the other half of the sources
   (two folds by source), so a clip's many frames never score their own fit.

Run: ``python scripts/fit_landmark_framing.py`` (needs dlib-bin and ../shared; ~2 min on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from fervid.detect import FaceDetector
from fervid.geometry import box_iou_np
from fervid.landmarks68 import FRAMING, Framing, dlib_boxes
from fervid.models.shape_predictor_weights import cached_shape_predictor, packaged_shape_predictor_path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "media"
PHOTO_FOLDERS = ("pyfeat", "face_recognition", "dlib_faces", "fer", "facenet_pytorch", "widerface")
#: (clip, every n-th frame, at most this many frames)
CLIPS = (
    ("face_recognition/short_hamilton_clip.mp4", 6, 50),
    ("pyfeat/WolfgangLanger_Pexels.mp4", 12, 40),
    ("pyfeat/single_face.mp4", 10, 30),
    ("facenet_pytorch/video.mp4", 10, 12),
)
MIN_IOU = 0.3


def frames() -> list[tuple[str, np.ndarray]]:
    """(source, RGB frame) for the photos and the sampled clip frames."""
    out = []
    for folder in PHOTO_FOLDERS:
        for path in sorted((SHARED / folder).rglob("*.jpg")):
            out.append((str(path.relative_to(SHARED)), cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)))
    for clip, every, most in CLIPS:
        capture = cv2.VideoCapture(str(SHARED / clip))
        number = taken = 0
        while taken < most:
            ok, frame = capture.read()
            if not ok:
                break
            if number % every == 0:
                out.append((clip, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
                taken += 1
            number += 1
        capture.release()
    return out


@dataclass
class Matched:
    """Matched faces: dlib's box, RetinaFace's box and five points, the frame and its source."""

    dlib_box: np.ndarray  # (n, 4) left, top, right, bottom
    box: np.ndarray  # (n, 4) RetinaFace xyxy
    landmarks5: np.ndarray  # (n, 5, 2)
    image_index: np.ndarray  # (n,)
    source: list[str]


def match(images: list[tuple[str, np.ndarray]]) -> Matched:
    import dlib

    detector = dlib.get_frontal_face_detector()
    detections = FaceDetector(det_size=640).detect([image for _, image in images])
    rows: dict[str, list] = {"dlib_box": [], "box": [], "landmarks5": [], "image_index": [], "source": []}
    for i, ((source, image), found) in enumerate(zip(images, detections)):
        rects = detector(image, 1)
        if not rects or not len(found):
            continue
        reference = np.array([(r.left(), r.top(), r.right(), r.bottom()) for r in rects], np.float64)
        iou = box_iou_np(reference, found.xyxy)
        taken: set[int] = set()
        for d in np.argsort(-iou.max(axis=1)):  # greedy one-to-one, best pairs first
            candidates = [j for j in np.argsort(-iou[d]) if j not in taken and iou[d, j] >= MIN_IOU]
            if not candidates:
                continue
            j = candidates[0]
            taken.add(j)
            rows["dlib_box"].append(reference[d])
            rows["box"].append(found.xyxy[j])
            rows["landmarks5"].append(found.landmarks[j])
            rows["image_index"].append(i)
            rows["source"].append(source)
    return Matched(
        dlib_box=np.array(rows["dlib_box"], np.float64),
        box=np.array(rows["box"], np.float64),
        landmarks5=np.array(rows["landmarks5"], np.float64),
        image_index=np.array(rows["image_index"], np.int64),
        source=rows["source"],
    )


def fit(matched: Matched, rows: np.ndarray, reference: str, scale: str) -> Framing:
    """Least-squares framing constants for one choice of reference point and face scale."""
    probe = Framing(reference=reference, scale=scale, offset_x=0.0, offset_y=0.0, side=1.0)
    point, size = probe.reference_and_scale(matched.box[rows], matched.landmarks5[rows])
    box = matched.dlib_box[rows]
    centre = (box[:, :2] + box[:, 2:]) / 2
    side = ((box[:, 2] - box[:, 0]) + (box[:, 3] - box[:, 1])) / 2

    def ratio(y: np.ndarray) -> float:
        return float((y * size).sum() / (size * size).sum())

    return Framing(
        reference=reference,
        scale=scale,
        offset_x=ratio(centre[:, 0] - point[:, 0]),
        offset_y=ratio(centre[:, 1] - point[:, 1]),
        side=ratio(side),
    )


def landmark_errors(predictor, images, matched: Matched, mapped: np.ndarray, reference_points: np.ndarray):
    """(px, fraction of inter-ocular distance) per face: mean distance of the 68 points."""
    points = predictor.predict(images, mapped, matched.image_index).astype(np.float64)
    distance = np.linalg.norm(points - reference_points, axis=2).mean(axis=1)
    interocular = np.linalg.norm(reference_points[:, 36] - reference_points[:, 45], axis=1)
    return distance, distance / interocular


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, help="save/load the matched faces here (npz) to refit quickly")
    args = parser.parse_args()
    console = Console()
    images = frames()
    if args.cache and args.cache.exists():
        saved = np.load(args.cache, allow_pickle=False)
        matched = Matched(*(saved[k] for k in ("dlib_box", "box", "landmarks5", "image_index")), list(saved["source"]))
    else:
        matched = match(images)
        if args.cache:
            np.savez(args.cache, **{k: np.asarray(v) for k, v in vars(matched).items()})
    pictures = [image for _, image in images]
    sources = sorted(set(matched.source))
    console.print(f"{len(images)} frames, {len(matched.source)} matched faces from {len(sources)} sources")

    import dlib

    predictor = cached_shape_predictor().model
    reference_predictor = dlib.shape_predictor(str(packaged_shape_predictor_path()))
    reference_points = np.array(
        [
            [(p.x, p.y) for p in reference_predictor(pictures[i], dlib.rectangle(*map(int, box))).parts()]
            for box, i in zip(matched.dlib_box, matched.image_index)
        ],
        np.float64,
    )
    fold = np.array([zlib.crc32(s.encode()) % 2 for s in matched.source])
    table = Table(title="68 points on mapped RetinaFace faces vs dlib's detector + predictor (per face mean)")
    columns = ("reference point", "scale", "held-out px mean", "px p90", "IOD mean", "IOD p90", "in-sample px mean")
    for column in columns:
        table.add_column(column, justify="right")
    results = {}
    for reference in ("box", "landmarks"):
        for scale in ("box", "eye_mouth", "landmarks"):
            held_out = np.zeros((len(fold), 4))
            for k in (0, 1):
                framing = fit(matched, fold != k, reference, scale)
                mapped = dlib_boxes(matched.box, matched.landmarks5, framing)
                px, iod = landmark_errors(predictor, pictures, matched, mapped, reference_points)
                held_out[fold == k, 0], held_out[fold == k, 1] = px[fold == k], iod[fold == k]
            framing = fit(matched, np.ones(len(fold), bool), reference, scale)
            mapped = dlib_boxes(matched.box, matched.landmarks5, framing)
            px, iod = landmark_errors(predictor, pictures, matched, mapped, reference_points)
            results[(reference, scale)] = (framing, held_out, px, iod)
            table.add_row(
                reference,
                scale,
                f"{held_out[:, 0].mean():.2f}",
                f"{np.percentile(held_out[:, 0], 90):.2f}",
                f"{held_out[:, 1].mean():.3f}",
                f"{np.percentile(held_out[:, 1], 90):.3f}",
                f"{px.mean():.2f}",
            )
    console.print(table)
    best = min(results, key=lambda key: results[key][1][:, 0].mean())
    framing, held_out, px, iod = results[best]
    console.print(f"best held out: reference {best[0]}, scale {best[1]}: {framing}")
    stored = dlib_boxes(matched.box, matched.landmarks5, FRAMING)
    px, iod = landmark_errors(predictor, pictures, matched, stored, reference_points)
    console.print(
        f"stored FRAMING {FRAMING}: in-sample per-face mean {px.mean():.2f} px (p90 {np.percentile(px, 90):.2f}), "
        f"{iod.mean():.3f} IOD (p90 {np.percentile(iod, 90):.3f}) over {len(px)} faces"
    )
    unmapped, unmapped_iod = landmark_errors(predictor, pictures, matched, matched.box, reference_points)
    console.print(
        f"for scale, RetinaFace boxes used as they are: mean {unmapped.mean():.2f} px, {unmapped_iod.mean():.3f} IOD"
    )
    for source in sources:
        rows = np.array([s == source for s in matched.source])
        console.print(f"  {source}: {rows.sum()} faces, mean {px[rows].mean():.2f} px, {iod[rows].mean():.3f} IOD")


if __name__ == "__main__":
    sys.exit(main())
