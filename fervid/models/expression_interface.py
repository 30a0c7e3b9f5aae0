"""What every trainable expression network offers, declared once: pooled features, a linear head, its classifier swap.

In the spirit of timm's ``forward_features`` / ``forward_head`` / ``reset_classifier``: the trainer
(:mod:`fervid.train.trainer`), annotate's classifier and ``p_correct`` use a network only through
:class:`ExpressionNetwork`, never through its attribute names, so a new architecture needs only to
provide it. :class:`LinearHead` is the one implementation the shipped architectures share
(:class:`~fervid.models.expression.ExpressionNet`,
:class:`~fervid.models.expression_face_resnet.FaceResNetExpressionNet`).
Their classifier stays the module ``fc``, so the state-dict keys of the shipped weight files do not change.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class ExpressionNetwork(Protocol):
    """A network whose logits are a linear head over pooled features (dropout between them while training)."""

    @property
    def head(self) -> nn.Linear:
        """The classifier: ``feature_dim`` -> ``num_classes`` logits."""
        ...

    @property
    def feature_dim(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) pooled features of (B, 1, H, W) normalised crops: what every head reads."""
        ...

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits from :meth:`features`; with ``pre_logits`` what the head reads (the features after dropout)."""
        ...

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def reset_classifier(self, head: nn.Linear) -> None:
        """Put ``head`` in place of the classifier (the trainer's per-label-set heads become plain networks)."""
        ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class LinearHead(nn.Module):
    """:class:`ExpressionNetwork` for a module that defines ``features``, ``dropout`` and ``fc`` (its classifier)."""

    fc: nn.Linear
    dropout: nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def head(self) -> nn.Linear:
        return self.fc

    @property
    def feature_dim(self) -> int:
        return self.fc.in_features

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits from :meth:`features` (with ``pre_logits``: the features after dropout, what the head reads)."""
        features = self.dropout(features)
        return features if pre_logits else self.fc(features)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the pooled features they come from, in one pass (p_correct reads both)."""
        features = self.features(x)
        return self.forward_head(features), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.features(x))

    def reset_classifier(self, head: nn.Linear) -> None:
        # Assigned to ``fc``: a module stored under another name would change the weight file's keys.
        self.fc = head


def body_shapes(net: ExpressionNetwork) -> list[tuple[str, torch.Size]]:
    """The (name, shape) of every tensor of ``net`` but its head's: two networks with equal lists share a body."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"{type(net).__name__} is not a torch module")
    head = {id(t) for t in net.head.state_dict(keep_vars=True).values()}
    return [(k, v.shape) for k, v in net.state_dict(keep_vars=True).items() if id(v) not in head]


__all__ = ["ExpressionNetwork", "LinearHead", "body_shapes"]
