"""What :func:`fervid.annotate` returns, :class:`AnnotateResult`, and :func:`load`, which reads a saved one back.

Below :mod:`fervid.api`, which re-exports both: ``fervid agree`` (:mod:`fervid.agreement`) loads a run, and loading
it through the API made the API and the command it offers import each other.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fervid import metadata
from fervid.io.table_reader import find_table, read_table

if TYPE_CHECKING:
    from fervid.input_result import InputResult
    from fervid.options import AnnotateOptions

PathLike = str | os.PathLike[str]


@dataclass
class AnnotateResult:
    """What :func:`annotate` returns: the tables of one input and how they were made.

    Attributes:
        faces: one row per face per processed frame (the ``<stem>.faces.csv`` columns:
            ``frame, [file], time_s, face_id, person_id, [person], x1..y2, det_score, lm*_x/y,
            emotion, confidence, p_<class>...`` and, when smoothed, ``ps_<class>...``).
        summary: one row per face track (the ``<stem>.summary.csv`` columns).
        persons: one row per identified person (``<stem>.persons.csv``); None with ``identity=False``.
        events: one row per person and ``events`` window (``<stem>.events.csv``); None without ``events``.
        classes: the model's class names, in column order.
        run: the run record (what ``<stem>.run.json`` holds; versions, models, options, input facts).
        outputs: files written so far (empty for an in-memory run until :meth:`save`).
    """

    source: Path
    stem: str
    faces: pd.DataFrame
    summary: pd.DataFrame
    classes: tuple[str, ...]
    frames: int
    seconds: float
    warning: str | None = None
    run: dict[str, Any] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    persons: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    _input: InputResult | None = field(default=None, repr=False)
    _options: AnnotateOptions | None = field(default=None, repr=False)

    @property
    def face_ids(self) -> list[int]:
        return sorted(int(i) for i in self.faces["face_id"].unique() if i >= 1)

    def save(self, directory: PathLike, stem: str | None = None) -> list[Path]:
        """Write the tables (in the run's ``format``), the timeline PNG and ``<stem>.run.json`` into ``directory``.

        Mirrors one input folder of ``fervid annotate`` (``OUT/<stem>/``), so ``fervid summarize``
        and :func:`load` read it back. The annotated video is made only while processing:
        pass ``output=`` to :func:`annotate` for it. The report (``report=True``, the default) is
        written too: its faces were cut while the frames streamed. Returns the paths written.

        Example::

            result = fervid.annotate("clip.mp4")
            result.save("results/clip")        # results/clip/clip.faces.csv, ... clip.run.json
        """
        if self._input is None or self._options is None:
            raise ValueError("only a result computed by fervid.annotate can be saved (a loaded one is on disk)")
        from fervid.run import write_outputs

        kept = [p for p in self._input.outputs if p.exists()]  # what processing wrote (the annotated video)
        computed = dataclasses.replace(self._input, outputs=kept)
        written = write_outputs(computed, Path(directory), stem or self.stem, self._options)
        self.outputs, self.run, self.seconds = written.outputs, written.run, written.seconds
        return written.outputs[len(kept) :]


def load(directory: PathLike, stem: str | None = None) -> AnnotateResult:
    """Read one input's saved outputs back (Parquet preferred, else CSV) with the in-memory dtypes.

    Example::

        result = fervid.load("fervid-out/clip")
        result.faces.head()
    """
    from fervid.io.tables import classes_of

    directory = Path(directory)
    if stem is None:
        records = sorted(directory.glob(f"*{metadata.SUFFIX}"))
        if len(records) != 1:
            raise FileNotFoundError(f"{directory}: expected one *{metadata.SUFFIX}, found {len(records)}; pass stem=")
        stem = records[0].name[: -len(metadata.SUFFIX)]
    if not metadata.is_complete(directory, stem):
        raise FileNotFoundError(f"{directory}: no complete fervid run for {stem!r} (no valid {stem}{metadata.SUFFIX})")
    run = metadata.read_run(directory, stem) or {}
    faces = read_table(find_table(directory, stem, "faces"))
    summary = read_table(find_table(directory, stem, "summary"))
    persons = read_table(find_table(directory, stem, "persons")) if "identity" in run else None
    events = read_table(find_table(directory, stem, "events")) if "events" in run else None
    classes = classes_of(faces)
    return AnnotateResult(
        source=Path(run.get("input", {}).get("path", directory)), stem=stem, faces=faces, summary=summary,
        classes=classes, frames=int(run.get("frames_processed", 0)), seconds=float(run.get("wall_time_s", 0.0)),
        warning=run.get("warning"), run=run, outputs=[directory / n for n in run.get("outputs", [])], persons=persons,
        events=events,
    )  # fmt: skip
