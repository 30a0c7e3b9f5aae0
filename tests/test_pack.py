"""Training packs (fervid.train.pack): what goes in comes out, and a wrong file is a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from fervid.train.data import ExpressionData, load_ferplus
from fervid.train.joint import LabelSet, TrainingSet
from fervid.train.pack import PackError, load_pack, save_pack


@pytest.fixture(scope="module")
def ferplus_val() -> ExpressionData:
    return load_ferplus(shared_path("data/ferplus/FER2013Valid.zip"))


@pytest.fixture(scope="module")
def faces(ferplus_val) -> np.ndarray:
    """200 real faces (real faces compress as the pack's figures say; noise would not)."""
    return ferplus_val.images[:200]


def _first(data: ExpressionData, n: int) -> ExpressionData:
    majority = None if data.majority is None else data.majority[:n]
    return ExpressionData(data.images[:n], data.targets[:n], data.classes, data.names[:n], data.dataset, majority)


def _training(images: np.ndarray) -> TrainingSet:
    rng = np.random.default_rng(0)
    n = len(images)
    fer2013 = LabelSet("fer2013", tuple("abcdefg"), np.eye(7, dtype=np.float32)[rng.integers(0, 7, n)],
                       np.ones(n, dtype=bool), "FER2013")  # fmt: skip
    votes = rng.dirichlet(np.ones(8), n).astype(np.float32)
    ferplus = LabelSet("ferplus", tuple("abcdefgh"), votes, rng.random(n) < 0.9, "FER+")
    return TrainingSet(images, [fer2013, ferplus], head_turns=rng.normal(size=n))


def test_lossless_pack_round_trips_exactly(faces, ferplus_val, tmp_path):
    training, small = _training(faces), _first(ferplus_val, 50)
    path = save_pack(tmp_path / "pack.npz", training, [small, small], lossless=True)
    back, back_vals = load_pack(path)
    np.testing.assert_array_equal(back.images, training.images)
    np.testing.assert_array_equal(back.head_turns, training.head_turns)
    for got, want in zip(back.label_sets, training.label_sets):
        assert (got.name, got.classes, got.dataset) == (want.name, want.classes, want.dataset)
        np.testing.assert_array_equal(got.targets, want.targets)
        np.testing.assert_array_equal(got.valid, want.valid)
    for got in back_vals:
        np.testing.assert_array_equal(got.images, small.images)
        np.testing.assert_array_equal(got.targets, small.targets)
        np.testing.assert_array_equal(got.majority, small.majority)
        assert (got.names, got.classes, got.dataset) == (small.names, small.classes, small.dataset)


def test_lossy_pack_is_small_and_close(faces, ferplus_val, tmp_path):
    """The default (WebP 90) is what lets the joint set travel: under 1.1 KB a face, mean error under 2.5 levels."""
    training, full = _training(faces), _first(ferplus_val, 10)
    small = ExpressionData(full.images, full.targets, full.classes, full.names)  # no majority flags
    path = save_pack(tmp_path / "pack.npz", training, [small, small])
    back, back_vals = load_pack(path)
    error = np.abs(back.images.astype(float) - training.images).mean()
    assert 0 < error < 2.5
    assert path.stat().st_size < 1100 * len(faces) + 40_000  # labels, names and 20 validation faces besides
    assert back_vals[0].majority is None  # none given, none invented


def test_a_file_that_is_not_a_pack_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a pack")
    with pytest.raises(PackError, match="bad.npz: not a training pack"):
        load_pack(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(PackError, match="other.npz: not a training pack"):
        load_pack(other)
    with pytest.raises(PackError, match="missing.npz: no such file"):
        load_pack(tmp_path / "missing.npz")


def test_one_validation_split_per_head(faces, ferplus_val, tmp_path):
    with pytest.raises(ValueError, match="one validation split per label set"):
        save_pack(tmp_path / "pack.npz", _training(faces[:5]), [_first(ferplus_val, 5)])
