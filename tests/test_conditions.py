"""Video conditions at a chosen strength, and faces drawn across them for fitting reliability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fervid.quality import crop_measures
from fervid.train.conditions import FER_EYE_PX, STRENGTHS, apply, conditioned


def _faces(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(128, 40, (n, 48, 48))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("condition", "measure", "falls"), [("darkness", "brightness", True),
                                                             ("blur", "sharpness", True)])  # fmt: skip
def test_stronger_conditions_move_their_measurement_one_way(condition: str, measure: str, falls: bool) -> None:
    x = torch.from_numpy(_faces(20)).float().unsqueeze(1) / 255
    values = [crop_measures(apply(x, condition, s) * 255)[measure].mean() for s in STRENGTHS[condition]]
    assert np.all(np.diff(values) < 0) == falls, values


def test_an_unknown_condition_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown condition 'fog'"):
        apply(torch.zeros(1, 1, 48, 48), "fog", 1.0)


def test_conditioned_faces_span_every_condition_and_record_their_geometry() -> None:
    images = _faces()
    yaw, roll = np.full(len(images), 5.0), np.full(len(images), -3.0)
    faces = conditioned(images, yaw, roll, seed=1, clean_share=0.25)
    names = set(faces.condition)
    assert names == {"clean", *STRENGTHS}
    clean = faces.condition == "clean"
    np.testing.assert_array_equal(faces.images[clean], images[clean])
    assert (faces.strength[clean] == 0).all() and 0.1 < clean.mean() < 0.4
    small = faces.condition == "small face"
    np.testing.assert_allclose(faces.face_px[small], FER_EYE_PX * faces.strength[small] / 48)
    assert (faces.face_px[~small] == FER_EYE_PX).all()
    turned = faces.condition == "turn"
    np.testing.assert_allclose(np.abs(faces.yaw[turned] - 5.0), faces.strength[turned])
    assert (faces.yaw[~turned] == 5.0).all() and (faces.roll == -3.0).all()
    again = conditioned(images, yaw, roll, seed=1, clean_share=0.25)
    np.testing.assert_array_equal(again.images, faces.images)  # seeded
