"""FER2013's JPEGs matched to their FER+ originals, so one network can learn both labellings of a face."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared_path

from fervid.models.expression_input import equalize
from fervid.train.data import load_dataset
from fervid.train.joint import joint_fer, match_images


@pytest.fixture(scope="module")
def test_splits():
    return load_dataset(shared_path("data/fer2013/test.zip")), load_dataset(shared_path("data/ferplus/FER2013Test.zip"))


def test_nearly_every_fer2013_image_finds_its_original_and_it_is_the_same_face(test_splits) -> None:
    fer2013, ferplus = test_splits
    index, similarity = match_images(fer2013.images, ferplus.images)
    matched = index >= 0
    assert matched.mean() > 0.95  # FER+ dropped some images (unknown / not a face), the rest are there
    a = torch.from_numpy(fer2013.images[matched]).float().unsqueeze(1)
    b = equalize(torch.from_numpy(ferplus.images[index[matched]]).float().unsqueeze(1)) * 255
    per_image = (a - b).abs().mean(dim=(1, 2, 3))
    assert float(per_image.median()) < 6  # equalised original vs the equalised JPEG: JPEG noise only
    assert float(np.percentile(similarity[matched], 1)) > 0.95


def test_joint_set_has_both_labellings_and_the_original_pixels(test_splits) -> None:
    fer2013, ferplus = test_splits
    joint = joint_fer(fer2013, ferplus, ("fer2013", "ferplus"))
    first, second = joint.label_sets
    assert (first.name, second.name) == ("fer2013", "ferplus") and len(joint) == len(fer2013)
    assert first.valid.all() and 0.95 < second.valid.mean() < 1.0
    np.testing.assert_array_equal(first.targets, fer2013.targets)
    assert np.allclose(second.targets[second.valid].sum(axis=1), 1) and (second.targets[~second.valid] == 0).all()
    # matched faces carry FER+'s original (not equalised) pixels: their spread is the raw images' one
    assert joint.images[second.valid].std(axis=(1, 2)).mean() < fer2013.images.std(axis=(1, 2)).mean() - 5
    # FER2013 and FER+ majority labels agree on most faces (the two labellings of the same images)
    fer_names = list(first.classes)
    agree = np.array(fer_names)[first.labels[second.valid]] == np.array(second.classes)[second.labels[second.valid]]
    assert 0.55 < agree.mean() < 0.85
