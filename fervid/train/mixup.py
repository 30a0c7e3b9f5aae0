"""Mixup: train on blends of two faces, with the two faces' losses blended by the same weight.

Why: FER's labels are noisy and its classes overlap (sad and neutral, fear and surprise, a
forced smile and a real one). A network trained on a blend ``lam * a + (1 - lam) * b`` against
``lam * loss(a) + (1 - lam) * loss(b)`` is pushed towards predictions that change linearly
between faces instead of jumping at sharp, overconfident class boundaries (Zhang et al., 2018,
"mixup: Beyond Empirical Risk Minimization").

``lam`` is drawn from Beta(alpha, alpha) once per batch by inverting the Beta CDF at a uniform
number from the run's own generator, so that a resumed run draws the same sequence (torch's
Beta distribution takes no generator). Small ``alpha`` (0.1-0.4) keeps most blends close to
one of the two faces.
"""

from __future__ import annotations

import torch
from scipy.special import betaincinv


def mixup_weight(alpha: float, gen: torch.Generator) -> float:
    """One draw of ``lam`` ~ Beta(alpha, alpha) from ``gen`` (``alpha`` > 0)."""
    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    u = float(torch.rand((), generator=gen, device=gen.device))
    return float(betaincinv(alpha, alpha, u))


def mix_batch(x: torch.Tensor, gen: torch.Generator, alpha: float) -> tuple[torch.Tensor, float, torch.Tensor]:
    """The batch blended with a shuffled copy of itself: (blended x, lam, the partner of each row)."""
    lam = mixup_weight(alpha, gen)
    partner = torch.randperm(len(x), device=x.device, generator=gen)
    return lam * x + (1 - lam) * x[partner], lam, partner
