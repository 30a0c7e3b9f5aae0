"""Save and load expression-model weight files, and check them against the sha256 manifest.

A weight file is a plain dict saved with ``torch.save`` and read with
``weights_only=True`` (no pickled code): the architecture arguments, class names, input
size and normalisation live next to the tensors, so inference can never disagree with
training about how to prepare a face.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fervid.io.atomic import atomic_path
from fervid.models.errors import WeightsError
from fervid.models.expression import ExpressionNet
from fervid.models.expression_face_resnet import DLIB_TRUNK_SIZE, FaceResNetExpressionNet
from fervid.models.expression_input import PHOTOMETRIC, PIXEL_SCALE_PHOTOMETRIC

#: How annotate places a face in the model's crop (:mod:`fervid.align`).
ALIGNMENTS = ("box", "landmarks")
#: Networks a weight file can hold: ``resnet`` (:class:`ExpressionNet`, the small default models) and
#: ``face-resnet`` (:class:`FaceResNetExpressionNet`, dlib's face-recognition trunk; larger and slower).
ARCHITECTURES = ("resnet", "face-resnet")
#: Any network a weight file can hold.
ExpressionModel = ExpressionNet | FaceResNetExpressionNet

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

    def build(self) -> ExpressionModel:
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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_sha256(path: Path) -> str | None:
    manifest = path.parent / MANIFEST
    if not manifest.exists():
        return None
    for line in manifest.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == path.name:
            return parts[0]
    return None


def shipped_models() -> list[str]:
    """Names of the models in weights/ (training checkpoints like ``x.last.pt`` are not models)."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt") if "." not in p.stem)


def resolve_model(name_or_path: str | Path) -> Path:
    """A shipped model name (``ferplus``) or a path to a ``.pt`` file -> existing path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".pt" or candidate.exists():
        if not candidate.exists():
            raise WeightsError(f"{candidate}: no such weight file")
        return candidate
    shipped = WEIGHTS_DIR / f"{name_or_path}.pt"
    if not shipped.exists():
        available = ", ".join(shipped_models()) or "none"
        raise WeightsError(f"unknown model {name_or_path!r}; shipped models: {available}")
    return shipped


def load_weights(name_or_path: str | Path, verify: bool = True) -> tuple[ExpressionModel, ExpressionConfig]:
    """Load a model in eval mode; the sha256 manifest beside shipped weights is checked first."""
    path = resolve_model(name_or_path)
    if verify:
        expected = _expected_sha256(path)
        if expected is not None and sha256_file(path) != expected:
            raise WeightsError(f"{path}: sha256 does not match {MANIFEST} (corrupted or modified weight file)")
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
