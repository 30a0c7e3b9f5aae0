"""Alignment maths and crops: known transforms are recovered and crops land where the templates say."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fervid.align import (
    FER_BOX_48_CENTRE,
    FER_BOX_48_SIZE,
    FER_TEMPLATE_48,
    box_transforms,
    crop_faces,
    invert_similarity,
    similarity_transforms,
    to_gray,
)


def _apply(m: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    return pts @ m[:, :, :2].transpose(1, 2) + m[:, :, 2].unsqueeze(1)


@pytest.mark.parametrize(("angle", "scale", "shift"), [(0.0, 1.0, (0, 0)), (0.3, 2.5, (10, -4)), (-1.2, 0.4, (3, 7))])
def test_similarity_recovers_known_transform(angle, scale, shift):
    template = torch.from_numpy(FER_TEMPLATE_48)
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    true = torch.tensor([[[c, -s, shift[0]], [s, c, shift[1]]]], dtype=torch.float32)
    src = _apply(invert_similarity(true), template[None])  # landmarks that map exactly onto the template
    est = similarity_transforms(src, template)
    torch.testing.assert_close(est, true, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(_apply(invert_similarity(est), template[None]), src, atol=1e-4, rtol=1e-4)


def test_similarity_is_batched_and_empty_safe():
    template = torch.from_numpy(FER_TEMPLATE_48)
    assert similarity_transforms(torch.zeros((0, 5, 2)), template).shape == (0, 2, 3)
    src = torch.rand(7, 5, 2) * 100
    assert similarity_transforms(src, template).shape == (7, 2, 3)


def test_crop_puts_a_marked_point_where_the_template_says():
    """A bright dot at a face's left-eye landmark must land at the template's left eye in the crop."""
    h, w = 300, 400
    frames = torch.zeros((2, h, w, 3), dtype=torch.uint8)
    template = torch.from_numpy(FER_TEMPLATE_48)
    # face 0 in frame 1: template scaled x4 and shifted; face 1 in frame 0: scaled x2
    lms = torch.stack([template * 4 + torch.tensor([100.0, 50.0]), template * 2 + torch.tensor([20.0, 30.0])])
    for frame, lm in ((1, lms[0]), (0, lms[1])):
        x, y = lm[0].round().long().tolist()
        frames[frame, y - 3 : y + 4, x - 3 : x + 4] = 255
    crops = crop_faces(to_gray(frames), torch.tensor([1, 0]), similarity_transforms(lms, template))
    assert crops.shape == (2, 1, 48, 48)
    for crop in crops:
        peak = np.unravel_index(int(crop[0].argmax()), (48, 48))
        assert abs(peak[1] + 0.5 - FER_TEMPLATE_48[0, 0]) <= 1.5 and abs(peak[0] + 0.5 - FER_TEMPLATE_48[0, 1]) <= 1.5


def test_box_transform_puts_the_box_centre_on_the_template_and_scales_its_size():
    boxes = torch.tensor([[100.0, 50.0, 180.0, 170.0], [-20.0, 10.0, 20.0, 40.0]])
    centre = torch.from_numpy(FER_BOX_48_CENTRE)
    m = box_transforms(boxes, centre, FER_BOX_48_SIZE)
    assert m.shape == (2, 2, 3)
    mid = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=1)
    torch.testing.assert_close(_apply(m, mid[:, None])[:, 0], centre.expand(2, 2), atol=1e-4, rtol=0)
    side = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
    torch.testing.assert_close(m[:, 0, 0] * side, torch.full((2,), FER_BOX_48_SIZE), atol=1e-4, rtol=0)
    torch.testing.assert_close(m[:, 1, 1], m[:, 0, 0])  # uniform scale
    assert torch.all(m[:, 0, 1] == 0) and torch.all(m[:, 1, 0] == 0)  # no rotation: FER's crops are not rolled
    assert box_transforms(torch.zeros((0, 4)), centre, FER_BOX_48_SIZE).shape == (0, 2, 3)


def test_box_crop_centres_a_marked_box():
    """A bright square filling a box must come out centred on the box template, at its size."""
    frames = torch.zeros((1, 200, 300, 3), dtype=torch.uint8)
    frames[0, 40:140, 150:250] = 255  # a 100x100 box
    box = torch.tensor([[150.0, 40.0, 250.0, 140.0]])
    to_crop = box_transforms(box, torch.from_numpy(FER_BOX_48_CENTRE), 24.0)
    crop = crop_faces(to_gray(frames), torch.tensor([0]), to_crop)
    ys, xs = np.nonzero(crop[0, 0].numpy() > 127)
    assert abs((xs.min() + xs.max() + 1) / 2 - FER_BOX_48_CENTRE[0]) <= 1.0
    assert abs((ys.min() + ys.max() + 1) / 2 - FER_BOX_48_CENTRE[1]) <= 1.0
    assert abs((xs.max() + 1 - xs.min()) - 24) <= 1 and abs((ys.max() + 1 - ys.min()) - 24) <= 1


def test_gray_matches_pil_luma():
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    ours = to_gray(torch.from_numpy(rgb)[None])[0, 0].numpy()
    pil = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)
    assert np.abs(ours - pil).max() <= 1.0
