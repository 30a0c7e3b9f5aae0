"""The shipped default model on real footage: the labelled set ``tests/data/real_faces.csv``.

Every labelled face goes through the real ``fervid.annotate`` path (decode, detection, tracking,
alignment, the model's own photometric normalisation, classification), so a regression anywhere
on the way to the label a researcher reads shows up here, not only one in the network.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from _real_faces import accuracy, iou, load_labels, measure, windows
from conftest import shared_path

import fervid
from fervid.behaviour.valence import valence
from fervid.options import ClassificationOptions

#: The bar: 91 of the 104 labelled faces correct (see docs/model-history.md, "Real footage"): ``ferplus``
#: scored 94 once annotate framed faces by the detector's box as FER's crops were framed
#: (fervid.align; stage 2 and stage 3 of the joint models alike), less three faces; the shipped
#: stage-7 ``ferplus`` reads 93, the default ``ferplus-rule`` (its decision rule, issue 31) 92. Three faces is
#: ~3 %, above run-to-run jitter (the path is deterministic on one machine; other CPUs and library
#: versions can move a borderline face or two), and tight enough that the stage-2 network framed by
#: its landmarks (90) fails, as does the model shipped before the joint ones (85). The bar was 88
#: before the box framing; it is raised with a better result and never lowered for a model.
BAR = 91 / 104

HAMILTON = "face_recognition/short_hamilton_clip.mp4"
HAMILTON_FRAME = 240


@pytest.fixture(scope="module")
def measured():
    shared_path("media/" + HAMILTON)
    return measure(ClassificationOptions().model, identity=False)  # the shipped default


def test_every_labelled_face_is_found_by_the_default_annotate_path(measured):
    assert len(measured) == len(load_labels()) >= 80
    assert measured["matched"].all(), measured[~measured["matched"]][["clip", "frame", "iou"]]


def test_shipped_default_reaches_its_recorded_accuracy_on_real_footage(measured):
    scores = accuracy(measured)
    print(scores.to_string())
    assert scores.loc["all", "accuracy"] >= BAR


def test_valence_reads_happy_faces_positive_and_sad_or_angry_ones_negative(measured):
    """Issue 32's valence check on the real-footage set: the labelled happy faces read positive, the sad and angry
    ones negative, each in at least 90 % of cases (measured: 64 of 68 happy, 8 of 8 sad or angry). The negative
    side is thin: 5 sad faces (4 of them frames of one clip) and 3 angry stills, 5 people in all
    (docs/behaviour-measures.md, "Valence")."""
    fer_plus = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")
    classes = [c for c in fer_plus if f"p_{c}" in measured]
    scores = valence(measured[[f"p_{c}" for c in classes]].to_numpy(), classes)
    happy, negative = measured["label"].eq("happy").to_numpy(), measured["label"].isin(["sad", "angry"]).to_numpy()
    print(f"valence: {(scores[happy] > 0).sum()} of {happy.sum()} happy faces positive, "
          f"{(scores[negative] < 0).sum()} of {negative.sum()} sad or angry faces negative")  # fmt: skip
    assert happy.sum() >= 60 and negative.sum() >= 8
    assert (scores[happy] > 0).mean() >= 0.9, np.sort(scores[happy])[:8]
    assert (scores[negative] < 0).mean() >= 0.9, scores[negative]


@pytest.fixture(scope="module")
def hamilton_frame(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The shipped default's labels for the five people laughing or smiling in dim light on Hamilton
    frame 240, from a full annotate run that writes the video (no smoothing by default, so the
    faces table's top class is what the video draws on that frame)."""
    clip = shared_path("media/" + HAMILTON)
    labels = load_labels()
    wanted = labels[(labels["clip"] == HAMILTON) & (labels["frame"] == HAMILTON_FRAME)]
    assert len(wanted) == 5 and set(wanted["label"]) == {"happy"}
    out = tmp_path_factory.mktemp("hamilton")
    [(start, end)] = windows(clip, [HAMILTON_FRAME])
    result = fervid.annotate(clip, out, start=start, end=end, identity=False, report=False)
    with av.open(str(out / "short_hamilton_clip" / "short_hamilton_clip.annotated.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == result.frames
    faces = result.faces[result.faces["frame"] == HAMILTON_FRAME]
    classes = list(result.classes)
    probs = faces[[f"p_{c}" for c in classes]].to_numpy()
    boxes = faces[["x1", "y1", "x2", "y2"]].to_numpy()
    shown = []
    for label in wanted.itertuples():
        overlap = iou([label.x1, label.y1, label.x2, label.y2], boxes)
        assert overlap.max() > 0.5
        shown.append(classes[int(probs[overlap.argmax()].argmax())])
    return shown


def test_hamilton_frame_240_keeps_what_the_shipped_model_reads_as_happy(hamilton_frame: list[str]):
    """Regression bar: the shipped model reads 3 of the 5 as happy (stage 2 of the joint models: 2; the
    model before them: none)."""
    assert hamilton_frame.count("happy") >= 3, hamilton_frame


@pytest.mark.xfail(strict=True, reason="issue 11's target (4 of 5 happy) is not met yet: the shipped model reads "
                   "3 of 5; see docs/model-history.md, 'Real footage'")  # fmt: skip
def test_hamilton_frame_240_reads_as_happy_in_the_annotated_video(hamilton_frame: list[str]):
    assert hamilton_frame.count("happy") >= 4, hamilton_frame
