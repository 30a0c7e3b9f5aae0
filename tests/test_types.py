"""Detections carry per-face values that later stages add in ``data``, through indexing and concatenation."""

from __future__ import annotations

import numpy as np
import pytest

from fervid.types import Detections


def _faces(n: int, **data: np.ndarray) -> Detections:
    boxes = np.arange(4 * n, dtype=np.float32).reshape(n, 4)
    return Detections(boxes, np.linspace(0.5, 1, n), np.zeros((n, 5, 2)), np.arange(1, n + 1), data=data)


def test_data_follows_a_mask_a_slice_and_an_int() -> None:
    faces = _faces(4, sharpness=np.array([1.0, 2.0, 3.0, 4.0]), readable=np.array([True, False, True, True]))
    kept = faces[faces.data["readable"]]
    assert kept.track_id.tolist() == [1, 3, 4] and kept.data["sharpness"].tolist() == [1.0, 3.0, 4.0]
    assert faces[1:3].data["sharpness"].tolist() == [2.0, 3.0]
    assert faces[2].data["readable"].tolist() == [True]


def test_data_is_concatenated_key_by_key() -> None:
    joined = Detections.concat([_faces(2, yaw=np.array([1.0, 2.0])), _faces(1, yaw=np.array([3.0]))])
    assert joined.data["yaw"].tolist() == [1.0, 2.0, 3.0] and len(joined) == 3


def test_parts_with_different_data_keys_are_not_concatenated() -> None:
    with pytest.raises(ValueError, match="different data keys"):
        Detections.concat([_faces(1, yaw=np.array([1.0])), _faces(1)])


@pytest.mark.parametrize("value", [np.array([1.0]), np.array(2.0), np.zeros((3, 2))])
def test_data_must_have_a_row_per_face(value: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"data\['x'\]"):
        _faces(2, x=value)


def test_empty_detections_have_no_data() -> None:
    assert Detections.empty().data == {} and Detections.concat([]).data == {}
