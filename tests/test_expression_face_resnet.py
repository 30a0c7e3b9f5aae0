"""`fervid train --arch face-resnet`: an expression network started from dlib's face-recognition trunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fervid.classify import ExpressionClassifier
from fervid.cli import app
from fervid.models.expression_face_resnet import FaceResNetExpressionNet
from fervid.models.expression_input import prepare
from fervid.models.expression_pretrained import pretrained_face_resnet
from fervid.models.expression_weights import ExpressionConfig, load_expression_model, save_weights, sha256_file
from fervid.models.face_embedding import trunk_features
from fervid.models.face_embedding_weights import FaceEmbeddingWeightsError, load_face_embedding, packaged_model_path
from fervid.train.data import ExpressionData
from fervid.train.joint import LabelSet, TrainingSet
from fervid.train.trainer import Head, TrainConfig, train
from fervid.types import EMOTIONS, Detections

CPU = torch.device("cpu")
runner = CliRunner()


@pytest.fixture(scope="module")
def dlib_weights() -> Path:
    try:
        return packaged_model_path()
    except FaceEmbeddingWeightsError as err:
        pytest.skip(str(err))


def _faces(n: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """Smooth random grey images (a blurred field, so resizing does not average them flat)."""
    noise = torch.from_numpy(np.random.default_rng(seed).random((n, 1, 12, 12), dtype=np.float32))
    field = torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
    return (field.clamp(0, 1) * 255).round().squeeze(1).numpy().astype(np.uint8)


def test_the_grey_trunk_computes_what_dlibs_trunk_computes_on_the_grey_image_in_three_channels(dlib_weights):
    """The one-channel stem and its folded bias are exact: same pooled features as dlib's own trunk, own input scale."""
    loaded = load_face_embedding(dlib_weights)
    dlib, dlib_config = loaded.model, loaded.config
    trunk = pretrained_face_resnet(len(EMOTIONS), path=dlib_weights)
    config = ExpressionConfig(EMOTIONS, arch="face-resnet", input_size=150, mean=trunk.mean, std=trunk.std)
    faces = torch.from_numpy(_faces(4, size=150)).float().unsqueeze(1)
    with torch.no_grad():
        ours = trunk_features(trunk.net.stem, trunk.net.units, prepare(faces, config))
        theirs = trunk_features(dlib.stem, dlib.units, dlib_config.normalize(faces.repeat(1, 3, 1, 1)))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert theirs.abs().mean() > 0.01  # real activations, not a trivially equal pair of zeros
    assert trunk.sha256 == loaded.info.sha256 == sha256_file(dlib_weights)


def test_a_48px_crop_is_resized_to_the_trunks_scale_inside_the_network():
    net = FaceResNetExpressionNet(len(EMOTIONS), trunk_size=150).eval()
    x = torch.randn(2, 1, 48, 48)
    resized = torch.nn.functional.interpolate(x, size=(150, 150), mode="bilinear", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(net.features(x), net.features(resized))
        assert net(x).shape == (2, len(EMOTIONS))


def test_a_face_resnet_weight_file_round_trips_and_annotate_reads_faces_with_it(tmp_path):
    config = ExpressionConfig(EMOTIONS, arch="face-resnet", widths=(8, 16, 16, 32, 32), blocks=(1, 1, 1, 1, 1),
                              trunk_size=103, mean=0.45, std=1.0, photometric="equalize", alignment="box")  # fmt: skip
    net = config.build().eval()
    path = tmp_path / "large.pt"
    save_weights(path, net, config)
    loaded = load_expression_model(path)
    loaded, loaded_config = loaded.model, loaded.config
    assert isinstance(loaded, FaceResNetExpressionNet) and loaded_config == config
    faces = torch.from_numpy(_faces(3)).float().unsqueeze(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(prepare(faces, config)), net(prepare(faces, config)))

    frame = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (1, 120, 160, 3), dtype=np.uint8))
    boxes = np.array([[20, 20, 70, 80], [90, 30, 140, 90]], dtype=np.float32)
    detections = Detections(boxes, np.ones(2, np.float32), np.zeros((2, 5, 2), np.float32))
    clf = ExpressionClassifier(path)
    probs = clf.classify(frame, [detections])[0].probs
    with torch.no_grad():
        expected = torch.softmax(net(prepare(clf.crops(frame, [detections]), config)), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_a_trunk_too_small_for_its_levels_is_refused():
    """The bound is tight: one pixel less and dlib's last strided conv would read fewer than 3 pixels."""
    with pytest.raises(ValueError, match="at least 103 px"):
        FaceResNetExpressionNet(len(EMOTIONS), trunk_size=102)
    net = FaceResNetExpressionNet(len(EMOTIONS), trunk_size=103).eval()
    assert net.features(torch.zeros(1, 1, 48, 48)).shape == (1, 256)
    net.trunk_size = 102  # past the check, as an edited config would be
    with pytest.raises(RuntimeError):
        net(torch.zeros(1, 1, 48, 48))


def test_an_unknown_architecture_in_a_weight_file_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        ExpressionConfig(EMOTIONS, arch="vgg")


def test_face_resnet_refuses_a_photometric_normalisation_off_the_pixel_scale():
    """In a training recipe and in a weight file alike (a warm restart's config is a weight file's)."""
    with pytest.raises(ValueError, match="pixel scale"):
        TrainConfig(arch="face-resnet", photometric="standardize")
    with pytest.raises(ValueError, match="pixel scale"):
        ExpressionConfig(EMOTIONS, arch="face-resnet", photometric="standardize")


def test_training_starts_from_dlibs_trunk_and_records_where_it_came_from(dlib_weights, tmp_path):
    rng = np.random.default_rng(3)
    images = _faces(32, seed=3)
    targets = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 32)]
    data = TrainingSet(images, [LabelSet("ferplus", EMOTIONS, targets, np.ones(32, bool), "FER+")])
    val = ExpressionData(images[:8], targets[:8], EMOTIONS, [str(i) for i in range(8)])
    out = tmp_path / "large.pt"
    cfg = TrainConfig(arch="face-resnet", epochs=1, batch_size=16, lr=1e-4, photometric="equalize")
    train(data, [Head(data.label_sets[0], val, out)], cfg, CPU)
    loaded = load_expression_model(out)
    net, config = loaded.model, loaded.config
    dlib_loaded = load_face_embedding(dlib_weights)
    dlib = dlib_loaded.model
    assert config.arch == "face-resnet" and config.info["pretrained_sha256"] == dlib_loaded.info.sha256
    assert config.info["recipe"]["arch"] == "face-resnet" and config.widths == (32, 64, 128, 256, 256)
    # Trained from dlib's trunk: one short epoch moves its deep weights a little, not to somewhere new.
    trained, start = net.units[-1].conv2.weight.detach(), dlib.units[-1].conv2.weight
    assert not torch.equal(trained, start)
    assert float((trained - start).norm() / start.norm()) < 0.05  # a fresh network: about 1.2


def test_train_with_face_resnet_and_an_unfit_photometric_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "d"), "--val", str(tmp_path / "d"),
                                 "--out", str(tmp_path / "x.pt"), "--arch", "face-resnet",
                                 "--photometric", "standardize"])  # fmt: skip
    assert result.exit_code == 2 and "pixel scale" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.pt").exists()
