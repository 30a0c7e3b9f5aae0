"""dlib's shape predictor (an ensemble of regression trees, Kazemi and Sullivan 2014) in vectorised numpy.

A port of ``dlib::shape_predictor::operator()`` (dlib/image_processing/shape_predictor.h)
that runs all faces of a batch of frames together, one numpy pass per cascade level and
tree depth. The arithmetic follows dlib's step for step, in dlib's precisions, so that the
same box gives the same points (tests/test_shape_predictor.py):

1. a face starts as the mean shape, in box-normalised coordinates ((0, 0) is the box's
   top-left corner, (1, 1) its bottom-right one);
2. at each cascade level, the similarity transform (least squares, Umeyama; computed in
   float64, used in float32) from the mean shape to the current shape carries each feature
   pixel's offset from its anchor landmark onto the current shape; that point goes to the
   image through the box (``x = left + u * (right - left)``, in float64), is rounded to the
   nearest pixel (``floor(v + 0.5)``) and read as an intensity: ``(r + g + b) // 3`` for RGB,
   0 outside the image;
3. every tree of the level walks its splits (go left when ``pixel[a] - pixel[b] > threshold``)
   and its leaf's shape update is added to the current shape, tree after tree in float32
   (torch's ``embedding_bag`` sums a bag of table rows in the order given, so each face's bag is
   its current shape, in a scratch row of the table, then its leaves: one gather-and-sum, with
   dlib's rounding);
4. the final shape goes to the image through the box.

dlib rounds the returned points to whole pixels; :meth:`ShapePredictor.predict` returns
them unrounded (rounding them, as the tests do, gives dlib's points).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as functional

#: Faces per pass of the cascade: a pass writes its faces' current shapes into this many scratch rows at the
#: end of every level's leaf table (see :meth:`ShapePredictor._cascade`); larger batches run in several passes.
_SCRATCH_ROWS = 256


class _DerivedTables:
    """The tables :meth:`ShapePredictor.__post_init__` derives and sets (annotations only: not dataclass fields)."""

    _first: np.ndarray
    _second: np.ndarray
    _thresholds: np.ndarray
    _source: np.ndarray
    _leaf_table: torch.Tensor
    _scratch_lock: threading.Lock


@dataclass(frozen=True, eq=False)
class ShapePredictor(_DerivedTables):
    """A trained cascade: arrays read from dlib's ``.dat`` (see :mod:`fervid.models.shape_predictor_weights`).

    Sizes: ``C`` cascade levels, ``F`` feature pixels per level, ``T`` trees per level,
    ``S = 2**depth - 1`` splits and ``S + 1`` leaves per tree, ``P`` landmarks.
    """

    mean_shape: np.ndarray  # (P, 2) float32, box-normalised (x, y)
    anchors: np.ndarray  # (C, F) int64: the landmark each feature pixel is placed from
    deltas: np.ndarray  # (C, F, 2) float32: its offset from that landmark in the mean shape
    splits: np.ndarray  # (C, T, S, 2) int64: the two feature pixels each split compares
    thresholds: np.ndarray  # (C, T, S) float32
    leaves: np.ndarray  # (C, T, S + 1, 2 * P) float32: shape updates, (x0, y0, x1, y1, ...)

    def __post_init__(self) -> None:
        levels, features = self.anchors.shape
        trees, nodes = self.thresholds.shape[1:]
        parts = self.mean_shape.shape[0]
        expected = {
            "mean_shape": (parts, 2),
            "deltas": (levels, features, 2),
            "splits": (levels, trees, nodes, 2),
            "thresholds": (levels, trees, nodes),
            "leaves": (levels, trees, nodes + 1, 2 * parts),
        }
        for field, shape in expected.items():
            if getattr(self, field).shape != shape:
                raise ValueError(f"ShapePredictor.{field} has shape {getattr(self, field).shape}, expected {shape}")
        if nodes & (nodes + 1):
            raise ValueError(f"trees must be complete: {nodes} splits is not 2**depth - 1")
        if self.anchors.size and not 0 <= self.anchors.min() <= self.anchors.max() < parts:
            raise ValueError(f"anchor landmarks must be in 0..{parts - 1}")
        if self.splits.size and not 0 <= self.splits.min() <= self.splits.max() < features:
            raise ValueError(f"split features must be in 0..{features - 1}")
        # Per-level flat tables for predict's one-dimensional takes, made once; all read-only, so a
        # cached predictor can be shared.
        derived = {
            "_first": self.splits[..., 0].reshape(levels, -1),
            "_second": self.splits[..., 1].reshape(levels, -1),
            "_thresholds": self.thresholds.reshape(levels, -1),
            "_source": self.mean_shape.astype(np.float64) - self.mean_shape.astype(np.float64).mean(axis=0),
        }
        for name, array in derived.items():
            object.__setattr__(self, name, np.ascontiguousarray(array))
        # Each level's leaves as one (T * (S + 1) + scratch, 2P) torch table for embedding_bag. Only the scratch
        # rows are ever written, by one pass at a time (the lock); ``leaves`` becomes a read-only view of the
        # rest, so the leaves are held once.
        rows = trees * (nodes + 1)
        table = torch.zeros((levels, rows + _SCRATCH_ROWS, 2 * parts), dtype=torch.float32)
        table[:, :rows] = torch.from_numpy(self.leaves.reshape(levels, rows, 2 * parts).astype(np.float32))
        object.__setattr__(self, "_leaf_table", table)
        object.__setattr__(self, "_scratch_lock", threading.Lock())
        object.__setattr__(self, "leaves", table.numpy()[:, :rows].reshape(self.leaves.shape))
        for name in (*expected, "anchors", *derived):
            getattr(self, name).flags.writeable = False

    @property
    def num_parts(self) -> int:
        return int(self.mean_shape.shape[0])

    @property
    def depth(self) -> int:
        return int(self.thresholds.shape[2] + 1).bit_length() - 1

    def predict(self, images: Sequence[np.ndarray], boxes: np.ndarray, image_index: np.ndarray) -> np.ndarray:
        """(N, P, 2) float32 landmarks (x, y) in image pixels for N boxes over a batch of images.

        ``images``: (H, W, 3) uint8 RGB or (H, W) uint8 grey frames. ``boxes``: (N, 4) dlib
        rectangles as floats ``left, top, right, bottom``: dlib's ``rectangle`` has inclusive
        right and bottom edges and the cascade maps (0, 0) to (left, top) and (1, 1) to
        (right, bottom), so a detector box of ``w`` pixels starting at ``x`` is
        ``(x, .., x + w - 1, ..)``. Floats are used as they are (no rounding), so dlib's own
        integer rectangles give dlib's points. ``image_index``: (N,) which image each box is in.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        image_index = np.asarray(image_index, dtype=np.int64).reshape(-1)
        count = boxes.shape[0]
        if image_index.shape != (count,):
            raise ValueError(f"image_index has {image_index.size} entries for {count} boxes")
        if count == 0:
            return np.zeros((0, self.num_parts, 2), np.float32)
        if image_index.min() < 0 or image_index.max() >= len(images):
            raise ValueError(f"image_index must be in 0..{len(images) - 1}")
        with self._scratch_lock:
            shape = np.concatenate([
                self._cascade(_Sampler(images, image_index[part]), boxes[part])
                for part in (slice(start, start + _SCRATCH_ROWS) for start in range(0, count, _SCRATCH_ROWS))
            ])  # fmt: skip
        origin = boxes[:, None, :2]
        size = boxes[:, None, 2:] - boxes[:, None, :2]
        return (origin + size * shape.astype(np.float64)).astype(np.float32)

    def _cascade(self, sampler: _Sampler, boxes: np.ndarray) -> np.ndarray:
        """(N, P, 2) float32 final shapes, box-normalised, of at most ``_SCRATCH_ROWS`` boxes (lock held)."""
        count = boxes.shape[0]
        # Where (0, 0) goes, and where (1, 1) goes minus that: (N, 1) each.
        left, top, width, height = (
            boxes[:, 0:1],
            boxes[:, 1:2],
            boxes[:, 2:3] - boxes[:, 0:1],
            boxes[:, 3:4] - boxes[:, 1:2],
        )
        shape = np.repeat(self.mean_shape[None], count, axis=0)  # (N, P, 2) float32
        trees = self.thresholds.shape[1]
        first_leaf = self.thresholds.shape[2]
        # Each face's bag of table rows: its scratch row (the current shape), then one leaf per tree.
        scratch = trees * (first_leaf + 1)
        bags = np.empty((count, 1 + trees), np.int64)
        bags[:, 0] = scratch + np.arange(count)
        leaf_offsets = np.arange(trees)[None, :] * (first_leaf + 1) - first_leaf
        node_offsets = np.arange(trees)[None, :] * first_leaf
        value_offsets = np.arange(count)[:, None] * self.anchors.shape[1]
        split, index = np.empty((count, trees), np.int64), np.empty((count, trees), np.int64)
        a, b, limit = (np.empty((count, trees), np.float32) for _ in range(3))
        for level in range(self.anchors.shape[0]):
            transform = _similarity(self._source, shape)  # (N, 2, 2) float32
            dx, dy = self.deltas[level, :, 0], self.deltas[level, :, 1]  # (F,) each
            anchor = shape[:, self.anchors[level]]  # (N, F, 2)
            # dlib's tform*delta + anchor in float32, one coordinate plane at a time ((N, F) each), then
            # through the box in float64 and rounded to the nearest pixel.
            x = transform[:, 0, 0:1] * dx + transform[:, 0, 1:2] * dy + anchor[..., 0]
            y = transform[:, 1, 0:1] * dx + transform[:, 1, 1:2] * dy + anchor[..., 1]
            flat_values = sampler.intensities(
                np.floor(left + width * x.astype(np.float64) + 0.5).astype(np.int64),
                np.floor(top + height * y.astype(np.float64) + 0.5).astype(np.int64),
            ).ravel()  # (N * F,) float32
            # Walk all trees of all faces one depth at a time, with flat indices (1-D takes are fastest).
            first, second, thresholds = self._first[level], self._second[level], self._thresholds[level]
            node = np.zeros((count, trees), np.int64)
            for _ in range(self.depth):
                np.add(node_offsets, node, out=split)  # (N, T) into the level's (T * S) splits
                np.take(first, split, out=index)
                index += value_offsets
                np.take(flat_values, index, out=a)
                np.take(second, split, out=index)
                index += value_offsets
                np.take(flat_values, index, out=b)
                np.take(thresholds, split, out=limit)
                a -= b
                node *= 2
                node += 2
                node -= a > limit  # the left child (2n + 1) when the difference is over the threshold
            table = self._leaf_table[level]
            table[scratch : scratch + count] = torch.from_numpy(shape.reshape(count, -1))
            np.add(node, leaf_offsets, out=bags[:, 1:])
            shape = functional.embedding_bag(torch.from_numpy(bags), table, mode="sum").numpy().reshape(count, -1, 2)
        return shape


def similarity_matrices(source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N, 2, 2) float32 linear parts of the least-squares similarity from ``source`` (P, 2) to each target.

    dlib's ``find_similarity_transform`` (Umeyama) in closed form, in float64: for centred
    points a (source) and b (target), scale * rotation = [[p, -q], [q, p]] with
    p = sum(a . b) / sum(|a|^2) and q = sum(a x b) / sum(|a|^2). Umeyama's reflection
    guard gives the same proper rotation.
    """
    source = np.asarray(source, np.float64)
    return _similarity(source - source.mean(axis=0), targets)


def _similarity(centred: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """:func:`similarity_matrices` from the source already centred (float64)."""
    b = targets.astype(np.float64)
    b -= b.mean(axis=1, keepdims=True)
    spread = float((centred**2).sum())
    out = np.empty((targets.shape[0], 2, 2), np.float64)
    if spread == 0:  # all source points equal: dlib's scale is 1 (the rotation is then the identity)
        out[:] = np.eye(2)
        return out.astype(np.float32)
    p = (b[..., 0] @ centred[:, 0] + b[..., 1] @ centred[:, 1]) / spread
    q = (b[..., 1] @ centred[:, 0] - b[..., 0] @ centred[:, 1]) / spread
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = p, -q, q, p
    return out.astype(np.float32)


class _Sampler:
    """dlib's ``get_pixel_intensity`` at integer pixels of several images, one gather for all of them.

    The images of a call are laid end to end in one flat buffer (copied once per call, a view when there is
    one image), so each cascade level reads every face's pixels in a few array operations instead of a loop
    over images (which cost more than the rest of the cascade on video, one face per frame).
    """

    def __init__(self, images: Sequence[np.ndarray], image_index: np.ndarray) -> None:
        used, face_image = np.unique(image_index, return_inverse=True)
        arrays = [np.asarray(images[index]) for index in used]
        for index, image in zip(used, arrays):
            if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
                raise ValueError(
                    f"image {index} must be (H, W, 3) RGB or (H, W) grey uint8, got {image.dtype} {image.shape}"
                )
        sizes = np.array([image.size for image in arrays], np.int64)
        self.flat = arrays[0].reshape(-1) if len(arrays) == 1 else np.concatenate([a.reshape(-1) for a in arrays])
        # Per face, as (N, 1) columns: where its image starts in the buffer, its width, height and channels.
        self.start = (np.cumsum(sizes) - sizes)[face_image][:, None]
        self.width = np.array([a.shape[1] for a in arrays], np.int64)[face_image][:, None]
        self.height = np.array([a.shape[0] for a in arrays], np.int64)[face_image][:, None]
        self.channels = np.array([1 if a.ndim == 2 else 3 for a in arrays], np.int64)[face_image][:, None]
        self.rgb = np.flatnonzero(self.channels[:, 0] == 3)  # the faces in RGB images

    def intensities(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(N, F) float32 intensities at integer pixels ``x``, ``y`` ((N, F) each); 0 outside the image."""
        inside = (x >= 0) & (y >= 0) & (x < self.width) & (y < self.height)
        at = self.start + (np.where(inside, y, 0) * self.width + np.where(inside, x, 0)) * self.channels
        values = np.take(self.flat, at).astype(np.uint16)
        if self.rgb.size:  # RGB: dlib's grey is the integer mean of the three channels
            rgb_at = at[self.rgb]
            values[self.rgb] = (values[self.rgb] + np.take(self.flat, rgb_at + 1) + np.take(self.flat, rgb_at + 2)) // 3
        return np.where(inside, values, 0).astype(np.float32)


__all__ = ["ShapePredictor", "similarity_matrices"]
