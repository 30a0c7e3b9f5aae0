"""Head pose of training faces and the pose-balanced loss weights (fervid.train.pose)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared_path

from fervid.train.data import load_dataset
from fervid.train.joint import LabelSet, TrainingSet
from fervid.train.pose import (
    BIN_NAMES,
    cached_head_turns,
    head_turn,
    measure_head_turns,
    pose_bins,
    pose_class_weights,
)
from fervid.train.trainer import TrainConfig, _Labels, soft_cross_entropy


def _landmarks(nose_x: float) -> np.ndarray:
    """Eyes at x 10 and 30 (distance 20), nose at ``nose_x``, mouth corners below the eyes."""
    return np.array([[[10, 10], [30, 10], [nose_x, 20], [12, 30], [28, 30]]], dtype=np.float32)


def test_head_turn_is_the_nose_offset_from_the_eyes_mid_in_eye_distances():
    turns = head_turn(np.concatenate([_landmarks(20), _landmarks(26), _landmarks(4), np.full((1, 5, 2), np.nan)]))
    assert turns[:3] == pytest.approx([0.0, 0.3, 0.8])
    assert np.isnan(turns[3])


def test_pose_bins_put_unfound_faces_in_a_bin_of_their_own():
    bins = pose_bins(np.array([0.0, 0.29, 0.3, 0.79, 0.8, 2.5, np.nan]))
    assert bins.tolist() == [0, 0, 1, 1, 2, 2, 3]
    assert len(BIN_NAMES) == 4


def _biased_set() -> tuple[np.ndarray, np.ndarray]:
    """Three classes; frontal faces (bin 0) 50/30/20, profiles (bin 2) 10/0/90: class 2 is the 'profile' class."""
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20 + [0] * 1 + [2] * 9)
    bins = np.array([0] * 100 + [2] * 10)
    return np.eye(3, dtype=np.float32)[labels], bins


def test_unshrunk_uncapped_weights_give_every_bin_the_overall_class_mix():
    targets, bins = _biased_set()
    weights = pose_class_weights(targets, bins, n_bins=4, prior_strength=0.0, cap=np.inf)
    prior = targets.mean(axis=0)
    for b in (0, 2):
        weighted = (targets[bins == b] * weights[b]).sum(axis=0)
        present = targets[bins == b].sum(axis=0) > 0
        # each present class takes its overall share of the bin (classes absent from a bin cannot)
        assert weighted[present] / weighted.sum() == pytest.approx(prior[present] / prior[present].sum(), rel=1e-5)
        # and the bin keeps its weight in the loss: its weights average to 1 over its faces
        assert weighted.sum() / (bins == b).sum() == pytest.approx(prior[present].sum(), rel=1e-5)
    assert weights[1].tolist() == [1.0, 1.0, 1.0]  # an empty bin is left alone


def test_weights_are_shrunk_towards_the_prior_and_capped():
    targets, bins = _biased_set()
    raw = pose_class_weights(targets, bins, n_bins=4, prior_strength=0.0, cap=np.inf)
    shrunk = pose_class_weights(targets, bins, n_bins=4, prior_strength=50.0, cap=np.inf)
    capped = pose_class_weights(targets, bins, n_bins=4, prior_strength=0.0, cap=2.0)
    # profile faces of the 'profile' class count less, the rare frontal-class profile more...
    assert raw[2, 2] < 1 < raw[2, 0]
    # ...and less so when the ten profiles are weighed against 50 pseudo-samples of the prior
    assert raw[2, 2] < shrunk[2, 2] < 1 < shrunk[2, 0] < raw[2, 0]
    assert capped.max() <= 2.0 and capped.min() >= 0.5 and capped[2, 0] == 2.0


def test_cached_head_turns_measure_once_per_set_of_images(tmp_path):
    calls = []

    def measure(images):
        calls.append(len(images))
        return np.arange(len(images), dtype=np.float32)

    images = np.zeros((5, 48, 48), np.uint8)
    cache = tmp_path / "turns.npz"
    first = cached_head_turns(images, cache, measure)
    again = cached_head_turns(images, cache, measure)
    assert calls == [5] and first.tolist() == again.tolist() == [0, 1, 2, 3, 4]
    other = images.copy()
    other[0, 0, 0] = 1  # other pixels: the cache does not belong to them
    cached_head_turns(other, cache, measure)
    assert calls == [5, 5]
    cache.write_bytes(b"not an npz")  # a damaged cache is measured again, not an error
    assert cached_head_turns(images, cache, measure).tolist() == [0, 1, 2, 3, 4]
    assert calls == [5, 5, 5]


def _labels_for(turns: np.ndarray, pose_balance: bool) -> _Labels:
    targets, _ = _biased_set()
    data = TrainingSet(
        np.zeros((len(targets), 48, 48), np.uint8),
        [LabelSet("toy", ("a", "b", "c"), targets, np.ones(len(targets), bool))],
        head_turns=turns,
    )
    return _Labels.on(data, TrainConfig(pose_balance=pose_balance, class_weight_power=0.5), torch.device("cpu"))


def test_pose_balance_changes_the_weights_of_rows_by_their_pose_only():
    turns = np.array([0.0] * 100 + [1.5] * 10, dtype=np.float32)
    plain = _labels_for(turns, pose_balance=False).weights[0]
    balanced = _labels_for(turns, pose_balance=True).weights[0]
    assert torch.equal(plain, plain[:1].expand_as(plain))  # the same class weights on every row
    ratio = balanced / plain
    assert ratio[100, 2] < 1 < ratio[100, 0]  # profile: the 'profile' class down, the rare class up
    assert torch.allclose(ratio[:100], ratio[:1].expand(100, -1))  # every frontal row alike
    logits, idx = torch.randn(8, 3), torch.arange(100, 108)
    targets = torch.eye(3)[[2] * 8]
    # per-row weights of one class on every row give the loss of the shared (K,) weights
    assert soft_cross_entropy(logits, targets, plain[idx]) == pytest.approx(
        float(soft_cross_entropy(logits, targets, plain[0]))
    )


def test_pose_balance_without_head_turns_is_an_error():
    with pytest.raises(ValueError, match="head turns"):
        _labels_for(None, pose_balance=True)


def test_measured_head_turns_separate_frontal_from_profile_faces_of_ferplus():
    """Our detector on real FER+ validation faces: most are frontal, several percent turned."""
    data = load_dataset(shared_path("data/ferplus/FER2013Valid.zip"))
    turns = measure_head_turns(data.images[:256])
    found = ~np.isnan(turns)
    assert found.mean() > 0.95
    assert np.median(turns[found]) < 0.15
    assert 0.03 < (turns[found] >= 0.3).mean() < 0.15  # 7.6 % of these 256 (8.9 % of the whole split)
