"""Distillation: train a head towards a teacher's probabilities as well as towards its labels.

Why: a FER label is one annotator's (FER2013) or ten annotators' (FER+) call on a face that
often shows two expressions at once; a stronger network's probabilities say how much of
each it sees, which is more to learn from than a one-hot label (Hinton et al., 2015,
"Distilling the Knowledge in a Neural Network"). The teacher can be a larger model trained
where there is a GPU, or several of our own models, whose averaged probabilities are more
accurate than any one of them (an ensemble distilled into one network).

Each teacher sees the same augmented face as the student, prepared by the teacher's own
weight config (its photometric normalisation, mean, std and input size; the one
:func:`~fervid.models.expression_input.prepare` that annotate uses), and gives its
calibrated probabilities (softmax at its stored temperature, fitted on validation): they
are the teacher's honest belief, already softer than its raw softmax. A head's target is
then ``(1 - weight) * label + weight * mean teacher probability``. Teachers are matched to
heads by their classes, so the FER+ head learns from FER+ teachers and the FER2013 head
from FER2013 ones; a head without a teacher keeps its labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from fervid.models.expression_input import prepare, probabilities
from fervid.models.expression_weights import (
    ExpressionConfig,
    ExpressionModel,
    load_expression_model,
)


@dataclass
class Teachers:
    """The teacher models of each head (by head position), in eval mode on the training device."""

    models: dict[int, list[tuple[ExpressionModel, ExpressionConfig]]]
    sha256: list[str]  # of each teacher file, in the order given (recorded with the trained weights)

    @classmethod
    def load(
        cls, paths: Sequence[str | Path], head_classes: Sequence[tuple[str, ...]], device: torch.device
    ) -> Teachers:
        """Read each teacher file and give it to the head with its classes (a ValueError if none has them)."""
        models: dict[int, list[tuple[ExpressionModel, ExpressionConfig]]] = {}
        hashes: list[str] = []
        for path in paths:
            loaded = load_expression_model(path, verify=False)
            net, config = loaded.model, loaded.config
            hashes.append(loaded.info.sha256)
            if config.classes not in head_classes:
                raise ValueError(f"{path}: teacher classes {config.classes} match no training label set")
            # Module.to takes memory_format (torch's docs); its stub's overloads leave it out.
            net = net.to(device).to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]  # no memory_format in stub
            for p in net.parameters():
                p.requires_grad_(False)
            models.setdefault(list(head_classes).index(config.classes), []).append((net, config))
        return cls(models, hashes)

    @torch.no_grad()
    def probabilities(
        self, crops: torch.Tensor, blend: tuple[float, torch.Tensor] | None = None
    ) -> dict[int, torch.Tensor]:
        """Each taught head's mean teacher probabilities (B, K) for augmented crops (B, 1, H, W) in [0, 255].

        ``blend`` (``lam``, ``partner``) is a mixup batch's: each teacher sees the same blend
        of its own prepared inputs as the student sees of its.
        """
        out: dict[int, torch.Tensor] = {}
        for head, teachers in self.models.items():
            total: torch.Tensor | None = None
            for net, config in teachers:
                x = prepare(crops, config)
                if blend is not None:
                    lam, partner = blend
                    x = lam * x + (1 - lam) * x[partner]
                p = probabilities(net(x.contiguous(memory_format=torch.channels_last)), config)
                total = p if total is None else total + p
            assert total is not None  # every head has a teacher (__init__)
            out[head] = total / len(teachers)
        return out


def distilled_targets(labels: torch.Tensor, teacher: torch.Tensor | None, weight: float) -> torch.Tensor:
    """A head's training targets: its label distributions, moved ``weight`` of the way to the teacher's."""
    if teacher is None or weight == 0:
        return labels
    return (1 - weight) * labels + weight * teacher.to(labels.dtype)
