"""Per-face measurements on synthetic faces where the answer is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from fervid.quality import NOSE_DEPTH, crop_measures, landmark_measures

#: A mean face in 3-D (x right, y down, z towards the camera), eye distance 1: eyes, nose tip, mouth corners.
FACE_3D = np.array([[-0.5, 0, 0], [0.5, 0, 0], [0, 0.55, NOSE_DEPTH], [-0.4, 1.0, -0.05], [0.4, 1.0, -0.05]])


def _view(yaw_deg: float = 0.0, roll_deg: float = 0.0, scale: float = 60.0, centre=(200.0, 150.0)) -> np.ndarray:
    """The five points of ``FACE_3D`` turned by ``yaw`` (about y), then rolled in the image, seen orthographically."""
    y, r = np.radians(yaw_deg), np.radians(roll_deg)
    turn = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    points = (FACE_3D @ turn.T)[:, :2]
    tilt = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    return (points @ tilt.T * scale + np.array(centre))[None].astype(np.float32)


@pytest.mark.parametrize("roll", [-40.0, -10.0, 0.0, 15.0, 60.0])
def test_roll_is_the_angle_the_landmarks_were_rotated_by(roll: float) -> None:
    assert landmark_measures(_view(roll_deg=roll))["roll"][0] == pytest.approx(roll, abs=1e-3)


@pytest.mark.parametrize("yaw", [-60.0, -30.0, 0.0, 20.0, 45.0])
@pytest.mark.parametrize("roll", [0.0, 25.0])
def test_yaw_is_the_head_turn_whatever_the_roll(yaw: float, roll: float) -> None:
    measured = landmark_measures(_view(yaw_deg=yaw, roll_deg=roll))
    assert measured["yaw"][0] == pytest.approx(yaw, abs=0.5)
    if yaw:
        assert np.sign(measured["yaw"][0]) == np.sign(yaw)  # positive: the nose points to the image's right


def test_face_px_is_the_eye_distance_in_pixels() -> None:
    assert landmark_measures(_view(scale=80.0))["face_px"][0] == pytest.approx(80.0, rel=1e-5)
    assert landmark_measures(_view(yaw_deg=60.0, scale=80.0))["face_px"][0] == pytest.approx(40.0, rel=1e-4)


def test_landmark_measures_of_no_faces_are_empty() -> None:
    assert all(len(v) == 0 for v in landmark_measures(np.zeros((0, 5, 2))).values())


def _texture(seed: int = 0, size: int = 48) -> np.ndarray:
    """A face-sized crop with detail at every scale (smoothed noise), mid grey."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (size, size)).astype(np.float32)
    detail = cv2.GaussianBlur(noise, (0, 0), 0.7) * 40 + cv2.GaussianBlur(noise, (0, 0), 3) * 60
    return np.clip(128 + detail, 0, 255).astype(np.float32)


def _crops(*images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(images))[:, None]


def test_a_blurred_crop_is_less_sharp_and_blur_ranks_sharpness() -> None:
    sharp = _texture()
    blurred = [cv2.GaussianBlur(sharp, (0, 0), sigma) for sigma in (0.8, 1.5, 3.0)]
    sharpness = crop_measures(_crops(sharp, *blurred))["sharpness"]
    assert np.all(np.diff(sharpness) < 0), sharpness
    assert sharpness[-1] < 0.05 * sharpness[0]


def test_brightness_and_contrast_follow_the_light() -> None:
    face = _texture()
    dark = face * 0.25  # a quarter of the light: darker and flatter
    measured = crop_measures(_crops(face, dark, np.full((48, 48), 200.0, np.float32)))
    assert measured["brightness"][1] == pytest.approx(0.25 * measured["brightness"][0], rel=1e-4)
    assert measured["contrast"][1] == pytest.approx(0.25 * measured["contrast"][0], rel=1e-4)
    assert measured["brightness"][2] == pytest.approx(200.0) and measured["contrast"][2] == pytest.approx(0.0)
    assert measured["sharpness"][2] == pytest.approx(0.0)


def test_sharpness_matches_opencvs_laplacian() -> None:
    face = _texture(seed=3)
    expected = cv2.Laplacian(face, cv2.CV_32F, ksize=1)[1:-1, 1:-1].var()
    assert crop_measures(_crops(face))["sharpness"][0] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("shape", [(4, 48, 48), (2, 3, 48, 48)])
def test_crops_of_the_wrong_shape_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="crops must be"):
        crop_measures(torch.zeros(shape))


def test_crop_measures_of_no_faces_are_empty() -> None:
    assert all(len(v) == 0 for v in crop_measures(torch.zeros((0, 1, 48, 48))).values())
