"""Save and load expression-model weight files, and check them against the sha256 manifest.

A weight file is a plain dict saved with ``torch.save`` and read with
``weights_only=True`` (no pickled code): the architecture arguments, class names, input
size and normalisation live next to the tensors, so inference can never disagree with
training about how to prepare a face.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from fervid.io.atomic import atomic_path
from fervid.models.errors import WeightsError
from fervid.models.expression import ExpressionNet
from fervid.models.expression_face_resnet import DLIB_TRUNK_SIZE, FaceResNetExpressionNet
from fervid.models.expression_input import PHOTOMETRIC, PIXEL_SCALE_PHOTOMETRIC
from fervid.models.expression_rule import RULE_SUFFIX, SHARED_INPUT, RuleNet, read_rule
from fervid.models.weights_info import SHIPPED_EXPRESSION_LICENCE, UNKNOWN_LICENCE, Loaded, WeightsInfo, sha256_file

#: How annotate places a face in the model's crop (:mod:`fervid.align`).
ALIGNMENTS = ("box", "landmarks")
#: Networks a weight file can hold: ``resnet`` (:class:`ExpressionNet`, the small default models) and
#: ``face-resnet`` (:class:`FaceResNetExpressionNet`, dlib's face-recognition trunk; larger and slower).
ARCHITECTURES = ("resnet", "face-resnet")
#: Any network a weight file (or a decision rule over weight files) can hold.
ExpressionModel = ExpressionNet | FaceResNetExpressionNet | RuleNet

FORMAT = "fervid-expression/1"
#: Shipped weights, model card, metrics and SHA256SUMS: inside the package (``fervid/weights``), so an
#: installed wheel has them; the repository's ``weights/`` is a link to the same folder.
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
MANIFEST = "SHA256SUMS"


def check_input_choices(photometric: str, alignment: str, arch: str = "resnet") -> None:
    """A ValueError naming the choices unless annotate knows how to apply them, and they fit together.

    A ``face-resnet`` reads its pretrained weights' pixel scale, which its config can only express
    for a photometric normalisation whose output is ``pixel / 255``.
    """
    if photometric not in PHOTOMETRIC:
        raise ValueError(f"unknown photometric normalisation {photometric!r}; choose one of {PHOTOMETRIC}")
    if alignment not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {alignment!r}; choose one of {ALIGNMENTS}")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    if arch == "face-resnet" and photometric not in PIXEL_SCALE_PHOTOMETRIC:
        raise ValueError(
            f"face-resnet reads dlib's pixel scale, so its photometric normalisation must be one of "
            f"{', '.join(PIXEL_SCALE_PHOTOMETRIC)}, not {photometric!r}"
        )


@dataclass
class ExpressionConfig:
    """Everything needed to rebuild the model and feed it faces the way it was trained.

    ``widths`` and ``blocks`` are the network's channel widths and residual blocks (for
    ``face-resnet``: dlib's widths and units per level); ``trunk_size`` is the size a
    ``face-resnet`` resizes its ``input_size`` crop to inside the network.
    """

    classes: tuple[str, ...]
    arch: str = "resnet"  # files saved before this field existed hold the small resnet
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (1, 1, 1)
    dropout: float = 0.3
    input_size: int = 48
    mean: float = 0.5
    std: float = 0.25
    photometric: str = "none"  # per-crop normalisation before mean/std (fervid.models.expression_input)
    temperature: float = 1.0  # softmax temperature fitted on validation (calibrated probabilities)
    # How annotate frames a face (fervid.align): files saved before this field existed were used
    # with the five-landmark alignment, so that is what a file without it keeps.
    alignment: str = "landmarks"
    trunk_size: int = DLIB_TRUNK_SIZE
    info: dict[str, Any] = field(default_factory=dict)  # training provenance and metrics

    def __post_init__(self) -> None:
        check_input_choices(self.photometric, self.alignment, self.arch)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    def build(self) -> ExpressionNet | FaceResNetExpressionNet:
        """A fresh network of this config's architecture (weights untrained)."""
        if self.arch == "face-resnet":
            return FaceResNetExpressionNet(len(self.classes), self.widths, self.blocks, self.dropout, self.trunk_size)
        return ExpressionNet(len(self.classes), self.widths, self.blocks, self.dropout)


def save_weights(path: str | Path, model: torch.nn.Module, config: ExpressionConfig) -> None:
    """Write a weight file atomically (temp name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "config": json.dumps(asdict(config)), "state_dict": state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _expected_sha256(path: Path) -> str | None:
    manifest = path.parent / MANIFEST
    if not manifest.exists():
        return None
    for line in manifest.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == path.name:
            return parts[0]
    return None


def _rule_name(path: Path) -> str | None:
    """The model name of a rule file (``default.rule.json`` -> ``default``), None for any other file."""
    return path.name[: -len(RULE_SUFFIX)] if path.name.endswith(RULE_SUFFIX) else None


def shipped_models() -> list[str]:
    """Names of the models in weights/: weight files and decision rules (not checkpoints like ``x.last.pt``)."""
    heads = [p.stem for p in WEIGHTS_DIR.glob("*.pt")]
    rules = [_rule_name(p) or "" for p in WEIGHTS_DIR.glob(f"*{RULE_SUFFIX}")]
    return sorted(name for name in heads + rules if name and "." not in name)


def is_rule(name_or_path: str | Path) -> bool:
    """Whether a model name or path is a decision rule (:mod:`fervid.models.expression_rule`)."""
    return _rule_name(resolve_model(name_or_path)) is not None


def resolve_model(name_or_path: str | Path) -> Path:
    """A shipped model name (``ferplus``), a ``.pt`` file or a ``.rule.json`` file -> existing path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".pt" or candidate.name.endswith(RULE_SUFFIX) or candidate.exists():
        if not candidate.exists():
            raise WeightsError(f"{candidate}: no such weight file")
        return candidate
    for shipped in (WEIGHTS_DIR / f"{name_or_path}.pt", WEIGHTS_DIR / f"{name_or_path}{RULE_SUFFIX}"):
        if shipped.exists():
            return shipped
    available = ", ".join(shipped_models()) or "none"
    raise WeightsError(f"unknown model {name_or_path!r}; shipped models: {available}")


def load_expression_model(name_or_path: str | Path, verify: bool = True) -> Loaded[ExpressionModel, ExpressionConfig]:
    """A model in eval mode, its config and its provenance; the sha256 manifest beside shipped weights is checked first.

    A decision rule (``.rule.json``) loads as a :class:`~fervid.models.expression_rule.RuleNet` over its
    members, with a config that holds the members' input fields and the rule's classes and temperature, so
    callers treat it as one network (see :func:`load_rule`). ``info`` is named ``name_or_path`` as given and
    hashed now, next to the load: training may rewrite weights/ later.
    """
    path = resolve_model(name_or_path)
    if verify:
        check_manifest(path)
    if _rule_name(path) is not None:
        return load_rule(path, verify, name=str(name_or_path))
    model, config = _load_network(path)
    return Loaded(model, config, _weights_info(str(name_or_path), path, config))


#: What run.json keeps of a model's training record.
TRAINING_RECORD = ("val_accuracy", "test_accuracy", "best_epoch", "epochs", "train_images", "hardware", "command")


def _weights_info(name: str, path: Path, config: ExpressionConfig) -> WeightsInfo:
    """The provenance of the model in ``path`` as loaded with ``config``: its training record, and a rule's content."""
    details: dict[str, Any] = {"training": {k: config.info[k] for k in TRAINING_RECORD if k in config.info}}
    if "rule" in config.info:  # a decision rule: its members (file, sha256, weight), offsets and temperature
        details["rule"] = config.info["rule"]
    shipped = path.resolve().parent == WEIGHTS_DIR.resolve()
    return WeightsInfo(name=name, sha256=sha256_file(path), source=str(path.resolve()),
                       licence=SHIPPED_EXPRESSION_LICENCE if shipped else UNKNOWN_LICENCE,
                       classes=tuple(config.classes), details=details)  # fmt: skip


def check_manifest(path: Path) -> None:
    """A WeightsError when ``path`` is listed in the SHA256SUMS beside it with another sha256."""
    expected = _expected_sha256(path)
    if expected is not None and sha256_file(path) != expected:
        raise WeightsError(f"{path}: sha256 does not match {MANIFEST} (corrupted or modified weight file)")


def _load_network(path: Path) -> tuple[ExpressionModel, ExpressionConfig]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise WeightsError(f"{path}: not a readable weight file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a fervid expression model (expected format {FORMAT})")
    raw = json.loads(payload["config"])
    try:
        config = ExpressionConfig(
            classes=tuple(raw.pop("classes")),
            widths=tuple(raw.pop("widths")),
            blocks=tuple(raw.pop("blocks")),
            **raw,
        )
    except (KeyError, TypeError, ValueError) as exc:  # a config this version cannot read
        raise WeightsError(f"{path}: unreadable model config ({exc})") from None
    model = config.build()
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the architecture in its config ({exc})") from None
    return model.eval(), config


def load_rule(path: Path, verify: bool = True, name: str | None = None) -> Loaded[RuleNet, ExpressionConfig]:
    """A decision rule's network over its members, its config (the members' input, the rule's temperature) and
    its provenance (named ``name``, default the path).

    Each member is a ``.pt`` file beside the rule; with ``verify`` its sha256 must be the one the rule
    names (a rule tuned on one head says nothing about another). The config's ``info["rule"]`` is the
    rule file's content, which run.json records. Every problem is a one-line WeightsError naming the rule.
    """
    rule = read_rule(path)
    nets, configs = [], []
    for member in rule.members:
        member_path = path.parent / member.file
        if Path(member.file).name != member.file or member_path.suffix != ".pt" or not member_path.is_file():
            raise WeightsError(f"{path}: unknown member {member.file!r} (no such weight file beside the rule)")
        if verify and sha256_file(member_path) != member.sha256:
            raise WeightsError(f"{path}: member {member.file} is not the file the rule was tuned on (sha256 differs)")
        loaded = load_expression_model(member_path, verify)
        nets.append(loaded.model)
        configs.append(loaded.config)
    primary = configs[0]
    if rule.classes != primary.classes:
        raise WeightsError(f"{path}: the rule's classes ({', '.join(rule.classes)}) are not its first member's "
                           f"({', '.join(primary.classes)})")  # fmt: skip
    for member, config in zip(rule.members[1:], configs[1:]):
        unknown = [c for c in config.classes if c not in primary.classes]
        differs = [k for k in SHARED_INPUT if getattr(config, k) != getattr(primary, k)]
        if unknown or differs:
            why = f"classes {', '.join(unknown)} unknown to the first member" if unknown else ", ".join(differs)
            raise WeightsError(f"{path}: member {member.file} does not fit the first member ({why})")
    temperatures, classes = [c.temperature for c in configs], [c.classes for c in configs]
    net = RuleNet(nets, temperatures, classes, rule.classes, rule.offsets, rule.weights)
    config = replace(primary, temperature=rule.temperature, info={**rule.info, "rule": rule.to_json()})
    return Loaded(net.eval(), config, _weights_info(str(path) if name is None else name, path, config))
