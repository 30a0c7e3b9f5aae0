"""A decision rule over shipped expression heads: members, how their probabilities mix, offsets, temperature.

Why a rule and not another network: the shipped heads err in opposite directions on real
faces (``ferplus`` reads real expressions as neutral, ``fer2013`` over-calls them), and the
class priors of FER's web images are not those of a lab's footage. Both are corrected after
the networks, with a handful of numbers chosen on real faces (``scripts/tune_decision_rule.py``)
and written down in a small JSON file beside the members (``<name>.rule.json``), which names
each member by file and sha256. For a face with member probabilities ``p_i`` (each member's
softmax at its own temperature):

1. **mix**: the first member (the *primary*) knows every output class. A class only it knows
   (``contempt``, which ``fer2013`` lacks) keeps its probability; the rest of the mass is shared
   out by the (weighted) mean over the members of their probabilities renormalised over the
   classes all members know. With ``ferplus`` and ``fer2013`` at equal weights:
   ``p(contempt) = p_ferplus(contempt)`` and, for the other seven,
   ``p(c) = (p_ferplus(c) + (1 - p_ferplus(contempt)) p_fer2013(c)) / 2``.
   A one-member rule leaves ``p`` as it is.
2. **offsets**: one per class, added to ``log p`` (a prior correction; the argmax of
   ``log p + offsets`` is the rule's label).
3. **temperature**: ``softmax((log p + offsets) / T)``, fitted after the offsets.

:class:`RuleNet` computes steps 1 and 2 as a network whose output stands in for logits, so
everything that turns a network's logits into probabilities (annotate's classifier,
``fervid evaluate``, test-time augmentation, calibration) applies a rule exactly as it applies
a single head, with the rule's temperature in its config.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fervid.io.atomic import atomic_path
from fervid.models.errors import WeightsError

RULE_FORMAT = "fervid-expression-rule/1"
#: A rule file's name ends in this; the model's name is what comes before it.
RULE_SUFFIX = ".rule.json"
#: Probabilities are clamped here before the log, so a member's underflow cannot make an offset meaningless.
MIN_PROB = 1e-30
#: The input fields every member must share: the classifier cuts and prepares a face once for all of them.
SHARED_INPUT = ("input_size", "mean", "std", "photometric", "alignment")


@dataclass(frozen=True)
class Member:
    """One network of a rule: a weight file beside the rule, the sha256 the rule was tuned on, its weight in the mix."""

    file: str
    sha256: str
    weight: float = 1.0  # relative: the mix divides by the sum over the members


@dataclass(frozen=True)
class RuleConfig:
    """What a ``.rule.json`` holds (see the module docstring); ``offsets`` follow ``classes``, the primary's."""

    members: tuple[Member, ...]
    classes: tuple[str, ...]
    offsets: tuple[float, ...]
    temperature: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a rule needs at least one member")
        if len(self.offsets) != len(self.classes):
            raise ValueError(f"{len(self.offsets)} offsets for {len(self.classes)} classes ({', '.join(self.classes)})")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not all(m.weight > 0 for m in self.members):
            raise ValueError(f"member weights must be > 0, got {', '.join(str(m.weight) for m in self.members)}")

    @property
    def weights(self) -> tuple[float, ...]:
        """Each member's share of the mix (summing to 1)."""
        total = sum(m.weight for m in self.members)
        return tuple(m.weight / total for m in self.members)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RULE_FORMAT,
            "members": [{"file": m.file, "sha256": m.sha256, "weight": m.weight} for m in self.members],
            "mix": "mean",
            "classes": list(self.classes),
            "offsets": [float(o) for o in self.offsets],
            "temperature": float(self.temperature),
            "info": self.info,
        }

    @classmethod
    def from_json(cls, raw: Any) -> RuleConfig:
        """Parse a rule file's JSON; a ValueError (one line) for anything this version cannot read."""
        if not isinstance(raw, dict) or raw.get("format") != RULE_FORMAT:
            raise ValueError(f"not a fervid decision rule (expected format {RULE_FORMAT})")
        if raw.get("mix", "mean") != "mean":
            raise ValueError(f"unknown mix {raw['mix']!r} (this version knows: mean)")
        try:
            members = tuple(
                Member(str(m["file"]), str(m["sha256"]), float(m.get("weight", 1.0))) for m in raw["members"]
            )
            return cls(members, tuple(str(c) for c in raw["classes"]), tuple(float(o) for o in raw["offsets"]),
                       float(raw.get("temperature", 1.0)), dict(raw.get("info", {})))  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise ValueError(f"incomplete rule ({type(exc).__name__}: {exc})") from None


def save_rule(path: str | Path, rule: RuleConfig) -> None:
    """Write a rule file atomically (temp name, then rename)."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(rule.to_json(), indent=1) + "\n")


def read_rule(path: Path) -> RuleConfig:
    """The rule in ``path``, or a one-line WeightsError naming the file and what is wrong."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: not a readable decision rule ({type(exc).__name__})") from None
    try:
        return RuleConfig.from_json(raw)
    except ValueError as exc:
        raise WeightsError(f"{path}: {exc}") from None


def mix_probabilities(
    probs: Sequence[torch.Tensor],
    member_classes: Sequence[Sequence[str]],
    classes: Sequence[str],
    weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """Step 1 of the module docstring: members' (B, K_i) probabilities -> (B, K) over ``classes`` (the primary's).

    ``weights``: each member's share of the mean (default: equal).
    """
    primary = probs[0]
    if len(probs) == 1:
        return primary
    shared = [c for c in classes if all(c in known for known in member_classes)]
    columns = torch.tensor([list(classes).index(c) for c in shared], device=primary.device)
    conditional = []
    for p, known in zip(probs, member_classes):
        part = p[:, [list(known).index(c) for c in shared]]
        conditional.append(part / part.sum(1, keepdim=True).clamp_min(MIN_PROB))
    mass = primary[:, columns].sum(1, keepdim=True)  # 1 - p(classes only the primary knows)
    mixed = primary.clone()
    share = torch.tensor(weights if weights is not None else [1.0] * len(probs), dtype=primary.dtype)
    share = (share / share.sum()).to(primary.device).view(-1, 1, 1)
    mixed[:, columns] = mass * (share * torch.stack(conditional)).sum(0)
    return mixed


def rule_logits(mixed: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Step 2: ``log p + offsets``, the rule's stand-in for logits (its argmax is the rule's label)."""
    return torch.log(mixed.clamp_min(MIN_PROB)) + offsets


class RuleNet(nn.Module):
    """The members and the rule as one network: normalised faces in, ``log p + offsets`` out (see the module)."""

    offsets: torch.Tensor  # a buffer, registered in __init__

    def __init__(
        self,
        members: Sequence[nn.Module],
        temperatures: Sequence[float],
        member_classes: Sequence[Sequence[str]],
        classes: Sequence[str],
        offsets: Sequence[float],
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.weights = tuple(float(w) for w in weights) if weights is not None else None
        self.members = nn.ModuleList(members)
        self.temperatures = tuple(float(t) for t in temperatures)
        self.member_classes = tuple(tuple(c) for c in member_classes)
        self.classes = tuple(classes)
        self.register_buffer("offsets", torch.tensor(list(offsets), dtype=torch.float32))

    @property
    def num_classes(self) -> int:
        """Outputs per face: the rule's classes (its first member's)."""
        return len(self.classes)

    def uncalibrated(self) -> RuleNet:
        """The same rule with every member at temperature 1 (sharing their networks): what ECE is before calibration."""
        raw = copy.copy(self)
        raw.temperatures = tuple(1.0 for _ in self.temperatures)
        return raw

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rule's output and the primary member's pooled features, each member run once (p_correct reads both)."""
        # torch types every attribute of a plain nn.Module (as ModuleList items are) as Tensor | Module.
        primary, features = self.members[0].forward_with_features(x)  # type: ignore[operator]  # (see above)
        outputs = [primary, *(net(x) for net in self.members[1:])]
        probs = [F.softmax(out.float() / t, dim=1) for out, t in zip(outputs, self.temperatures)]
        mixed = mix_probabilities(probs, self.member_classes, self.classes, self.weights)
        return rule_logits(mixed, self.offsets), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]
