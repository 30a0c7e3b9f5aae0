"""The crop `annotate` feeds the model must look like the training crops, and the model must read real faces."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from _real_faces import LABELLED_STILLS
from conftest import shared_path

from fervid.align import FER_BOX_48_CENTRE, FER_BOX_48_SIZE, FER_TEMPLATE_48
from fervid.classify import ExpressionClassifier
from fervid.detect import FaceDetector
from fervid.io.images import read_image
from fervid.models.expression_weights import shipped_models
from fervid.train.template import detect_dataset_faces


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def _largest(dets):
    return dets[[int(np.argmax(dets.area))]]


def _model() -> str:
    if "ferplus" not in shipped_models():
        pytest.skip("weights/ferplus.pt is not present")
    return "ferplus"


@pytest.mark.parametrize("alignment", ["box", "landmarks"])
def test_crops_match_the_training_geometry(detector, alignment):
    """Closed loop: detecting the face again inside our 48x48 crop finds it where it sits in FER's images.

    The templates were measured by running the same detector on FER images, so this checks
    that annotate's crops are framed like the training data (not just self-consistent maths):
    a box crop puts the detector's box on the box template, a landmark crop the landmarks on
    the landmark template.
    """
    clf = ExpressionClassifier(_model())
    clf.config = replace(clf.config, alignment=alignment)
    crops = []
    for name in LABELLED_STILLS:
        image = read_image(shared_path(f"media/pyfeat/{name}"))
        dets = _largest(detector.detect([image])[0])
        crops.append(clf.crops(torch.from_numpy(image)[None], [dets])[0, 0].round().clamp(0, 255).byte().numpy())
    landmarks, boxes = detect_dataset_faces(np.stack(crops), FaceDetector(det_size=None, score_threshold=0.9))
    found = ~np.isnan(landmarks).any(axis=(1, 2))
    assert found.mean() >= 0.75
    if alignment == "landmarks":
        err = np.linalg.norm(landmarks[found] - FER_TEMPLATE_48, axis=2)  # pixels in the 48x48 crop
        assert np.median(err) < 2.0, f"median landmark error {np.median(err):.2f} px"
    else:
        b = boxes[found]
        centre_err = np.linalg.norm((b[:, :2] + b[:, 2:]) / 2 - FER_BOX_48_CENTRE, axis=1)
        size = np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
        assert np.median(centre_err) < 2.0, f"median box centre error {np.median(centre_err):.2f} px"
        assert abs(np.median(size) / FER_BOX_48_SIZE - 1) < 0.1, f"median box size {np.median(size):.1f} px"


def test_shipped_models_frame_faces_as_fer_did():
    """The shipped models learned from FER's box crops (benchmarks/alignment.py), so annotate frames by the box."""
    for name in shipped_models():
        assert ExpressionClassifier(name).config.alignment == "box", name


def test_labelled_stills_are_recognised(detector):
    clf = ExpressionClassifier(_model())
    correct = []
    for name, label in LABELLED_STILLS.items():
        image = read_image(shared_path(f"media/pyfeat/{name}"))
        dets = _largest(detector.detect([image])[0])
        pred = clf.classify(torch.from_numpy(image)[None], [dets])[0]
        correct.append(pred.label[0] == label)
        print(f"{name}: {pred.label[0]} ({pred.confidence[0]:.2f}), expected {label}")
    # The bar follows from the model card: for a classifier that is right 80% of the time,
    # P(at least 5 of 8 right) = 0.94, while P(at least 6 of 8) = 0.80, which would fail one
    # run in five on a sound model. Chance level (1/8 per image) essentially never reaches 5.
    assert sum(correct) >= 5, f"{sum(correct)}/{len(correct)} stills recognised"


def test_no_faces_gives_empty_predictions():
    clf = ExpressionClassifier(_model())
    from fervid.types import Detections

    preds = clf.classify(torch.zeros((2, 64, 64, 3), dtype=torch.uint8), [Detections.empty(), Detections.empty()])
    assert [len(p) for p in preds] == [0, 0]
    assert preds[0].probs.shape == (0, len(clf.classes))


def _networks() -> list:
    from fervid.models.expression import ExpressionNet
    from fervid.models.expression_face_resnet import FaceResNetExpressionNet
    from fervid.models.expression_rule import RuleNet

    torch.manual_seed(0)
    small = ExpressionNet(8, widths=(8, 16, 32, 64), blocks=(1, 1, 1))
    face = FaceResNetExpressionNet(8, widths=(8, 16), units=(1, 1), trunk_size=48)
    seven = ExpressionNet(7, widths=(8, 16, 32, 64), blocks=(1, 1, 1))
    classes = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")
    rule = RuleNet([small, seven], [1.2, 0.9], [classes, classes[:7]], classes, [0.1] * 7 + [-0.2])
    return [small, face, rule]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["resnet", "face-resnet", "rule"])
def test_every_expression_network_gives_its_logits_and_pooled_features_in_one_pass(index: int) -> None:
    from fervid.classify import fold_batchnorms

    net = _networks()[index].eval()
    x = torch.randn(3, 1, 48, 48)
    with torch.inference_mode():
        logits, features = net.forward_with_features(x)
        torch.testing.assert_close(logits, net(x))
        primary = net.members[0] if hasattr(net, "members") else net
        torch.testing.assert_close(features, primary.features(x))
        folded_logits, folded_features = fold_batchnorms(net).forward_with_features(x)  # what classify runs
    torch.testing.assert_close(folded_logits, logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(folded_features, features, atol=1e-4, rtol=1e-4)


def test_p_correct_reads_the_pooled_features_of_the_same_pass(detector):
    """The default model's p_correct as classify gives it is the reliability model's on the crops' own features."""
    clf = ExpressionClassifier(require_reliability=True)
    if not clf.reliability.needs_embedding:
        pytest.skip("the default reliability model reads no pooled features")
    image = read_image(shared_path("media/pyfeat/multi_face.jpg"))
    frames = torch.from_numpy(image)[None]
    dets = detector.detect(frames)
    crops = clf.crops(frames, dets)
    probs, embedding = clf.outputs(crops, embedding=True)
    np.testing.assert_allclose(clf.outputs(crops)[0], probs, atol=1e-6)
    assert clf.outputs(crops)[1] is None and embedding.shape[0] == len(dets[0])
    preds = clf.classify(frames, dets)
    measures = {k: dets[0].data[k] for k in ("face_px", "roll", "yaw", "sharpness", "brightness", "contrast")}
    expected = clf.reliability.p_correct(probs, {**measures, "embedding": embedding})
    np.testing.assert_allclose(dets[0].data["p_correct"], expected, atol=1e-6)
    np.testing.assert_allclose(preds[0].probs, probs, atol=1e-6)
