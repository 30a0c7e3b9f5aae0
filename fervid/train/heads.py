"""The training set and its heads from dataset paths, as ``fervid train`` takes them.

One ``--data`` trains one head; FER2013 and FER+ together (the same faces, two labellings)
train one network with a head for each (:func:`fervid.train.joint.joint_fer`). Shared by the
CLI and by ``scripts/gpu/pack_fer.py``, which packs exactly what the CLI would train on.
"""

from __future__ import annotations

from pathlib import Path

from fervid.train.data import FER2013_CLASSES, FERPLUS_CLASSES, load_dataset
from fervid.train.joint import TrainingSet, joint_fer
from fervid.train.pack import load_pack
from fervid.train.trainer import Head


def load_training_heads(data: list[Path], val: list[Path], out: list[Path]) -> tuple[TrainingSet, list[Head]]:
    """The training set and one head per ``data`` path, each with its ``val`` split and ``out`` weight file.

    Heads are named after their ``out`` files' stems, so those must differ. Raises ValueError for
    a combination that cannot be trained jointly.
    """
    names = [p.stem for p in out]
    if len(set(names)) != len(names):
        raise ValueError(f"--out files need distinct names (heads are named after them): {', '.join(names)}")
    splits = [load_dataset(p, "train") for p in data]
    vals = [load_dataset(p, "val") for p in val]
    if len(splits) == 1:
        training = TrainingSet.single(names[0], splits[0])
    elif len(splits) == 2 and {s.classes for s in splits} == {FER2013_CLASSES, FERPLUS_CLASSES}:
        first_is_fer2013 = splits[0].classes == FER2013_CLASSES
        fer2013, ferplus = splits if first_is_fer2013 else splits[::-1]
        pair = (names[0], names[1]) if first_is_fer2013 else (names[1], names[0])
        training = joint_fer(fer2013, ferplus, pair)
        if not first_is_fer2013:
            training.label_sets.reverse()
    else:
        raise ValueError("several --data are trained jointly only for FER2013 + FER+ (the same faces, two labellings)")
    heads = [Head(ls, v, o) for ls, v, o in zip(training.label_sets, vals, out)]
    return training, heads


def load_pack_heads(pack: Path, out: list[Path]) -> tuple[TrainingSet, list[Head]]:
    """The training set and heads of a training pack (:mod:`fervid.train.pack`), one ``out`` per head in its order.

    Each ``out`` file's stem must be its head's name (``fer2013.pt``, ``ferplus.pt``), so a weight
    file cannot end up holding the other head.
    """
    training, vals = load_pack(pack)
    names = [ls.name for ls in training.label_sets]
    if [p.stem for p in out] != names:
        raise ValueError(f"{pack}: its heads are {', '.join(names)}; give one --out per head, named after it "
                         f"and in this order (got {', '.join(p.name for p in out)})")  # fmt: skip
    return training, [Head(ls, v, o) for ls, v, o in zip(training.label_sets, vals, out)]
