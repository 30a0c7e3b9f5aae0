"""``InputResult``'s facts about its input: tracked or not, and the seconds between processed frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fervid.input_result import InputResult, frame_step, is_tracked
from fervid.io.media_info import MediaInfo
from fervid.options import AnnotateOptions


@pytest.mark.parametrize(
    ("kind", "fps", "options", "tracked", "step"),
    [
        ("video", 25.0, {}, True, 0.04),
        ("video", 25.0, {"every": 5}, True, 0.2),
        ("video", None, {}, True, None),  # a frame rate nobody knows: the report measures the timestamps
        ("image_folder", None, {"sequence": True, "fps": 10.0, "every": 2}, True, 0.2),
        ("images", None, {"sequence": True, "fps": 4.0}, True, 0.25),
        ("image_folder", None, {}, False, None),
        ("image", None, {}, False, None),
    ],
)
def test_tracked_and_frame_step(kind: str, fps: float | None, options: dict, tracked: bool, step: float | None) -> None:
    opts = AnnotateOptions.from_flat(**options)
    assert is_tracked(kind, opts) is tracked
    got = frame_step(kind, fps, opts)
    assert got is None if step is None else got == pytest.approx(step)


def _result(media: MediaInfo | None, run: dict) -> InputResult:
    timeline = pd.DataFrame({"face_id": [1]})
    return InputResult(source=Path("clip.mp4"), kind="video", timeline=timeline, summary=timeline, frames=1,
                       seconds=0.0, media=media, run=run)  # fmt: skip


def test_the_frame_rate_is_the_probes_else_the_run_records() -> None:
    """``fervid persons`` rebuilds a result without probing when the input is not replayed: the record has it."""
    media = MediaInfo(Path("clip.mp4"), "video", 640, 360, 30.0, 1.0, 30, False, None, "h264", 0)
    opts = AnnotateOptions.from_flat(every=3)
    assert _result(media, {}).frame_step(opts) == pytest.approx(0.1)
    assert _result(None, {"input": {"fps": 15.0}}).frame_step(opts) == pytest.approx(0.2)
    assert _result(None, {}).frame_step(opts) is None
    assert _result(None, {}).tracked(opts)
