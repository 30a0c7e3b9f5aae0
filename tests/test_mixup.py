"""Mixup (``fervid train --mixup ALPHA``): the blend weights' distribution, the blended batch and loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from fervid.train.joint import LabelSet, TrainingSet
from fervid.train.mixup import mix_batch, mixup_weight
from fervid.train.trainer import TrainConfig, _Labels


def test_mixup_weights_follow_beta_alpha_alpha_and_repeat_with_the_generator():
    draws = [mixup_weight(0.3, torch.Generator().manual_seed(0)) for _ in range(2)]
    assert draws[0] == draws[1]
    gen = torch.Generator().manual_seed(1)
    lam = np.array([mixup_weight(0.3, gen) for _ in range(2000)])
    assert ((lam >= 0) & (lam <= 1)).all()
    assert stats.kstest(lam, stats.beta(0.3, 0.3).cdf).pvalue > 0.01
    # a uniform draw would fail: the test can tell the distributions apart
    assert stats.kstest(lam, stats.uniform().cdf).pvalue < 1e-6


def test_mixup_alpha_must_be_positive():
    with pytest.raises(ValueError, match="alpha"):
        mixup_weight(0.0, torch.Generator())


def test_a_mixed_batch_blends_each_row_with_its_partner():
    x = torch.arange(4, dtype=torch.float32).reshape(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    mixed, lam, partner = mix_batch(x, torch.Generator().manual_seed(3), alpha=1.0)
    assert sorted(partner.tolist()) == [0, 1, 2, 3]
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[partner])
    assert 0 < lam < 1


def test_mixed_loss_is_the_blend_of_both_faces_losses():
    targets = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    data = TrainingSet(np.zeros((4, 48, 48), np.uint8), [LabelSet("a", ("x", "y", "z"), targets, np.ones(4, bool))])
    labels = _Labels.on(data, TrainConfig(class_weight_power=0.0, label_smoothing=0.0), torch.device("cpu"))
    outputs = [torch.randn(4, 3, generator=torch.Generator().manual_seed(0))]
    idx, partner = torch.arange(4), torch.tensor([1, 2, 3, 0])
    plain = labels.loss(outputs, idx)
    torch.testing.assert_close(labels.mixed_loss(outputs, idx, 1.0, partner), plain)
    expected = 0.25 * plain + 0.75 * labels.loss(outputs, idx[partner])
    torch.testing.assert_close(labels.mixed_loss(outputs, idx, 0.25, partner), expected)
    assert not torch.allclose(expected, plain)


def test_a_training_epoch_with_mixup_feeds_the_network_the_blended_batch_and_blends_the_loss(monkeypatch):
    """The trainer's wiring: each step's network input is mix_batch's blend, and its loss the blended loss."""
    import fervid.train.trainer as trainer
    from fervid.train.data import ExpressionData
    from fervid.train.trainer import Head, _start, _train_epoch

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    targets = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    data = TrainingSet(images, [LabelSet("toy", ("a", "b", "c"), targets, np.ones(64, bool))])
    val = ExpressionData(images[:8], targets[:8], ("a", "b", "c"), [str(i) for i in range(8)])
    cfg = TrainConfig(epochs=1, batch_size=32, widths=(8, 8, 16, 16), mixup=0.4)
    session, shared, _ = _start(cfg, data, [Head(data.label_sets[0], val, Path("unused.pt"))], torch.device("cpu"))
    labels = _Labels.on(data, cfg, torch.device("cpu"))

    blends, fed, losses = [], [], []
    real_mix, real_mixed_loss = trainer.mix_batch, _Labels.mixed_loss

    def spy_mix(x, gen, alpha):
        out = real_mix(x, gen, alpha)
        blends.append((alpha, out[0].detach().clone()))
        return out

    def spy_loss(self, outputs, idx, lam, partner, taught=None):
        loss = real_mixed_loss(self, outputs, idx, lam, partner, taught)
        losses.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(trainer, "mix_batch", spy_mix)
    monkeypatch.setattr(_Labels, "mixed_loss", spy_loss)
    hook = session.model.register_forward_pre_hook(lambda module, args: fed.append(args[0].detach().clone()))
    mean_loss = _train_epoch(session, torch.from_numpy(images), labels, cfg, shared)
    hook.remove()
    assert [alpha for alpha, _ in blends] == [0.4, 0.4] and len(fed) == 2
    for (_, blended), x in zip(blends, fed):
        torch.testing.assert_close(x, blended)
    assert mean_loss == pytest.approx(sum(losses) / 2)
