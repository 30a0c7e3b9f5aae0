"""Distillation (``fervid train --teacher``): what the teachers say about a batch, and how it enters the loss."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import fervid
from fervid.models.expression_weights import load_expression_model, save_weights
from fervid.train.data import ExpressionData
from fervid.train.distill import Teachers, distilled_targets
from fervid.train.joint import LabelSet, TrainingSet
from fervid.train.predict import predict_probs
from fervid.train.trainer import Head, TrainConfig, _Labels, _start, _train_epoch, soft_cross_entropy
from fervid.types import EMOTIONS

SHIPPED = Path(fervid.__file__).parent / "weights"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory) -> Path:
    """The shipped FER+ model saved with another input recipe (standardised crops, its own scale, hotter)."""
    loaded = load_expression_model(SHIPPED / "ferplus.pt")
    net, config = loaded.model, loaded.config
    path = tmp_path_factory.mktemp("teachers") / "other.pt"
    save_weights(path, net, replace(config, photometric="standardize", mean=0.1, std=0.9, temperature=2.5))
    return path


def _faces(n: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_each_head_learns_from_the_mean_calibrated_probabilities_of_its_teachers(other_teacher):
    """Each teacher reads the faces through its own weight config, as `evaluate` and `annotate` do."""
    faces = _faces()
    teachers = Teachers.load([SHIPPED / "ferplus.pt", other_teacher], [EMOTIONS[:7], EMOTIONS], CPU)
    assert list(teachers.models) == [1]  # both have FER+'s classes: the second head's teachers
    taught = teachers.probabilities(torch.from_numpy(faces).float().unsqueeze(1))
    teacher_files = [load_expression_model(p) for p in (SHIPPED / "ferplus.pt", other_teacher)]
    expected = [predict_probs(t.model, t.config, faces) for t in teacher_files]
    np.testing.assert_allclose(taught[1].numpy(), (expected[0] + expected[1]) / 2, atol=1e-5)
    assert not np.allclose(expected[0], expected[1], atol=1e-2)  # the two recipes differ, so the mean is tested
    assert [len(h) for h in teachers.sha256] == [64, 64]


def test_on_a_mixup_batch_each_teacher_sees_the_blend_of_its_own_inputs():
    faces = torch.from_numpy(_faces(6)).float().unsqueeze(1)
    teachers = Teachers.load(["ferplus"], [EMOTIONS], CPU)
    net, config = teachers.models[0][0]
    partner = torch.tensor([1, 2, 3, 4, 5, 0])
    taught = teachers.probabilities(faces, (0.3, partner))[0]
    from fervid.models.expression_input import prepare, probabilities

    x = prepare(faces, config)
    with torch.no_grad():
        expected = probabilities(net(0.3 * x + 0.7 * x[partner]), config)
    torch.testing.assert_close(taught, expected)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_a_distillation_weight_outside_0_1_is_refused(weight):
    with pytest.raises(ValueError, match="0-1"):
        TrainConfig(distill=weight)


def test_a_teacher_whose_classes_no_head_has_is_refused():
    with pytest.raises(ValueError, match="match no training label set"):
        Teachers.load([SHIPPED / "fer2013.pt"], [EMOTIONS], CPU)


def test_targets_move_towards_the_teacher_by_the_weight():
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    teacher = torch.tensor([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    torch.testing.assert_close(distilled_targets(labels, teacher, 0.25), 0.75 * labels + 0.25 * teacher)
    assert distilled_targets(labels, None, 0.5) is labels and distilled_targets(labels, teacher, 0.0) is labels


def test_the_loss_of_a_taught_head_is_against_the_distilled_targets_and_others_keep_their_labels():
    targets = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    sets = [LabelSet(name, ("x", "y", "z"), targets, np.ones(4, bool)) for name in ("a", "b")]
    data = TrainingSet(np.zeros((4, 48, 48), np.uint8), sets)
    cfg = TrainConfig(class_weight_power=0.0, label_smoothing=0.0, distill=0.4)
    labels = _Labels.on(data, cfg, CPU)
    gen = torch.Generator().manual_seed(0)
    outputs = [torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)]
    teacher = torch.softmax(torch.randn(4, 3, generator=gen), dim=1)
    idx, ones = torch.arange(4), torch.ones(3)
    t = torch.from_numpy(targets)
    expected = soft_cross_entropy(outputs[0], t, ones) + soft_cross_entropy(outputs[1], 0.6 * t + 0.4 * teacher, ones)
    torch.testing.assert_close(labels.loss(outputs, idx, {1: teacher}), expected)
    assert not torch.allclose(labels.loss(outputs, idx), expected)


def test_a_training_epoch_with_a_teacher_teaches_from_the_faces_the_student_sees(monkeypatch):
    """The trainer's wiring: the teacher reads each step's augmented faces, blended as the student's, and its
    probabilities reach the loss."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    targets = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 64)]
    data = TrainingSet(images, [LabelSet("ferplus", EMOTIONS, targets, np.ones(64, bool))])
    val = ExpressionData(images[:8], targets[:8], EMOTIONS, [str(i) for i in range(8)])
    cfg = TrainConfig(epochs=1, batch_size=32, widths=(8, 8, 16, 16), mixup=0.4, teachers=("ferplus",), distill=0.7)
    session, shared, _ = _start(cfg, data, [Head(data.label_sets[0], val, Path("unused.pt"))], CPU)
    labels = _Labels.on(data, cfg, CPU)
    teachers = Teachers.load(cfg.teachers, [EMOTIONS], CPU)

    seen, fed, taught_in_loss = [], [], []
    real_probabilities, real_mixed_loss = Teachers.probabilities, _Labels.mixed_loss

    def spy_probabilities(self, crops, blend=None):
        out = real_probabilities(self, crops, blend)
        seen.append((crops.clone(), blend, out[0].clone()))
        return out

    def spy_loss(self, outputs, idx, lam, partner, taught=None):
        taught_in_loss.append(taught[0].clone())
        return real_mixed_loss(self, outputs, idx, lam, partner, taught)

    monkeypatch.setattr(Teachers, "probabilities", spy_probabilities)
    monkeypatch.setattr(_Labels, "mixed_loss", spy_loss)
    hook = session.model.register_forward_pre_hook(lambda module, args: fed.append(args[0].detach().clone()))
    _train_epoch(session, torch.from_numpy(images), labels, cfg, shared, teachers)
    hook.remove()
    from fervid.models.expression_input import prepare

    assert len(seen) == len(fed) == len(taught_in_loss) == 2
    for (crops, (lam, partner), probs), x, taught in zip(seen, fed, taught_in_loss):
        student = prepare(crops, shared)
        torch.testing.assert_close(x, lam * student + (1 - lam) * student[partner])
        torch.testing.assert_close(taught, probs)
