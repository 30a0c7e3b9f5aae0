"""Expression classifier on dlib's face-recognition ResNet: a trunk that has seen faces FER lacks.

Why: FER's 28k training faces are almost all frontal (1 % of FER+ validation is turned past
0.8 eye distances), so a network trained on them alone reads a smile seen from the side as
neutral. dlib's identity network learned its features from about three million faces of
thousands of people in every pose, lighting and age; started from those weights, an
expression network begins with features that already describe a turned face. They carry
expression although they were trained to ignore it: a linear classifier on the frozen trunk's
features (6,000 FER+ training faces, histogram-equalised and resized to 150 px) scored 70.8 % on
FER+ validation and 82 of the 104 labelled real-footage faces.

The network is dlib's trunk (:func:`fervid.models.face_embedding.dlib_trunk`: stem, 14
residual units, global average pool) with a one-channel stem, because the crops are grey,
and a linear classifier instead of dlib's 128-d embedding. The trunk was trained at 150 px,
so the 48 px crop (the size of FER's images, which is what ``input_size`` stays) is resized
to ``trunk_size`` inside ``forward``; cropping sharper faces from video instead would feed it
detail the training images never had. Normalisation lives in the weight config, as for
:class:`fervid.models.expression.ExpressionNet`; the pretrained loader
(:mod:`fervid.models.expression_pretrained`) sets it to dlib's input scale.

dlib's pooled features are far from centred (on FER+ faces each averages about 1.2 with a spread
of 0.3 across faces), which makes a linear classifier on them slow to train: a first 8-epoch
fine-tune without a correction was at 75.5 % on FER+ validation after five epochs, where a
linear classifier on standardised frozen features had reached 70.8 % from 6,000 faces. So a
batch norm (the ``neck``) standardises the pooled features before the classifier; at inference
it is a fixed per-feature scale and shift.

Measured (docs/model-history.md, "What was tried"): fine-tuned 28 epochs on FER2013 and FER+ on a CPU, it
levels off at the small network's FER+ validation accuracy (81.8 % against 82.1 %) at twice its
cost per face, so no shipped model uses it; it is here for longer schedules where a GPU is lent.

It has the interface the trainer and annotate use,
:class:`~fervid.models.expression_interface.ExpressionNetwork`: ``features`` (pooled, what every head
reads), a linear ``head``, and ``forward`` giving logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fervid.models.expression_interface import LinearHead
from fervid.models.face_embedding import DLIB_UNITS, DLIB_WIDTHS, dlib_trunk, trunk_features

#: dlib's chip size: the scale its trunk's filters were trained at.
DLIB_TRUNK_SIZE = 150


def smallest_trunk_size(levels: int) -> int:
    """The smallest input dlib's trunk of ``levels`` levels can read: every unpadded 3x3/2 conv needs 3 px.

    A down-sampling unit's output is its 2x2/2 average-pooled shortcut's size, ``s // 2`` (the
    strided branch, one smaller where ``s`` is even, is zero-padded to it).
    """
    size = 3  # what the last down-sampling conv reads
    for _ in range(levels - 2):  # back through the earlier down-sampling units: s // 2 >= size
        size = 2 * size
    size = 2 * size + 1  # the 3x3/2 max pool after the stem
    return 2 * size + 5  # the 7x7/2 stem


class FaceResNetExpressionNet(LinearHead):
    """(B, 1, H, W) normalised grey crops -> logits (B, num_classes), through dlib's ResNet trunk."""

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = DLIB_WIDTHS,
        units: Sequence[int] = DLIB_UNITS,
        dropout: float = 0.3,
        trunk_size: int = DLIB_TRUNK_SIZE,
    ) -> None:
        super().__init__()
        smallest = smallest_trunk_size(len(widths))
        if trunk_size < smallest:
            raise ValueError(f"trunk_size must be at least {smallest} px for {len(widths)} levels, got {trunk_size}")
        self.trunk_size = trunk_size
        self.stem, self.units = dlib_trunk(widths, units, in_channels=1)
        self.neck = nn.BatchNorm1d(widths[-1])
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled, standardised (B, widths[-1]) features of crops resized to ``trunk_size``."""
        if x.shape[-2:] != (self.trunk_size, self.trunk_size):
            x = F.interpolate(x, size=(self.trunk_size, self.trunk_size), mode="bilinear", align_corners=False)
        return self.neck(trunk_features(self.stem, self.units, x))


__all__ = ["DLIB_TRUNK_SIZE", "FaceResNetExpressionNet", "smallest_trunk_size"]
