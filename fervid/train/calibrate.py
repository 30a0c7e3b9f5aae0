"""Calibrated probabilities: a softmax temperature fitted on validation, and expected calibration error.

Researchers average ``p_<class>`` over time and compare the averages between people and
conditions, so a 0.7 should mean the model is right about 70 % of the time. Networks
trained with cross-entropy are usually over-confident; dividing the logits by one
temperature fitted on the validation split (Guo et al., 2017) fixes most of it without
changing any argmax, so accuracy is untouched.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: Bins of the expected calibration error, as in the literature.
ECE_BINS = 15


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of ``softmax(logits / T)``.

    One parameter, a smooth convex-in-practice objective: L-BFGS on log T converges in a
    few steps. Returns 1.0 when there is nothing to fit.
    """
    if len(logits) == 0:
        return 1.0
    logits = logits.detach().float().cpu().clone()  # a normal tensor, also when made in inference mode
    labels = labels.detach().long().cpu()
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the confidence-weighted gap between confidence and accuracy, over equal-width confidence bins."""
    if len(probs) == 0:
        return 0.0
    return calibration_gap(probs.max(axis=1), probs.argmax(axis=1) == labels, bins)


def calibration_gap(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of any probability that a label is right (the top probability, ``p_correct``): the share-weighted gap
    between it and the hit rate, over equal-width bins."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)
