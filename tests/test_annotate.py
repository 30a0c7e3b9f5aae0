"""FrameAnnotator: draws on a copy, colours by track ID, survives odd boxes and sizes."""

from __future__ import annotations

import numpy as np
import pytest

from fervid.annotate import PALETTE, UNTRACKED, FrameAnnotator, abbreviations, colour_for
from fervid.types import EMOTIONS, Detections, Predictions


def dets(boxes: list[list[float]], ids: list[int] | None = None) -> Detections:
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(xyxy)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2 if n else np.zeros((0, 2))
    landmarks = np.repeat(centre[:, None, :], 5, axis=1)
    return Detections(xyxy, np.full(n, 0.9), landmarks, ids)


def preds(n: int, seed: int = 0) -> Predictions:
    probs = np.random.default_rng(seed).dirichlet(np.ones(len(EMOTIONS)), size=n)
    return Predictions(probs, EMOTIONS)


def grey(h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), 40, dtype=np.uint8)


ANNOTATORS = [
    FrameAnnotator(),
    FrameAnnotator(show_landmarks=True, show_bars=False),
    FrameAnnotator(show_landmarks=True, thickness=4),
]


@pytest.mark.parametrize("annotator", ANNOTATORS)
@pytest.mark.parametrize(
    ("shape", "boxes"),
    [
        ((64, 64), [[10, 10, 50, 50]]),
        ((360, 640), [[100, 100, 200, 220], [400, 50, 500, 170]]),
        ((1080, 1920), [[800, 300, 1100, 700]]),
        ((360, 640), []),
        ((360, 640), [[-50, -40, 80, 90], [600, 300, 720, 420]]),  # partly outside
        ((120, 160), [[-500, -500, -400, -400], [1e9, 1e9, 2e9, 2e9]]),  # fully outside / huge
    ],
)
def test_shape_dtype_and_input_untouched(
    annotator: FrameAnnotator, shape: tuple[int, int], boxes: list[list[float]]
) -> None:
    image = grey(*shape)
    before = image.copy()
    d = dets(boxes, list(range(1, len(boxes) + 1)))
    for p in (None, preds(len(boxes))):
        out = annotator.annotate(image, d, p)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert out is not image
        np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("track_id", [1, 7, -1])
def test_box_border_is_drawn_in_track_colour(track_id: int) -> None:
    image = grey(360, 640)
    out = FrameAnnotator(show_bars=False).annotate(image, dets([[200, 150, 300, 260]], [track_id]), None)
    # Left edge, halfway down: clear of the label, which sits above the box.
    np.testing.assert_array_equal(out[205, 200], colour_for(track_id))
    assert not np.array_equal(out[205, 200], image[205, 200])
    np.testing.assert_array_equal(out[205, 250], image[205, 250])  # the inside is untouched


def test_different_ids_get_different_colours() -> None:
    colours = {colour_for(k) for k in range(1, len(PALETTE) + 1)}
    assert len(colours) == len(PALETTE) >= 20
    assert UNTRACKED not in colours
    assert colour_for(1) == colour_for(1 + len(PALETTE)), "palette wraps around"
    out = FrameAnnotator(show_bars=False).annotate(
        grey(360, 640), dets([[50, 100, 150, 200], [300, 100, 400, 200]], [1, 2]), None
    )
    assert not np.array_equal(out[150, 50], out[150, 300])


def test_label_is_drawn_above_box_or_inside_when_at_top() -> None:
    image = grey(360, 640)
    annotator = FrameAnnotator(show_bars=False)
    out = annotator.annotate(image, dets([[200, 150, 300, 260]], [3]), preds(1))
    assert (out[120:150, 200:300] != image[120:150, 200:300]).any(), "label above the box"
    out = annotator.annotate(image, dets([[200, 0, 300, 100]], [3]), preds(1))
    assert (out[2:20, 205:295] != image[2:20, 205:295]).any(), "label inside a box touching the top"


def test_bars_change_pixels_beside_the_box() -> None:
    image = grey(360, 640)
    d = dets([[100, 100, 200, 220]], [1])
    with_bars = FrameAnnotator(show_bars=True).annotate(image, d, preds(1))
    without = FrameAnnotator(show_bars=False).annotate(image, d, preds(1))
    assert (with_bars[100:220, 205:320] != without[100:220, 205:320]).any()


def test_zero_detections_return_an_identical_copy() -> None:
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    out = FrameAnnotator().annotate(image, Detections.empty(), Predictions.empty(EMOTIONS))
    np.testing.assert_array_equal(out, image)


def test_non_finite_boxes_are_skipped() -> None:
    image = grey(100, 100)
    d = dets([[np.nan, 10, 50, 50], [10, 10, np.inf, 50]], [1, 2])
    np.testing.assert_array_equal(FrameAnnotator(show_landmarks=True).annotate(image, d, preds(2)), image)


@pytest.mark.parametrize(
    ("image", "n_preds", "kwargs"),
    [
        (np.zeros((10, 10), np.uint8), 1, {}),
        (np.zeros((10, 10, 3), np.float32), 1, {}),
        (np.zeros((10, 10, 3), np.uint8), 2, {}),  # predictions not row-aligned
    ],
)
def test_bad_input_raises(image: np.ndarray, n_preds: int, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        FrameAnnotator(**kwargs).annotate(image, dets([[1, 1, 5, 5]], [1]), preds(n_preds))


def test_bad_thickness_raises() -> None:
    with pytest.raises(ValueError, match="thickness"):
        FrameAnnotator(thickness=0)


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        (EMOTIONS, ["An", "Di", "Fe", "Ha", "Sa", "Su", "Ne", "Co"]),
        (("happy", "neutral"), ["H", "N"]),
        (("a", "ab"), ["A", "Ab"]),
        ((), []),
    ],
)
def test_abbreviations_are_unique(classes: tuple[str, ...], expected: list[str]) -> None:
    assert abbreviations(classes) == expected


def test_real_photo(shared: type) -> None:
    """Draws on the shared two-person photo (the visual check is done by eye, see report)."""
    cv2 = pytest.importorskip("cv2")
    path = shared("media/face_recognition/two_people.jpg")
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    d = dets([[215, 35, 390, 235], [765, 0, 955, 250]], [1, 2])
    out = FrameAnnotator(show_landmarks=True).annotate(rgb, d, preds(2))
    assert out.shape == rgb.shape and (out != rgb).any()
