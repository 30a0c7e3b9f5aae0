"""The annotate pipeline, end to end: start reading here.

Data flows one way, through typed, array-backed containers (:mod:`fervid.types`)::

    input file/folder
      │  probe once (fervid.io.probe) ─────────────► MediaInfo: video / image / image folder
      ▼
    reader (fervid.io.video, fervid.io.images) ────► Frame            decoded ahead in a thread
      ▼
    Engine.results (fervid.engine)
      ├─ detect, in worker threads ────────────────► Detections       boxes, scores, landmarks
      ├─ number faces (fervid.face_ids) ───────────► Detections       track_id: tracker, or per photo
      └─ classify a batch of frames ───────────────► Predictions      p(class) per face
      ▼
    smoother (fervid.smooth) ──────────────────────► SmoothedResult   ps(class), the label shown
      ▼
    run loop (fervid.run)
      ├─ timeline (fervid.io.tables)                  one row per face per frame
      ├─ frame sinks (fervid.sinks) ───────────────► annotated video / images, drawn in a thread
      └─ at the end: input sinks ──────────────────► tables, timeline plot; then run.json, last

Where things are decided:

* **Options** (:mod:`fervid.options`): one frozen dataclass per stage, each option defined
  once; the CLI flags and the API keywords are generated from them.
* **Threads** (:mod:`fervid.concurrency`): every thread is a ``BoundedStage``; torch's
  thread count is set once, when the engine is made (:func:`fervid.engine.plan_threads`).
* **Many inputs** (:mod:`fervid.batch`): discovery, resume, failures and interrupts; each
  input goes through :meth:`Pipeline.run`.

:class:`Pipeline` is what the CLI, the Python API, the batch runner and the benchmarks hold:
the options and the engine loaded for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fervid.engine import Engine
from fervid.io.probe import MediaInfo
from fervid.options import AnnotateOptions
from fervid.run import InputResult, ProgressCallback, run_input, stream_input
from fervid.smooth import SmoothedResult

__all__ = ["AnnotateOptions", "InputResult", "Pipeline"]


class Pipeline:
    """Options plus the engine loaded for them, reused for every input of a run.

    Assigning new ``options`` keeps the loaded models when they need the same ones
    (:attr:`AnnotateOptions.models_key`) and loads new ones otherwise. ``cores`` caps the CPU
    cores the engine plans its threads for (a Ray worker's share of its node; None: all of them).
    """

    def __init__(self, options: AnnotateOptions, cores: int | None = None) -> None:
        self._options = options
        self._cores = cores
        self.engine = Engine(options, cores)

    @property
    def options(self) -> AnnotateOptions:
        return self._options

    @options.setter
    def options(self, options: AnnotateOptions) -> None:
        if options.models_key != self._options.models_key:
            self.engine = Engine(options, self._cores)
        self._options = options

    @property
    def classes(self) -> tuple[str, ...]:
        return self.engine.classes

    def models_info(self) -> dict[str, Any]:
        """Names, files and sha256 of the loaded models (for run.json)."""
        return self.engine.models

    def run(
        self, source: Path, outdir: Path | None, stem: str, progress: ProgressCallback | None = None,
        images: Sequence[Path] | None = None, media: MediaInfo | None = None,
    ) -> InputResult:  # fmt: skip
        """Process one input; with ``outdir`` write every output there (see :func:`fervid.run.run_input`)."""
        return run_input(self.engine, self.options, Path(source), outdir, stem, progress, images, media)

    def stream(self, source: Path) -> Iterator[SmoothedResult]:
        """Frame-by-frame results of one input, writing nothing (``fervid.stream``)."""
        return stream_input(self.engine, Path(source), self.options)
