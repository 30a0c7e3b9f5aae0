"""What one input produced: :class:`InputResult`, in a module of its own.

The run loop (:mod:`fervid.run`) makes it; the sinks, the report and the API read it. Kept apart from the
run loop so that readers of a result need not import the code that makes one (that made ``run`` and
``sinks`` import each other). It imports only leaf modules at run time; the identity and events types it
names are for type checkers only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fervid.io.media_info import MediaInfo

if TYPE_CHECKING:
    from fervid.events import Events
    from fervid.identity.stage import IdentityResult
    from fervid.options import AnnotateOptions


def is_tracked(kind: str, options: AnnotateOptions) -> bool:
    """Faces are followed over time in a video and a ``--sequence`` folder; independent photos are not.

    ``kind``: the input's (:attr:`MediaInfo.kind`) or its result's (:attr:`InputResult.kind`), "video" in both.
    """
    return kind == "video" or options.input.sequence


def frame_step(kind: str, fps: float | None, options: AnnotateOptions) -> float | None:
    """Seconds between processed frames: ``--every`` over the frame rate (a video's own, a ``--sequence``
    folder's ``--fps``); None for independent photos, and for a video whose frame rate is not known."""
    if not is_tracked(kind, options):
        return None
    rate = fps if kind == "video" else options.input.fps
    return options.input.every / rate if rate else None


@dataclass(kw_only=True)
class InputResult:
    """What one input produced (the CLI's closing table and the API's return value).

    Built by keyword only: with this many fields (two of them seconds) a positional call is easy to get wrong.
    """

    source: Path
    kind: str  # "video" | "images"
    timeline: pd.DataFrame
    summary: pd.DataFrame
    frames: int
    seconds: float
    outputs: list[Path] = field(default_factory=list)
    warning: str | None = None  # e.g. decoding stopped early on a damaged file
    classes: tuple[str, ...] = ()
    time_range: tuple[float, float] | None = None  # first and last processed frame time
    run: dict[str, Any] = field(default_factory=dict)  # the run.json record (written or not)
    media: MediaInfo | None = None  # the input's probe result
    processing_s: float = 0.0  # the frame loop alone (``seconds`` adds opening the input and writing outputs)
    persons: pd.DataFrame | None = None  # one row per identified person (None: identity off)
    identity: IdentityResult | None = None  # the final grouping of tracks into persons
    collected: dict[str, Any] = field(default_factory=dict)  # what frame sinks kept for the input sinks (report)
    blinks: pd.DataFrame | None = None  # one row per blink (None: not looked for: photos, --no-behaviour)
    windows: Events | None = None  # the --events windows of this input (None: no --events)
    events: pd.DataFrame | None = None  # one row per person and event (fervid.events.event_table)

    @property
    def fps(self) -> float:
        """Frames per second while frames were processed (what the progress bar shows)."""
        return self.frames / self.processing_s if self.processing_s > 0 else 0.0

    @property
    def input_fps(self) -> float | None:
        """The input's frame rate: its probe result's, else its run record's (``fervid persons`` edits a run
        whose input may be gone)."""
        if self.media is not None:
            return self.media.fps
        return self.run.get("input", {}).get("fps")

    def tracked(self, options: AnnotateOptions) -> bool:
        """Whether this input's faces were followed over time (:func:`is_tracked`)."""
        return is_tracked(self.kind, options)

    def frame_step(self, options: AnnotateOptions) -> float | None:
        """Seconds between its processed frames (:func:`frame_step`)."""
        return frame_step(self.kind, self.input_fps, options)

    @property
    def faces(self) -> int:
        ids = self.timeline["face_id"]
        return int(ids[ids >= 1].nunique())
