"""Temperature scaling and expected calibration error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fervid.train.calibrate import expected_calibration_error, fit_temperature


def _sample(n: int, true_temperature: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose labels are drawn from softmax(logits / true_temperature): calibrated at that temperature."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 7, generator=gen) * 3
    labels = torch.multinomial(torch.softmax(logits / true_temperature, dim=1), 1, generator=gen)[:, 0]
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.7, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_that_generated_the_labels(true_temperature: float) -> None:
    logits, labels = _sample(20000, true_temperature)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.06)


def test_ece_is_small_when_calibrated_and_large_when_overconfident() -> None:
    logits, labels = _sample(20000, 2.0)
    calibrated = torch.softmax(logits / 2.0, dim=1).numpy()
    overconfident = torch.softmax(logits / 0.5, dim=1).numpy()
    assert expected_calibration_error(calibrated, labels.numpy()) < 0.02
    assert expected_calibration_error(overconfident, labels.numpy()) > 0.15


def test_ece_by_hand_and_empty() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])  # bin 0.9: accuracy 0.5 vs 0.9; bin 0.6: accuracy 1.0 vs 0.6
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 0.0
    assert fit_temperature(torch.zeros((0, 3)), torch.zeros(0, dtype=torch.long)) == 1.0
