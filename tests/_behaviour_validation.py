"""Issue 32's validation: fervid's head pose and blinks against the by-eye labels of tests/data/behaviour.

Each labelled clip or photo goes through ``fervid.annotate`` once (tables only, no identity), and the faces
table is compared with the labels:

* **head pose** (head_pose.csv): the labelled face is the faces-table row of its frame whose box overlaps
  the labelled box most (IoU >= 0.5); its ``yaw`` falls into a bin by :data:`YAW_EDGES` (|yaw| < 20°
  frontal, 20-60° three-quarter, > 60° profile; negative: the image's left), NaN into none;
* **blinks** (blinks.csv): each detected blink's onset is the frame of its ``start_s``; one within
  ±:data:`TOLERANCE` frames of a labelled onset is a hit, an unmatched one inside the fully inspected ranges
  (blinks_inspected.csv) a false positive.

Run as a script (``python tests/_behaviour_validation.py``) it prints both figures and every miss.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

LABELS = Path(__file__).resolve().parent / "data" / "behaviour"
MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
#: |yaw| bin edges in degrees: frontal below the first, three-quarter up to the second, profile above.
YAW_EDGES = (20.0, 60.0)
#: A detected blink onset within this many frames of a labelled one is a hit.
TOLERANCE = 2


def yaw_bin(yaw: float) -> str | None:
    """The label set's bin of a yaw in degrees (positive: the nose points to the image's right); None for NaN."""
    if not np.isfinite(yaw):
        return None
    size = "frontal" if abs(yaw) < YAW_EDGES[0] else "three_quarter" if abs(yaw) <= YAW_EDGES[1] else "profile"
    return size if size == "frontal" else f"{'left' if yaw < 0 else 'right'}_{size}"


@functools.cache
def faces_of(clip: str) -> pd.DataFrame:
    """The faces table fervid makes of ``../shared/media/<clip>`` (tables only, no identity), cached."""
    import fervid

    result = fervid.annotate(MEDIA / clip, video=False, report=False, plots=False, identity=False)
    return result.faces


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area - inter, 1e-9)


def pose_results() -> pd.DataFrame:
    """Every head-pose label with the matched face's ``yaw``, ``pitch``, ``pose_source`` and predicted bin."""
    labels = pd.read_csv(LABELS / "head_pose.csv")
    rows = []
    for label in labels.itertuples():
        faces = faces_of(label.clip)
        here = faces[faces["frame"] == label.frame]
        box = np.array([label.x1, label.y1, label.x2, label.y2], dtype=np.float64)
        overlap = _iou(box, here[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)) if len(here) else np.zeros(0)
        found = here.iloc[int(overlap.argmax())] if len(here) and overlap.max() >= 0.5 else None
        yaw = float(found["yaw"]) if found is not None else float("nan")
        rows.append({"clip": label.clip, "frame": label.frame, "yaw_bin": label.yaw_bin, "note": label.note,
                     "matched": found is not None, "yaw": yaw,
                     "pitch": float(found["pitch"]) if found is not None else float("nan"),
                     "pose_source": str(found["pose_source"]) if found is not None else "",
                     "predicted": yaw_bin(yaw)})  # fmt: skip
    return pd.DataFrame(rows)


def blink_results() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(labels with ``hit``, detected onsets in the inspected ranges with ``hit``) over every labelled clip."""
    from fervid.behaviour.blinks import detect_blinks

    labels = pd.read_csv(LABELS / "blinks.csv")
    inspected = pd.read_csv(LABELS / "blinks_inspected.csv")
    found_rows = []
    for clip in labels["clip"].unique():
        faces = faces_of(clip)
        frame_at = dict(zip(faces["time_s"].round(6), faces["frame"]))
        span = inspected[inspected["clip"] == clip].iloc[0]
        for blink in detect_blinks(faces).itertuples():
            onset = int(frame_at[round(blink.start_s, 6)])
            if span.first_frame <= onset <= span.last_frame:
                found_rows.append({"clip": clip, "onset_frame": onset, "duration_s": blink.duration_s})
    found = pd.DataFrame(found_rows, columns=["clip", "onset_frame", "duration_s"])
    used: set[int] = set()
    hits = []
    for label in labels.itertuples():
        near = found[(found["clip"] == label.clip) & ((found["onset_frame"] - label.onset_frame).abs() <= TOLERANCE)]
        match = next((i for i in near.index if i not in used), None)
        if match is not None:
            used.add(match)
        hits.append(match is not None)
    return labels.assign(hit=hits), found.assign(hit=[i in used for i in found.index])


def f1(labels: pd.DataFrame, found: pd.DataFrame) -> float:
    recall = labels["hit"].mean() if len(labels) else 0.0
    precision = found["hit"].mean() if len(found) else 0.0
    return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)


def main() -> int:
    pose = pose_results()
    right = pose["predicted"] == pose["yaw_bin"]
    print(f"head pose: {right.sum()}/{len(pose)} in the right yaw bin ({100 * right.mean():.1f} %), "
          f"bins |yaw| < {YAW_EDGES[0]:g} frontal, to {YAW_EDGES[1]:g} three-quarter, above profile")  # fmt: skip
    print(pose["pose_source"].value_counts().to_string())
    with pd.option_context("display.width", 200, "display.max_colwidth", 40):
        print(pose[~right].to_string())
    labels, found = blink_results()
    print(f"blinks: {labels['hit'].sum()}/{len(labels)} labels found, {found['hit'].sum()}/{len(found)} detections "
          f"right, F1 {f1(labels, found):.3f} (±{TOLERANCE} frames)")  # fmt: skip
    print(labels[~labels["hit"]].to_string())
    print(found[~found["hit"]].to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
