"""One contract for every expression architecture a weight file can hold: forward, backward, save -> load.

Parametrised over ``ARCHITECTURES`` (what :meth:`ExpressionConfig.build` makes) and a decision rule over two
heads (what :func:`load_expression_model` makes of a ``.rule.json``), each at a tiny size on random input, so
a new architecture is checked by adding it to the registry.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fervid.models.expression_input import prepare, probabilities
from fervid.models.expression_interface import ExpressionNetwork
from fervid.models.expression_rule import Member, RuleConfig, RuleNet, save_rule
from fervid.models.expression_weights import (
    ARCHITECTURES,
    ExpressionConfig,
    ExpressionModel,
    load_expression_model,
    save_weights,
)
from fervid.models.weights_info import sha256_file
from fervid.types import EMOTIONS

#: A tiny network of each architecture (random weights): small enough for a CPU test, same code paths.
TINY = {
    "resnet": ExpressionConfig(EMOTIONS, widths=(8, 8, 16, 16), blocks=(1, 1, 1), mean=0.5, std=0.25),
    "face-resnet": ExpressionConfig(
        EMOTIONS,
        arch="face-resnet",
        widths=(8, 16, 16, 32, 32),
        blocks=(1, 1, 1, 1, 1),
        trunk_size=103,
        mean=0.45,
        std=1.0,
        photometric="equalize",
    ),  # fmt: skip
}
CASES = [*ARCHITECTURES, "rule"]


def _scrambled(net: nn.Module, seed: int) -> nn.Module:
    """``net`` with every parameter and batch-norm statistic moved off its initial value, so a load that kept
    a fresh network's values (or lost one tensor) gives different outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():  # positive noise: a running variance stays positive
                tensor.add_(0.1 * torch.rand(tensor.shape, generator=generator))
    return net


def _network(case: str) -> tuple[ExpressionModel, ExpressionConfig]:
    """A tiny network of ``case`` and its config (for ``rule``: the rule over a FER+ and a FER2013 head)."""
    if case != "rule":
        return _scrambled(TINY[case].build(), seed=len(case)), TINY[case]
    ferplus, fer2013 = _network("resnet")[0], _scrambled(TINY["resnet"].build(), seed=7)
    fer2013.reset_classifier(_scrambled(nn.Linear(fer2013.feature_dim, 7), seed=8))
    offsets = [0.1 * k for k in range(len(EMOTIONS))]
    net = RuleNet([ferplus, fer2013], [1.0, 1.5], [EMOTIONS, EMOTIONS[:7]], EMOTIONS, offsets, [2 / 3, 1 / 3])
    return net, TINY["resnet"]


def _save(case: str, net: ExpressionModel, config: ExpressionConfig, folder: Path) -> Path:
    """Write ``net`` the way fervid writes models (``save_weights``; a rule with ``save_rule`` beside its heads)."""
    if not isinstance(net, RuleNet):
        save_weights(folder / f"{case}.pt", net, config)
        return folder / f"{case}.pt"
    members = []
    for i, (member, classes) in enumerate(zip(net.members, net.member_classes)):
        path = folder / f"head{i}.pt"
        head = replace(config, classes=classes, temperature=net.temperatures[i])
        save_weights(path, member, head)
        members.append(Member(path.name, sha256_file(path), (net.weights or (1.0,) * len(net.members))[i]))
    rule = RuleConfig(tuple(members), tuple(net.classes), tuple(net.offsets.tolist()), temperature=0.8)
    save_rule(folder / "tiny.rule.json", rule)
    return folder / "tiny.rule.json"


def _faces(n: int = 3, size: int = 48) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0)) * 255


@pytest.mark.parametrize("case", CASES)
def test_forward_gives_one_finite_distribution_per_face(case: str) -> None:
    net, config = _network(case)
    x = prepare(_faces(), config)
    with torch.no_grad():
        logits = net.eval()(x)
        with_features, features = net.forward_with_features(x)
    assert logits.shape == (3, net.num_classes) == (3, len(EMOTIONS))
    probs = probabilities(logits, config)
    assert torch.isfinite(probs).all() and torch.allclose(probs.sum(1), torch.ones(3))
    torch.testing.assert_close(with_features, logits)  # p_correct reads both from one pass: the same logits
    assert features.dim() == 2 and len(features) == 3


@pytest.mark.parametrize("case", CASES)
def test_backward_reaches_every_trainable_parameter_with_finite_gradients(case: str) -> None:
    net, config = _network(case)
    net.train()
    logits = net(prepare(_faces(), config))
    F.cross_entropy(logits, torch.tensor([0, 3, 6])).backward()
    trainable = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    assert trainable
    missing = [name for name, p in trainable if p.grad is None]
    assert not missing, f"no gradient reaches {missing[:3]}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    assert any(p.grad.abs().sum() > 0 for _, p in trainable)


@pytest.mark.parametrize("case", CASES)
def test_saved_then_loaded_gives_the_same_outputs(case: str, tmp_path: Path) -> None:
    net, config = _network(case)
    path = _save(case, net, config, tmp_path)
    loaded = load_expression_model(path)
    assert type(loaded.model) is type(net) and not loaded.model.training
    assert list(loaded.model.state_dict()) == list(net.state_dict())  # the keys of a weight file do not move
    assert loaded.info.sha256 == sha256_file(path) and loaded.info.classes == EMOTIONS
    x = prepare(_faces(), loaded.config)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), net.eval()(x))
    if case != "rule":
        assert loaded.config == config


@pytest.mark.parametrize("case", ARCHITECTURES)
def test_every_architecture_is_an_expression_network_whose_head_can_be_swapped(case: str) -> None:
    """The trainer's interface (:class:`ExpressionNetwork`): features -> head, and a new head under the same keys."""
    net, config = _network(case)
    assert isinstance(net, ExpressionNetwork)
    x = prepare(_faces(), config)
    with torch.no_grad():
        features = net.eval().features(x)
        assert features.shape == (3, net.feature_dim)
        torch.testing.assert_close(net.forward_head(features), net(x))
        torch.testing.assert_close(net.forward_head(features, pre_logits=True), features)  # eval: dropout is off
        keys = list(net.state_dict())
        head = _scrambled(nn.Linear(net.feature_dim, 3), seed=3)
        net.reset_classifier(head)
        assert net.head is head and net.num_classes == 3 and list(net.state_dict()) == keys
        torch.testing.assert_close(net(x), head(features))


def test_a_rule_is_not_a_network_training_can_start_from() -> None:
    """A rule has no single head, so the trainer's --init refuses it (trainer._build checks the protocol)."""
    assert not isinstance(_network("rule")[0], ExpressionNetwork)
