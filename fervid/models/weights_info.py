"""Where a model's weights came from, and what every weight loader returns: one typed result for all of them.

Every loader returns a :class:`Loaded`: the network, the config that says how to feed it, and a
:class:`WeightsInfo` describing the weights it read, taken at the load (hashed then, so a file rewritten later
cannot change what a run says it used), in the spirit of timm's ``PretrainedCfg``:

* :func:`fervid.models.expression_weights.load_expression_model` (a ``.pt`` file or a decision rule),
* :func:`fervid.models.retinaface_weights.load_detector`,
* :func:`fervid.models.face_embedding_weights.load_face_embedding`,
* :func:`fervid.models.shape_predictor_weights.load_shape_predictor`.

run.json's ``models`` are :meth:`WeightsInfo.record` of each (:class:`fervid.engine.Engine`), so provenance
is written one way for all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

#: Licence and data terms of the expression models shipped in fervid/weights (their model card says more).
SHIPPED_EXPRESSION_LICENCE = (
    "MIT (fervid); trained on FER2013 (research-only) and FER+ labels (MIT): research use, see fervid/weights/README.md"
)
#: A weight file the user gave: fervid cannot know its terms.
UNKNOWN_LICENCE = "unknown (not a file fervid ships or names)"

# Covariant: a Loaded[RuleNet, ...] is a Loaded[ExpressionModel, ...] (the result is frozen).
M = TypeVar("M", covariant=True)  # the loaded network
C = TypeVar("C", covariant=True)  # its config (None where the weights need none beside the network)


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


@dataclass(frozen=True)
class Loaded(Generic[M, C]):
    """What a weight loader returns: the network, the config that goes with its weights, and their provenance.

    ``model`` is in eval mode on the CPU unless the loader says otherwise (the cached loaders move it);
    ``config`` says how to feed it and read its output (None where the network needs nothing beside itself);
    ``info`` is what run.json records.
    """

    model: M
    config: C
    info: WeightsInfo
