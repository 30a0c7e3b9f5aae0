"""TimelineBuilder: rows land in the right columns however the buffers grow (synthetic frames)."""

from __future__ import annotations

import numpy as np
import pytest

from fervid.io.tables import TimelineBuilder, timeline_columns
from fervid.types import EMOTIONS, Detections, Frame, FrameResult, Predictions

IMAGE = np.zeros((2, 2, 3), np.uint8)


def _result(index: int, n: int, rng: np.random.Generator, source: str | None = None) -> FrameResult:
    probs = rng.dirichlet(np.ones(len(EMOTIONS)), size=n).astype(np.float32)
    dets = Detections(
        xyxy=rng.uniform(0, 100, (n, 4)).astype(np.float32),
        score=rng.uniform(0.5, 1, n).astype(np.float32),
        landmarks=rng.uniform(0, 100, (n, 5, 2)).astype(np.float32),
        track_id=np.arange(1, n + 1, dtype=np.int64) + index,
    )
    frame = Frame(index=index, time_s=index / 30, image=IMAGE, source=source)
    return FrameResult(frame, dets, Predictions(probs, EMOTIONS))


@pytest.mark.parametrize("with_file", [False, True])
def test_rows_survive_buffer_growth(with_file: bool) -> None:
    rng = np.random.default_rng(0)
    builder = TimelineBuilder(EMOTIONS, with_file=with_file)
    counts = [rng.integers(0, 4) for _ in range(300)]  # ~450 rows: the 64-row buffers grow several times
    results = [_result(i, int(n), rng, f"img{i}.jpg" if with_file else None) for i, n in enumerate(counts)]
    for r in results:
        builder.add(r)
    table = builder.frame()
    assert list(table.columns) == timeline_columns(EMOTIONS, with_file)
    assert len(table) == sum(counts) == builder.rows
    faces = [r for r in results for _ in range(len(r.detections))]
    row_in_frame = [k for r in results for k in range(len(r.detections))]
    for row, (r, k) in enumerate(zip(faces, row_in_frame)):
        got = table.iloc[row]
        assert got["frame"] == r.frame.index and got["time_s"] == r.frame.time_s
        assert got["face_id"] == r.detections.track_id[k]
        np.testing.assert_array_equal(got[["x1", "y1", "x2", "y2"]].to_numpy(float), r.detections.xyxy[k])
        np.testing.assert_array_equal(got[[f"lm{i}_{a}" for i in range(1, 6) for a in "xy"]].to_numpy(float),
                                      r.detections.landmarks[k].reshape(10))  # fmt: skip
        np.testing.assert_array_equal(got[[f"p_{c}" for c in EMOTIONS]].to_numpy(float), r.predictions.probs[k])
        assert got["emotion"] == EMOTIONS[int(r.predictions.probs[k].argmax())]
        if with_file:
            assert got["file"] == r.frame.source


def test_empty_builder_gives_the_full_header() -> None:
    table = TimelineBuilder(EMOTIONS).frame()
    assert table.empty and list(table.columns) == timeline_columns(EMOTIONS, False)


def test_per_face_data_becomes_columns_after_the_probabilities_in_the_defined_order() -> None:
    rng = np.random.default_rng(1)
    builder = TimelineBuilder(EMOTIONS, data_columns=("sharpness", "readable", "p_correct"))
    results = []
    for i in range(100):  # 64-row buffers grow
        r = _result(i, int(rng.integers(0, 3)), rng)
        n = len(r.detections)
        r.detections.data = {"sharpness": rng.uniform(0, 500, n).astype(np.float32),
                             "readable": rng.uniform(size=n) < 0.5,
                             "p_correct": rng.uniform(size=n).astype(np.float32)}  # fmt: skip
        builder.add(r)
        results.append(r)
    table = builder.frame()
    probs = [f"p_{c}" for c in EMOTIONS]
    assert list(table.columns)[-3:] == ["readable", "p_correct", "sharpness"]  # fervid.columns' order
    assert list(table.columns)[-3 - len(probs) : -3] == probs
    assert table["readable"].dtype == bool and table["p_correct"].dtype == np.float32
    for key in ("readable", "p_correct", "sharpness"):
        expected = np.concatenate([r.detections.data[key] for r in results])
        np.testing.assert_array_equal(table[key].to_numpy(), expected)


def test_an_empty_builder_with_data_columns_has_their_header_and_dtypes() -> None:
    table = TimelineBuilder(EMOTIONS, data_columns=("readable", "yaw")).frame()
    assert list(table.columns) == timeline_columns(EMOTIONS, False, data_columns=("readable", "yaw"))
    assert table["readable"].dtype == bool and table["yaw"].dtype == np.float32
