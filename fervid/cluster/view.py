"""The driver's one progress view of a cluster run: inputs done, failed, running and left, frames/s, ETA.

Shown only on a terminal (a log file or a pipe gets the closing table, as a local run does).
Speed is the whole cluster's: frames processed by every worker since the workers were
ready, over the wall time since then. The ETA is the frames left at that speed (frame
counts the driver cannot know yet are estimated from the inputs it knows).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from rich.console import Console


@dataclass
class Counts:
    """Where the run stands; ``frames_left`` is None when nothing is known about the inputs left."""

    done: int = 0
    failed: int = 0
    running: int = 0
    left: int = 0
    frames: int = 0
    frames_left: int | None = None


def summary(counts: Counts, elapsed_s: float) -> tuple[str, str]:
    """(inputs text, speed and ETA text) for ``counts`` after ``elapsed_s`` seconds."""
    c = counts
    inputs = f"{c.done} done, {c.failed} failed, {c.running} running, {c.left} left"
    fps = c.frames / elapsed_s if elapsed_s > 0 else 0.0
    finished = c.done + c.failed
    if c.frames_left is not None and fps > 0:
        eta = c.frames_left / fps
    elif finished:
        eta = elapsed_s / finished * (c.running + c.left)
    else:
        eta = None
    return inputs, f"{fps:.1f} frames/s · ETA {_clock(eta)}"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class ClusterView:
    """A Rich progress bar over the inputs, redrawn by :meth:`update`; nothing when not on a terminal."""

    def __init__(self, console: Console | None, total: int, title: str = "ray") -> None:
        self.console = console
        self.total = total
        self.title = title
        self.started = time.perf_counter()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ClusterView:
        self.started = time.perf_counter()
        if self.console is None or not self.console.is_terminal:
            return self
        from rich.markup import escape
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn(f"[bold]{escape(self.title)}"), BarColumn(), MofNCompleteColumn(), TextColumn("inputs:"),
            TextColumn("{task.fields[inputs]}"), TextColumn("{task.fields[speed]}"), console=self.console,
            transient=True,
        )  # fmt: skip
        self._progress.start()
        self._task = self._progress.add_task("annotate", total=self.total, inputs="", speed="")
        return self

    def update(self, counts: Counts) -> None:
        if self._progress is None:
            return
        inputs, speed = summary(counts, time.perf_counter() - self.started)
        self._progress.update(self._task, completed=counts.done + counts.failed, inputs=inputs, speed=speed)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
