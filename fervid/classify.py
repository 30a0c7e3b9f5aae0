"""Expression classification of detected faces, batched over all faces of a batch of frames.

For speed the model runs with its batch norms folded into the convs and in channels-last
memory format (on CPU too: about 1.4x faster at batch 16 on a 2-core EPYC, and the
folded model agrees with the original to ~1e-7), and crops are cut only from the frame
regions the faces occupy (:func:`fervid.align.crop_faces_rgb`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fervid.align import (
    FER_BOX_48_CENTRE,
    FER_BOX_48_SIZE,
    FER_TEMPLATE_48,
    box_transforms,
    crop_faces_rgb,
    similarity_transforms,
)
from fervid.defaults import MIN_P_CORRECT, MODEL
from fervid.models.expression_input import prepare, probabilities
from fervid.models.expression_weights import check_manifest, load_expression_model, resolve_model, sha256_file
from fervid.quality import crop_measures, landmark_measures
from fervid.reliability import ReliabilityModel, load_reliability, reliability_path
from fervid.types import Detections, Predictions

Frames = torch.Tensor | Sequence[torch.Tensor]


class ExpressionClassifier:
    """Aligns each face with its landmarks, crops it like the training data, and classifies it.

    One forward pass for all faces of a frame batch. ``crops()`` exposes the exact model
    input (before normalisation) so tests and users can look at what the model sees. A decision
    rule (``.rule.json``, :mod:`fervid.models.expression_rule`) loads as one network over its
    members, so its mix, offsets and temperature are applied here exactly as ``fervid evaluate``
    applies them. ``model`` defaults to annotate's default model.
    """

    def __init__(
        self, model: str | Path | None = None, device: str | torch.device = "cpu", max_batch: int = 1024,
        require_reliability: bool = False,
    ) -> None:  # fmt: skip
        if model is None:
            model = MODEL
        self.device = torch.device(device)
        loaded = load_expression_model(model)
        self.config = loaded.config
        #: The weights' provenance (run.json's ``models.expression``).
        self.weights = loaded.info
        self.model_name = str(model)
        #: The model's readable limits and p_correct (:mod:`fervid.reliability`), None when it has none and
        #: none is required; ``require_reliability`` makes a missing one a one-line WeightsError.
        self.reliability = reliability_of(model, require_reliability)
        self.model = loaded.model.to(self.device).eval()
        # What ``classify`` runs: the same network with batch norms folded in, channels-last.
        # Module.to takes memory_format (torch's docs); its stub's overloads leave it out.
        self._net = fold_batchnorms(self.model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # no memory_format in stub
        size = self.config.input_size
        self.template = torch.from_numpy(FER_TEMPLATE_48 * (size / 48.0)).to(self.device)
        self.box_centre = torch.from_numpy(FER_BOX_48_CENTRE * (size / 48.0)).to(self.device)
        self.box_size = FER_BOX_48_SIZE * size / 48.0
        self.max_batch = max_batch

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    @property
    def data_columns(self) -> tuple[str, ...]:
        """The per-face values :meth:`classify` adds to each ``Detections.data`` (faces-table columns)."""
        measured = ("face_px", "roll", "yaw", "sharpness", "brightness", "contrast")
        return (*measured, "readable", "p_correct") if self.reliability is not None else measured

    def crops(self, frames: Frames, detections: Sequence[Detections]) -> torch.Tensor:
        """(n, 1, S, S) aligned grayscale crops in [0, 255] for all faces, frame by frame in order.

        ``frames`` is a (B, H, W, 3) uint8 tensor, or a list of (1, H, W, 3) tensors (sizes
        may differ, e.g. photos), on the host or the device: only the regions around the
        faces are moved to the device and converted.
        """
        counts = [len(d) for d in detections]
        if sum(counts) == 0:
            return torch.zeros((0, 1, self.config.input_size, self.config.input_size), device=self.device)
        frame_index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts)).to(self.device)
        return crop_faces_rgb(frames, frame_index, self.frame_to_crop(detections), self.config.input_size)

    def frame_to_crop(self, detections: Sequence[Detections]) -> torch.Tensor:
        """(n, 2, 3) frame-to-crop matrices for all faces, by the model's ``alignment`` (fervid.align)."""
        if self.config.alignment == "box":
            boxes = torch.from_numpy(np.concatenate([d.xyxy for d in detections])).to(self.device)
            return box_transforms(boxes, self.box_centre, self.box_size)
        landmarks = torch.from_numpy(np.concatenate([d.landmarks for d in detections])).to(self.device)
        return similarity_transforms(landmarks.float(), self.template.float())

    @torch.inference_mode()
    def classify(self, frames: Frames, detections: Sequence[Detections]) -> list[Predictions]:
        """Probabilities for every face; frames are (B, H, W, 3) uint8 RGB, one Detections per frame.

        Each Detections also gets its faces' measurements (:mod:`fervid.quality`: from the landmarks,
        and from the very crop the model reads) and, with a reliability model, ``readable`` and
        ``p_correct`` in its ``data`` (:attr:`data_columns`).
        """
        crops = self.crops(frames, detections)
        probs, embedding = self.outputs(crops, self.reliability is not None and self.reliability.needs_embedding)
        measures = self.measure(crops, detections, probs, embedding)
        out, start = [], 0
        for d in detections:
            rows = slice(start, start + len(d))
            d.data.update({key: values[rows] for key, values in measures.items()})
            out.append(Predictions(probs[rows], self.classes))
            start += len(d)
        return out

    def measure(
        self, crops: torch.Tensor, detections: Sequence[Detections], probs: np.ndarray,
        embedding: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """The :attr:`data_columns` of all faces, in order, from their crops, landmarks and probabilities, and
        (for a reliability model that reads them) the network's pooled features from the same pass."""
        landmarks = np.concatenate([d.landmarks for d in detections]) if detections else np.zeros((0, 5, 2))
        measures = {**landmark_measures(landmarks), **crop_measures(crops)}
        if self.reliability is not None:
            measures["readable"] = self.reliability.readable(measures)
            extra: dict[str, np.ndarray] = {}
            if self.reliability.needs_embedding:
                assert embedding is not None  # classify asks outputs() for the features whenever the model reads them
                extra["embedding"] = embedding
            measures["p_correct"] = self.reliability.p_correct(probs, {**measures, **extra})
        return {key: measures[key] for key in self.data_columns}

    @torch.inference_mode()
    def outputs(self, crops: torch.Tensor, embedding: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities of :meth:`crops` and, with ``embedding``, the network's pooled (penultimate) features,
        which p_correct may read (one forward pass for both; None without ``embedding``)."""
        wanted = embedding
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32), np.zeros((0, 0), np.float32) if wanted else None
        x = prepare(crops, self.config).contiguous(memory_format=torch.channels_last)
        probs, features = [], []
        for i in range(0, len(x), self.max_batch):
            if wanted:
                logits, pooled = self._net.forward_with_features(x[i : i + self.max_batch])
                features.append(pooled.float())
            else:
                logits = self._net(x[i : i + self.max_batch])
            probs.append(probabilities(logits, self.config))
        return torch.cat(probs).cpu().numpy(), torch.cat(features).cpu().numpy() if wanted else None


def threshold_for(model: str | Path) -> float:
    """``--min-p-correct`` for ``model`` in tools that run any model (benchmarks): the option's default when the
    model has a reliability file, else 0 (there is nothing to filter by, and annotate would refuse the model)."""
    return MIN_P_CORRECT if reliability_path(resolve_model(model)).is_file() else 0.0


def reliability_of(model: str | Path, required: bool) -> ReliabilityModel | None:
    """The reliability model beside ``model``'s file (checked against its sha256); None if absent and optional."""
    path = resolve_model(model)
    if not required and not reliability_path(path).is_file():
        return None
    if reliability_path(path).is_file():
        check_manifest(reliability_path(path))  # a shipped file is in SHA256SUMS like the weights
    return load_reliability(path, sha256_file(path))


def fold_batchnorms(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with each batch norm folded into the conv that feeds it.

    Folded pairs: consecutive ``Conv2d`` -> ``BatchNorm2d`` children of an ``nn.Sequential``
    and the ``conv1/bn1``, ``conv2/bn2`` pairs of ``ExpressionNet``'s residual blocks (the
    only places where a conv's output goes nowhere but its norm). The norm becomes an
    ``nn.Identity``; anything else is left as it is, which is slower but computes the same.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from fervid.models.expression import BasicBlock

    net = copy.deepcopy(model).eval()
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, norm = module[i], module[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(conv, norm)
                    module[i + 1] = nn.Identity()
        elif isinstance(module, BasicBlock):
            for conv_name, norm_name in (("conv1", "bn1"), ("conv2", "bn2")):
                conv, norm = getattr(module, conv_name), getattr(module, norm_name)
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    setattr(module, conv_name, fuse_conv_bn_eval(conv, norm))
                    setattr(module, norm_name, nn.Identity())
    return net
