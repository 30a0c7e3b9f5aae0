"""A training set and its validation splits in one compact file, for a machine that lacks the archives.

A borrowed GPU machine gets only what travels with the checkout (64 MiB in all, the shipped
weights included), and the joint FER2013 + FER+ set as downloaded is 57 MB of JPEGs plus 56 MB of
PNGs for the same 28,709 faces. A pack holds each face once, as WebP: at quality 90 a 48 px face
takes about 0.9 KB with a mean error of 1.6 grey levels (JPEG at quality 95 errs by 1.3 at 1.6 KB;
FER2013's own files are JPEGs), so the training set and both validation splits take about 30 MB.
``lossless=True`` keeps the pixels exact at about 1.6 KB a face.

Everything else that ``fervid train`` derives from the archives travels as it is: each head's
label set (targets, which rows are labelled, the dataset's name), the head turns that pose
balancing needs, and each validation split's targets, names and FER+ majority flags.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from fervid.train.data import ExpressionData
from fervid.train.joint import LabelSet, TrainingSet

#: WebP quality of a lossy pack (see the module docstring for what it costs).
QUALITY = 90
FORMAT_VERSION = 1


class PackError(ValueError):
    """The file is not a training pack this version reads."""


def _encode(images: np.ndarray, quality: int, lossless: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) uint8 faces -> WebP bytes of all faces concatenated, and the (N + 1) offsets into them."""
    chunks, offsets = [], [0]
    for face in images:
        buffer = io.BytesIO()
        Image.fromarray(face, mode="L").save(buffer, "WEBP", quality=quality, lossless=lossless, method=6)
        chunks.append(buffer.getvalue())
        offsets.append(offsets[-1] + len(chunks[-1]))
    return np.frombuffer(b"".join(chunks), dtype=np.uint8), np.array(offsets, dtype=np.int64)


def _decode(data: np.ndarray, offsets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    images = np.empty((len(offsets) - 1, *shape), dtype=np.uint8)
    raw = data.tobytes()
    for i in range(len(images)):
        images[i] = np.asarray(Image.open(io.BytesIO(raw[offsets[i] : offsets[i + 1]])).convert("L"))
    return images


def save_pack(
    path: str | Path,
    training: TrainingSet,
    vals: list[ExpressionData],
    *,
    quality: int = QUALITY,
    lossless: bool = False,
) -> Path:
    """Write ``training`` (every label set, head turns if measured) and ``vals`` (one per head) to ``path``."""
    if len(vals) != len(training.label_sets):
        raise ValueError(f"one validation split per label set: {len(training.label_sets)} sets, {len(vals)} splits")
    arrays: dict[str, np.ndarray] = {}
    arrays["train_webp"], arrays["train_offsets"] = _encode(training.images, quality, lossless)
    meta: dict = {"version": FORMAT_VERSION, "shape": list(training.images.shape[1:]), "lossless": lossless,
                  "quality": quality, "label_sets": [], "vals": []}  # fmt: skip
    for i, ls in enumerate(training.label_sets):
        arrays[f"labels{i}_targets"], arrays[f"labels{i}_valid"] = ls.targets, ls.valid
        meta["label_sets"].append({"name": ls.name, "classes": list(ls.classes), "dataset": ls.dataset})
    if training.head_turns is not None:
        arrays["head_turns"] = training.head_turns
    for i, val in enumerate(vals):
        arrays[f"val{i}_webp"], arrays[f"val{i}_offsets"] = _encode(val.images, quality, lossless)
        arrays[f"val{i}_targets"] = val.targets
        if val.majority is not None:
            arrays[f"val{i}_majority"] = val.majority
        meta["vals"].append({"classes": list(val.classes), "names": val.names, "dataset": val.dataset})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = Path(path)
    with path.open("wb") as fh:  # np.savez on a handle: the name is kept as given, no ".npz" appended
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub mixes **arrays up with allow_pickle
    return path


def load_pack(path: str | Path) -> tuple[TrainingSet, list[ExpressionData]]:
    """The training set and validation splits that :func:`save_pack` wrote."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(arrays["meta"].tobytes())
    except FileNotFoundError:
        raise PackError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError):  # numpy's own reasons name pickles and keys, not what went wrong here
        raise PackError(f"{path}: not a training pack (an .npz written by scripts/gpu/pack_fer.py)") from None
    if meta.get("version") != FORMAT_VERSION:
        raise PackError(f"{path}: pack format {meta.get('version')}, this fervid reads {FORMAT_VERSION}")
    shape = tuple(meta["shape"])
    label_sets = [
        LabelSet(m["name"], tuple(m["classes"]), arrays[f"labels{i}_targets"], arrays[f"labels{i}_valid"], m["dataset"])
        for i, m in enumerate(meta["label_sets"])
    ]
    training = TrainingSet(
        _decode(arrays["train_webp"], arrays["train_offsets"], shape), label_sets, arrays.get("head_turns")
    )
    vals = [
        ExpressionData(
            _decode(arrays[f"val{i}_webp"], arrays[f"val{i}_offsets"], shape),
            arrays[f"val{i}_targets"],
            tuple(m["classes"]),
            list(m["names"]),
            m["dataset"],
            arrays.get(f"val{i}_majority"),
        )  # fmt: skip
        for i, m in enumerate(meta["vals"])
    ]
    return training, vals
