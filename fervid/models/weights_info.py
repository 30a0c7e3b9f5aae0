"""Where a model's weights came from: one typed record for every loader, and run.json's entry built from it.

Each weight loader has a ``weights_info`` beside it that describes what it loads as a :class:`WeightsInfo`
(:func:`fervid.models.expression_weights.weights_info`, :func:`fervid.models.retinaface_weights.weights_info`,
:func:`fervid.models.face_embedding_weights.weights_info`,
:func:`fervid.models.shape_predictor_weights.weights_info`), in the spirit of timm's ``PretrainedCfg``; run.json's
``models`` are :meth:`WeightsInfo.record` of each, so provenance is written one way for all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Licence and data terms of the expression models shipped in fervid/weights (their model card says more).
SHIPPED_EXPRESSION_LICENCE = (
    "MIT (fervid); trained on FER2013 (research-only) and FER+ labels (MIT): research use, see fervid/weights/README.md"
)
#: A weight file the user gave: fervid cannot know its terms.
UNKNOWN_LICENCE = "unknown (not a file fervid ships or names)"


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightsInfo:
    """A model's weights: its name, SHA-256, where it was read from, its licence and the classes it outputs.

    ``source`` is a file's resolved path, or for weights embedded in an installed package that package and
    its version (``packaged``). ``details`` are what a loader knows beyond that (an expression model's
    training record, a decision rule), recorded after the common fields.
    """

    name: str
    sha256: str
    source: str
    licence: str
    classes: tuple[str, ...] = ()
    packaged: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.sha256) != 64:
            raise ValueError(f"{self.name}: sha256 must be 64 hex digits, got {self.sha256!r}")

    def record(self) -> dict[str, Any]:
        """run.json's entry for these weights."""
        where = {"package": self.source} if self.packaged else {"path": self.source}
        out: dict[str, Any] = {"name": self.name, **where, "sha256": self.sha256, "licence": self.licence}
        if self.classes:
            out["classes"] = list(self.classes)
        return {**out, **self.details}
