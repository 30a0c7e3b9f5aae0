"""Synthetic hands at the chin (``fervid train --hands``): where they go, how they are lit, who sees them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fervid.models.expression_input import prepare
from fervid.train.augment import AugmentConfig
from fervid.train.data import ExpressionData
from fervid.train.distill import Teachers
from fervid.train.joint import LabelSet, TrainingSet
from fervid.train.occluders import hand_occluders
from fervid.train.trainer import Head, TrainConfig, _Labels, _start, _train_epoch
from fervid.types import EMOTIONS

CPU = torch.device("cpu")


def _faces(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).random((n, 1, 48, 48), dtype=np.float32))


def test_no_hands_leaves_the_faces_as_they_are() -> None:
    x = _faces()
    torch.testing.assert_close(hand_occluders(x, 0.0, torch.Generator().manual_seed(0)), x)


def test_every_chosen_face_gets_a_hand_on_its_lower_part_only() -> None:
    x = _faces()
    y = hand_occluders(x, 1.0, torch.Generator().manual_seed(0))
    changed = (y - x).abs() > 0.05
    assert changed.flatten(1).float().mean(1).min() > 0.03  # every face has a visible hand
    assert changed.flatten(1).float().mean(1).max() < 0.5  # and keeps most of itself
    # the eyes' rows (top quarter of the crop) are never covered: a raised finger reaches the cheek at most
    assert (y - x)[:, :, :12].abs().max() < 0.02
    assert changed[:, :, 36:].flatten(1).float().mean(1).mean() > changed[:, :, 12:36].flatten(1).float().mean(1).mean()


def test_the_share_of_faces_with_a_hand_follows_p() -> None:
    x = _faces(400)
    y = hand_occluders(x, 0.25, torch.Generator().manual_seed(3))
    with_hand = ((y - x).abs() > 0.05).flatten(1).any(1).float().mean().item()
    assert 0.18 < with_hand < 0.32


def test_a_hand_is_lit_like_the_face() -> None:
    """A hand on a dim face is dim, on a bright face bright (nearer the light it may be brighter, not darker)."""
    for level in (0.15, 0.6):
        x = torch.full((32, 1, 48, 48), level)
        y = hand_occluders(x, 1.0, torch.Generator().manual_seed(1))
        hand = (y - x).abs() > 0.02
        painted = y[hand]
        assert painted.mean() > 0.75 * level
        assert painted.mean() < 1.8 * level + 0.05


def test_the_same_generator_state_gives_the_same_hands() -> None:
    x = _faces(8)
    a = hand_occluders(x, 0.5, torch.Generator().manual_seed(7))
    b = hand_occluders(x, 0.5, torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)


def test_the_student_sees_the_hand_and_the_teacher_the_face_without_it(monkeypatch) -> None:
    """Teachers' targets are for the expression: they read each step's faces before the hand is painted."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    targets = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 64)]
    data = TrainingSet(images, [LabelSet("ferplus", EMOTIONS, targets, np.ones(64, bool))])
    val = ExpressionData(images[:8], targets[:8], EMOTIONS, [str(i) for i in range(8)])
    augment = AugmentConfig(erase_p=0.0, degrade_p=0.0, hand_p=1.0)  # no video conditions: the hand alone differs
    cfg = TrainConfig(
        epochs=1, batch_size=32, widths=(8, 8, 16, 16), photometric="none", augment=augment, teachers=("ferplus",)
    )
    session, shared, _ = _start(cfg, data, [Head(data.label_sets[0], val, Path("unused.pt"))], CPU)
    labels = _Labels.on(data, cfg, CPU)
    teachers = Teachers.load(cfg.teachers, [EMOTIONS], CPU)
    seen, fed = [], []
    real_probabilities = Teachers.probabilities

    def spy_probabilities(self, crops, blend=None):
        seen.append(crops.clone())
        return real_probabilities(self, crops, blend)

    monkeypatch.setattr(Teachers, "probabilities", spy_probabilities)
    hook = session.model.register_forward_pre_hook(lambda module, args: fed.append(args[0].detach().clone()))
    _train_epoch(session, torch.from_numpy(images), labels, cfg, shared, teachers)
    hook.remove()
    assert len(seen) == len(fed) == 2
    for crops, x in zip(seen, fed):
        teacher_view = prepare(crops, shared)
        # the same faces above the hands (photometric none: each pixel maps on its own) ...
        torch.testing.assert_close(x[:, :, :12], teacher_view[:, :, :12], atol=1e-3, rtol=0)
        # ... and a hand below on every face the student sees, which the teacher does not
        differs = ((x - teacher_view).abs() > 0.05 / shared.std).flatten(1).float().mean(1)
        assert differs.min() > 0.01  # 0 where the student saw what the teacher saw
