"""What an input is and how much of it a run covered, in the words the report and ``OUT/index.html`` share.

A run may cover part of a file (``--start``/``--end``): the file's duration and the time
processed are different numbers, and both pages give both, with the same wording and
precision. Photos have no time: they are counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fervid.checks import plural


def is_timed(span: Sequence[float] | None) -> bool:
    """Whether a run's ``time_range_s`` holds times (videos, ``--sequence`` folders), not NaN (photos)."""
    return bool(span) and all(isinstance(t, (int, float)) and math.isfinite(t) for t in span)  # type: ignore[union-attr]


def duration_text(facts: dict[str, Any]) -> str:
    """The whole file's duration from the input facts of run.json; a dash when it has none (images, raw streams)."""
    duration = facts.get("duration_s")
    return f"{duration:.2f} s" if isinstance(duration, (int, float)) and duration > 0 else "–"


def processed_text(frames: int, span: Sequence[float] | None) -> str:
    """What was processed: ``0.00 s – 2.99 s (88 frames)``, or ``11 photos`` for photos."""
    if is_timed(span):
        return f"{span[0]:.2f} s – {span[1]:.2f} s ({plural(frames, 'frame')})"  # type: ignore[index]
    return plural(frames, "photo")


def picture_text(facts: dict[str, Any]) -> str | None:
    """The picture size, or for a folder of photos of several sizes the smallest and largest; None if unknown."""
    sizes = facts.get("picture_sizes") or {}
    if sizes.get("sizes", 1) > 1:
        (w0, h0), (w1, h1) = sizes["smallest"], sizes["largest"]
        return f"{w0} × {h0} to {w1} × {h1} px ({sizes['sizes']} sizes)"
    if facts.get("width") and facts.get("height"):
        return f"{facts['width']} × {facts['height']} px"
    return None
