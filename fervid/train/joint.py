"""Training sets with one or more label sets per image: FER2013's labels and FER+'s votes on the same faces.

FER+ relabelled FER2013's images (10 annotators each), so the two datasets are the same
faces with two kinds of labels. Training one backbone with a head per label set uses both:
the FER+ votes are the cleaner signal, FER2013's labels are what FER2013 is scored on.

The FER2013 folders researchers download (Kaggle's JPEGs, ``fer2013/train.zip``) are
histogram-equalised per image and named by random ids, while FER+ ships the original pixels
as ``fer0000000.png``. :func:`match_images` finds each JPEG's FER+ original anyway:
equalisation keeps each image's pixel order, so an equalised FER+ image and the JPEG agree
up to JPEG noise. Thumbnails (16x16, centred, unit length) are compared by dot product and
a JPEG takes its most similar PNG when the similarity is at least ``MIN_SIMILARITY``.
Duplicated images in FER2013 may take the same PNG; that is the same face, so the same votes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fervid.models.expression_input import equalize
from fervid.train.data import ExpressionData

#: Thumbnail similarity above which a JPEG and a PNG are the same image (measured on the test
#: split: matched pairs score 0.98-1.0; an image's second-best candidate has a median of 0.72).
MIN_SIMILARITY = 0.95


@dataclass
class LabelSet:
    """One head's labels over a training set's images; rows without a label have ``valid`` False."""

    name: str
    classes: tuple[str, ...]
    targets: np.ndarray  # (N, K) float32 distributions (zero rows where not valid)
    valid: np.ndarray  # (N,) bool
    dataset: str = ""  # the labelling's name, recorded in the weight file ("FER2013", "FER+")

    @property
    def labels(self) -> np.ndarray:
        return self.targets.argmax(axis=1)


@dataclass
class TrainingSet:
    """Images with one label set per head (a single dataset is the case of one label set)."""

    images: np.ndarray  # (N, H, W) uint8
    label_sets: list[LabelSet]
    head_turns: np.ndarray | None = None  # (N,) per face, NaN where none was found (fervid.train.pose)

    def __post_init__(self) -> None:
        for ls in self.label_sets:
            if len(ls.targets) != len(self.images) or len(ls.valid) != len(self.images):
                raise ValueError(f"label set {ls.name!r} has {len(ls.targets)} rows for {len(self.images)} images")
        if self.head_turns is not None and len(self.head_turns) != len(self.images):
            raise ValueError(f"{len(self.head_turns)} head turns for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def single(cls, name: str, data: ExpressionData) -> TrainingSet:
        labels = LabelSet(name, data.classes, data.targets, np.ones(len(data), dtype=bool), data.dataset)
        return cls(data.images, [labels])


def _thumbnails(images: np.ndarray, equalise: bool) -> torch.Tensor:
    x = torch.from_numpy(images).float().unsqueeze(1)
    if equalise:
        x = equalize(x) * 255
    x = F.adaptive_avg_pool2d(x, 16).flatten(1)
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)


def match_images(equalised: np.ndarray, originals: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each equalised image, the index of its original (-1: none) and the similarity found."""
    a, b = _thumbnails(equalised, equalise=False), _thumbnails(originals, equalise=True)
    index = np.full(len(a), -1, dtype=np.int64)
    best = np.zeros(len(a), dtype=np.float32)
    for start in range(0, len(a), chunk):
        sim, idx = (a[start : start + chunk] @ b.T).max(dim=1)
        best[start : start + chunk] = sim.numpy()
        index[start : start + chunk] = np.where(sim.numpy() >= MIN_SIMILARITY, idx.numpy(), -1)
    return index, best


def joint_fer(
    fer2013: ExpressionData, ferplus: ExpressionData, names: tuple[str, str] = ("fer2013", "ferplus")
) -> TrainingSet:
    """FER2013's images and labels with FER+'s votes attached where the image has a FER+ original.

    Matched images take FER+'s original pixels (no JPEG loss); the rest keep FER2013's JPEG.
    Returns two label sets named ``names``: FER2013's (every image), then FER+'s (matched
    images that FER+ kept).
    """
    index, _ = match_images(fer2013.images, ferplus.images)
    matched = index >= 0
    images = fer2013.images.copy()
    images[matched] = ferplus.images[index[matched]]
    targets = np.zeros((len(fer2013), len(ferplus.classes)), dtype=np.float32)
    targets[matched] = ferplus.targets[index[matched]]
    return TrainingSet(
        images,
        [
            LabelSet(names[0], fer2013.classes, fer2013.targets, np.ones(len(fer2013), dtype=bool), fer2013.dataset),
            LabelSet(names[1], ferplus.classes, targets, matched, ferplus.dataset),
        ],
    )
