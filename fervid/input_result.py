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
    def faces(self) -> int:
        ids = self.timeline["face_id"]
        return int(ids[ids >= 1].nunique())
