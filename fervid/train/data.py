"""Readers for the public expression datasets, in the layouts researchers actually have.

Each reader returns an :class:`ExpressionData`: all images as one uint8 array (they are
48x48, so a whole split fits in memory and augmentation can run batched on the device),
soft targets (a probability distribution per image), and hard labels for accuracy.

Supported layouts:
- FER2013, Kaggle-style folders ``split/<class>/*.jpg`` (a directory or a .zip);
- FER2013, the original ``fer2013.csv`` (``emotion, pixels, Usage``);
- FER+, Microsoft's layout ``FER2013Train/label.csv`` + PNGs (a directory or a .zip).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from fervid.types import EMOTIONS

FER2013_CLASSES: tuple[str, ...] = EMOTIONS[:7]
FERPLUS_CLASSES: tuple[str, ...] = EMOTIONS
#: The shipped models' validation and test splits in the public layouts, relative to a shared folder
#: (``../shared`` beside the checkout): one table for the card's script, the robustness benchmark and the tests.
EVALUATION_SPLITS: dict[str, dict[str, str]] = {
    "ferplus": {"val": "data/ferplus/FER2013Valid.zip", "test": "data/ferplus/FER2013Test.zip"},
    "fer2013": {"val": "data/fer2013/validation.zip", "test": "data/fer2013/test.zip"},
}
#: FER+ label.csv vote columns, in file order, mapped to our class names (None: dropped).
FERPLUS_COLUMNS: tuple[str | None, ...] = (
    "neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt", None, None,
)  # fmt: skip
_KAGGLE_ALIASES = {"anger": "angry", "happiness": "happy", "sadness": "sad", "surprised": "surprise"}
_CSV_USAGE = {"train": "Training", "training": "Training", "val": "PublicTest", "validation": "PublicTest",
              "publictest": "PublicTest", "test": "PrivateTest", "privatetest": "PrivateTest"}  # fmt: skip


class DatasetLayoutError(ValueError):
    """The path does not hold a dataset in a layout we read; the message says what was expected and found."""


@dataclass
class ExpressionData:
    """One split of an expression dataset, held in memory."""

    images: np.ndarray  # (N, 48, 48) uint8 grayscale
    targets: np.ndarray  # (N, K) float32, rows sum to 1 (one-hot for hard-labelled data)
    classes: tuple[str, ...]
    names: list[str]  # file name (or csv row) per image, for error analysis
    dataset: str = ""  # which labelling: "FER2013" (Kaggle's labels) or "FER+" (10 annotators' votes)
    #: (N,) bool for vote-labelled data: the image has a clear majority, so FER+'s own test protocol
    #: scores it (:func:`ferplus_majority`); None for hard-labelled data, where every image counts.
    majority: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.targets) or len(self.names) != len(self.images):
            raise ValueError("images, targets and names must have one row per image")
        if self.majority is not None and len(self.majority) != len(self.images):
            raise ValueError("majority must have one entry per image")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> np.ndarray:
        """Majority (argmax) label per image."""
        return self.targets.argmax(axis=1)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))


class _Source:
    """A directory or a zip archive, read the same way."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path) if path.is_file() and zipfile.is_zipfile(path) else None
        if self._zip is None and not path.is_dir():
            raise DatasetLayoutError(f"{path}: expected a directory or a .zip archive")

    def files(self) -> list[PurePosixPath]:
        if self._zip is not None:
            return [PurePosixPath(n) for n in self._zip.namelist() if not n.endswith("/")]
        return [PurePosixPath(p.relative_to(self.path).as_posix()) for p in self.path.rglob("*") if p.is_file()]

    def read(self, name: PurePosixPath) -> bytes:
        if self._zip is not None:
            return self._zip.read(str(name))
        return (self.path / name).read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _decode_gray48(data: bytes, name: str) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        gray = img.convert("L")
        if gray.size != (48, 48):
            gray = gray.resize((48, 48), Image.Resampling.BILINEAR)
        return np.asarray(gray, dtype=np.uint8)


def _is_image(name: PurePosixPath) -> bool:
    return name.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"}


def load_fer2013_folders(path: str | Path) -> ExpressionData:
    """Kaggle-style ``[split/]<class>/<image>`` folders or zip (e.g. ``fer2013/train.zip``)."""
    path = Path(path)
    source = _Source(path)
    try:
        images, labels, names = [], [], []
        found_dirs: set[str] = set()
        for name in sorted(source.files()):
            if not _is_image(name) or len(name.parts) < 2:
                continue
            cls = name.parts[-2].lower()
            cls = _KAGGLE_ALIASES.get(cls, cls)
            found_dirs.add(cls)
            if cls not in FER2013_CLASSES:
                continue
            images.append(_decode_gray48(source.read(name), str(name)))
            labels.append(FER2013_CLASSES.index(cls))
            names.append(str(name))
    finally:
        source.close()
    if not images:
        raise DatasetLayoutError(
            f"{path}: expected FER2013 folders <class>/*.jpg with classes {', '.join(FER2013_CLASSES)}; "
            f"found {sorted(found_dirs)[:10] or 'no image folders'}"
        )
    targets = np.eye(len(FER2013_CLASSES), dtype=np.float32)[labels]
    return ExpressionData(np.stack(images), targets, FER2013_CLASSES, names, "FER2013")


def load_fer2013_csv(path: str | Path, split: str = "train") -> ExpressionData:
    """The original ``fer2013.csv`` (emotion, pixels, Usage); ``split`` picks the Usage rows."""
    path = Path(path)
    usage = _CSV_USAGE.get(split.lower())
    if usage is None:
        raise DatasetLayoutError(f"unknown split {split!r}: use one of {sorted(_CSV_USAGE)}")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"emotion", "pixels"} <= set(reader.fieldnames):
            raise DatasetLayoutError(
                f"{path}: expected fer2013.csv columns emotion,pixels,Usage; found {reader.fieldnames}"
            )
        images, labels, names = [], [], []
        for i, row in enumerate(reader):
            if row.get("Usage", usage) != usage:
                continue
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            if pixels.size != 48 * 48:
                raise DatasetLayoutError(f"{path}: row {i + 2} has {pixels.size} pixels, expected 2304")
            images.append(pixels.reshape(48, 48))
            labels.append(int(row["emotion"]))
            names.append(f"row{i + 2}")
    if not images:
        raise DatasetLayoutError(f"{path}: no rows with Usage={usage}")
    targets = np.eye(len(FER2013_CLASSES), dtype=np.float32)[labels]
    return ExpressionData(np.stack(images), targets, FER2013_CLASSES, names, "FER2013")


def _without_single_votes(votes: np.ndarray) -> np.ndarray:
    """FER+ votes with every class that got a single vote set to 0: FER+'s rule treats those as noise."""
    return np.where(votes <= 1, 0, votes).astype(np.float32)


def ferplus_distribution(votes: np.ndarray) -> np.ndarray | None:
    """FER+ votes (10 columns, label.csv order) -> distribution over our 8 classes, or None if discarded.

    Follows FER+'s own rules: a single vote for a class is treated as noise and removed,
    and an image whose strongest remaining vote is ``unknown`` or ``NF`` (not a face) is
    discarded, as is one with no votes left.
    """
    votes = _without_single_votes(votes)
    if votes.sum() == 0 or votes.argmax() >= 8:
        return None
    emotion_votes = np.zeros(len(FERPLUS_CLASSES), dtype=np.float32)
    for column, cls in enumerate(FERPLUS_COLUMNS):
        if cls is not None:
            emotion_votes[FERPLUS_CLASSES.index(cls)] = votes[column]
    return emotion_votes / emotion_votes.sum()


def ferplus_majority(votes: np.ndarray) -> bool:
    """Whether FER+'s test protocol scores an image: its top class holds more than half the votes.

    Microsoft's FERPlus reader evaluates validation and test in its ``majority`` mode: single votes
    are removed as noise, and an image counts only when its strongest class has more than half of
    the remaining votes (``unknown`` and ``NF`` included) and is an emotion; the rest become
    "unknown" and are skipped. The FER+ paper's 85.0 % and the 87-90 % later networks report are
    on this subset (3,137 of FER+ test's 3,573 labelled images); :func:`ferplus_distribution` keeps
    more of them (3,545: ties and split votes too), which is harder.
    """
    votes = _without_single_votes(votes)
    return bool(votes.sum() > 0 and votes.max() > 0.5 * votes.sum() and votes.argmax() < 8)


def _ferplus_rows(label_csv: bytes) -> Iterator[tuple[str, np.ndarray]]:
    for row in csv.reader(io.StringIO(label_csv.decode("utf-8"))):
        if len(row) != 12:
            raise DatasetLayoutError(f"label.csv rows need 12 fields (name, box, 10 vote counts); got {len(row)}")
        yield row[0], np.array([float(v) for v in row[2:]], dtype=np.float32)


def load_ferplus(path: str | Path) -> ExpressionData:
    """Microsoft FER+ layout: ``FER2013<Split>/label.csv`` + PNGs, as a directory or a zip."""
    path = Path(path)
    source = _Source(path)
    try:
        files = source.files()
        labels_csv = [f for f in files if f.name == "label.csv"]
        if len(labels_csv) != 1:
            pngs = sum(1 for f in files if f.suffix.lower() == ".png")
            raise DatasetLayoutError(
                f"{path}: expected FER+ layout <FER2013Split>/label.csv + PNGs; "
                f"found {len(labels_csv)} label.csv and {pngs} PNG files"
            )
        folder = labels_csv[0].parent
        available = {f.name for f in files}
        images, targets, names, majority = [], [], [], []
        for name, votes in _ferplus_rows(source.read(labels_csv[0])):
            dist = ferplus_distribution(votes)
            if dist is None or name not in available:
                continue
            images.append(_decode_gray48(source.read(folder / name), name))
            targets.append(dist)
            names.append(name)
            majority.append(ferplus_majority(votes))
    finally:
        source.close()
    if not images:
        raise DatasetLayoutError(f"{path}: label.csv lists no usable images")
    return ExpressionData(np.stack(images), np.stack(targets), FERPLUS_CLASSES, names, "FER+", np.array(majority))


def load_dataset(path: str | Path, split: str = "train") -> ExpressionData:
    """Pick the reader from what the path holds (FER+ label.csv, fer2013.csv, or class folders)."""
    path = Path(path)
    if not path.exists():
        raise DatasetLayoutError(f"{path}: no such file or directory")
    if path.suffix.lower() == ".csv":
        return load_fer2013_csv(path, split)
    source = _Source(path)
    try:
        has_label_csv = any(f.name == "label.csv" for f in source.files())
    finally:
        source.close()
    return load_ferplus(path) if has_label_csv else load_fer2013_folders(path)
