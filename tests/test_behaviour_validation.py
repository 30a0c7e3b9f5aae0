"""Issue 32's validation targets, on the by-eye labels of tests/data/behaviour (slow: every labelled clip runs).

* head pose: at least 90 % of the labelled faces in the right yaw bin; the Hamilton curly-haired man in
  profile (shot 2) reads |yaw| >= 45° or NaN, never frontal;
* blinks: F1 >= 0.9 with onsets within ±2 frames, over the fully inspected ranges.

``python tests/_behaviour_validation.py`` prints the same figures and every miss.
"""

from __future__ import annotations

import numpy as np
import pytest
from _behaviour_validation import MEDIA, blink_results, f1, pose_results, yaw_bin

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_media() -> None:
    if not MEDIA.is_dir():
        pytest.skip(f"needs ../shared/media ({MEDIA}) for the labelled clips")


@pytest.mark.parametrize(
    ("yaw", "expected"),
    [(0.0, "frontal"), (-19.9, "frontal"), (25.0, "right_three_quarter"), (-40.0, "left_three_quarter"),
     (61.0, "right_profile"), (-85.0, "left_profile"), (float("nan"), None)],
)  # fmt: skip
def test_yaw_bins(yaw: float, expected: str | None) -> None:
    assert yaw_bin(yaw) == expected


@pytest.mark.xfail(
    strict=True,
    reason="issue 32's target is not met: 54 of 63 (85.7 %) in the right bin when measured (2026-12-05); the misses "
    "sit at the 20° frontal/three-quarter edge and at the 60° three-quarter/profile edge (see "
    "docs/behaviour-measures.md). Strict: remove this mark when it passes.",
)
def test_head_pose_puts_nine_in_ten_labelled_faces_in_the_right_yaw_bin() -> None:
    pose = pose_results()
    assert pose["matched"].all(), pose[~pose["matched"]]
    right = pose["predicted"] == pose["yaw_bin"]
    assert right.mean() >= 0.9, pose[~right].to_string()


def test_head_pose_keeps_its_measured_bin_accuracy() -> None:
    """Not the issue's target (above, xfail): a floor at the accuracy measured when the rules were chosen, so a
    change that makes the pose worse fails here."""
    pose = pose_results()
    right = pose["predicted"] == pose["yaw_bin"]
    assert right.sum() >= 54, pose[~right].to_string()


def test_hamilton_profile_is_never_frontal() -> None:
    pose = pose_results()
    profile = pose[pose["note"].fillna("").str.contains("shot 2, curly-haired man in profile")]
    assert len(profile) >= 4
    yaw = profile["yaw"].to_numpy()
    assert (np.isnan(yaw) | (np.abs(yaw) >= 45)).all(), profile.to_string()


def test_blinks_are_found_with_f1_of_at_least_0_9() -> None:
    labels, found = blink_results()
    assert f1(labels, found) >= 0.9, (labels[~labels["hit"]].to_string(), found[~found["hit"]].to_string())
