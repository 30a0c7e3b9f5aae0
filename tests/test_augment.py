"""Training augmentation: the synthetic head turn does what its geometry says."""

from __future__ import annotations

import math

import pytest
import torch

from fervid.train.augment import AugmentConfig, cylinder_yaw, random_yaw, yaw


def _stripe(width: int = 96, at: float = 0.5) -> torch.Tensor:
    """A (1, 1, width, width) image, dark with one bright vertical stripe at ``at`` (-1 left edge, 1 right edge)."""
    x = torch.zeros(1, 1, width, width)
    column = int((at + 1) / 2 * width)
    x[..., column] = 1.0
    return x


def _stripe_position(x: torch.Tensor) -> float:
    """Where the stripe is, looking only at the middle of the image: the far edge shows a mirror of the inside."""
    profile = x[0, 0].sum(0)
    centres = (torch.arange(x.shape[-1]) + 0.5) / x.shape[-1] * 2 - 1
    profile = torch.where(centres.abs() < 0.7, profile, torch.zeros_like(profile))
    return float((profile * centres).sum() / profile.sum())


def test_no_turn_leaves_the_face_as_it_is():
    x = torch.rand(3, 1, 48, 48)
    torch.testing.assert_close(yaw(x, torch.zeros(3), 2.5), x, atol=1e-5, rtol=0)


def test_a_turn_moves_a_point_where_perspective_puts_it():
    """A point at u lands at u cos a / (1 + u sin a / d): the far half narrows, the near half widens."""
    d = 2.5
    for angle_deg, u in ((30.0, 0.5), (30.0, -0.5), (-20.0, 0.6)):
        a = math.radians(angle_deg)
        expected = u * math.cos(a) / (1 + u * math.sin(a) / d)
        turned = yaw(_stripe(at=u), torch.tensor([a]), d)
        assert abs(_stripe_position(turned) - expected) < 0.03, (angle_deg, u, _stripe_position(turned), expected)


def test_random_yaw_turns_only_the_chosen_share():
    x = torch.rand(400, 1, 24, 24)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(random_yaw(x, AugmentConfig(yaw_p=0.0), gen), x)
    turned = random_yaw(x, AugmentConfig(yaw_p=0.3), torch.Generator().manual_seed(0))
    changed = ((turned - x).abs().amax(dim=(1, 2, 3)) > 1e-4).float().mean()
    assert 0.2 < float(changed) < 0.4


def test_no_cylinder_turn_leaves_the_face_as_it_is():
    x = torch.rand(3, 1, 48, 48)
    torch.testing.assert_close(cylinder_yaw(x, torch.zeros(3), 0.8), x, atol=1e-5, rtol=0)


def test_a_cylinder_turn_moves_a_point_round_the_cylinder_and_reframes_the_visible_face():
    """u = R sin t lands at R sin(t + a), then the visible face [-R cos a, R] is centred and zoomed."""
    radius = 0.8
    for angle_deg, u in ((30.0, 0.0), (30.0, -0.5), (50.0, 0.3), (60.0, -0.6)):
        a = math.radians(angle_deg)
        landed = radius * math.sin(math.asin(u / radius) + a)
        expected = (landed - radius * (1 - math.cos(a)) / 2) / math.sqrt((1 + math.cos(a)) / 2)
        turned = cylinder_yaw(_stripe(at=u), torch.tensor([a]), radius)
        assert abs(_stripe_position(turned) - expected) < 0.03, (angle_deg, u, _stripe_position(turned), expected)


def test_a_cylinder_turn_hides_what_goes_round_the_far_side():
    """At 60 degrees a point 40 degrees round the face (t + a = 100) is out of view: nowhere in the crop."""
    radius, a = 0.8, math.radians(60)
    hidden = cylinder_yaw(_stripe(at=radius * math.sin(math.radians(40))), torch.tensor([a]), radius)
    assert float(hidden.max()) < 0.05
    seen = cylinder_yaw(_stripe(at=radius * math.sin(math.radians(-20))), torch.tensor([a]), radius)
    assert float(seen.max()) > 0.3


def test_a_cylinder_turn_the_other_way_is_the_mirror_image():
    x = torch.rand(2, 1, 48, 48)
    a = torch.tensor([0.4, 1.0])
    torch.testing.assert_close(cylinder_yaw(x, -a, 0.8), cylinder_yaw(x.flip(-1), a, 0.8).flip(-1), atol=1e-5, rtol=0)


def test_random_yaw_uses_the_configured_model_and_rejects_unknown_ones():
    x = torch.rand(64, 1, 24, 24)
    plane = random_yaw(x, AugmentConfig(yaw_p=1.0), torch.Generator().manual_seed(0))
    cylinder = random_yaw(x, AugmentConfig(yaw_p=1.0, yaw_model="cylinder"), torch.Generator().manual_seed(0))
    assert not torch.allclose(plane, cylinder)
    with pytest.raises(ValueError, match="cylinder"):
        AugmentConfig(yaw_model="sphere")
