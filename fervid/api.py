"""The Python API for notebooks and scripts: the same pipeline as ``fervid annotate``, as DataFrames.

``fervid annotate`` and :func:`annotate` build the same :class:`~fervid.options.AnnotateOptions`
(the CLI's flags and these keywords are generated from its fields) and call the same
:meth:`Pipeline.run <fervid.pipeline.Pipeline.run>`, so a table made here is the table the CLI
writes, column for column and dtype for dtype.

Example::

    import fervid

    result = fervid.annotate("clip.mp4", model="ferplus", device="auto", smooth=0.5)
    result.faces.groupby("face_id")["p_happy"].mean()   # per-frame table, same columns as faces.csv
    result.summary                                     # one row per face, same as summary.csv
    result.save("out/clip")                            # tables, timeline PNG and run.json

    for frame in fervid.stream("clip.mp4", end=10):    # nothing written, frame by frame
        print(frame.frame.time_s, frame.detections.track_id, frame.shown.label)

    corpus = fervid.summarize("fervid-out")            # every input × person of a CLI run
    fervid.edit_persons("fervid-out/clip", merge=[("P2", "P11")], names={"P2": "Ada"})  # fix persons after a run
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fervid import metadata

if TYPE_CHECKING:
    from fervid.agreement import Agreement
    from fervid.options import AnnotateOptions
    from fervid.pipeline import InputResult, Pipeline
    from fervid.smooth import SmoothedResult

PathLike = str | os.PathLike[str]
#: The per-input outputs a summary is built from, in the order they are looked for.
_TABLE_SUFFIXES = (".parquet", ".csv")
#: Columns of the per-face tables that are not float32 (timeline) / float64 (summary).
_TIMELINE_DTYPES = {"frame": "int64", "time_s": "float64", "face_id": "int64", "person_id": "int64"}
_SUMMARY_DTYPES = {"face_id": "int64", "person_id": "int64", "first_time_s": "float64", "last_time_s": "float64",
                   "frames": "int64", "readable_frames": "int64", "onset_s": "float64",
                   "offset_s": "float64"}  # fmt: skip
_TEXT_COLUMNS = ("file", "files", "emotion", "dominant_emotion", "input", "source", "model", "person", "face_ids",
                 "event", "measure", "pose_source")  # fmt: skip


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

        self._input.outputs = [p for p in self._input.outputs if p.exists()]
        before = len(self._input.outputs)
        write_outputs(self._input, Path(directory), stem or self.stem, self._options)
        self.outputs, self.run, self.seconds = self._input.outputs, self._input.run, self._input.seconds
        self.events = self._input.events  # with blink rates when a blinks table was written
        return self.outputs[before:]


def options(**kwargs: Any) -> AnnotateOptions:
    """:class:`~fervid.options.AnnotateOptions` from the API's keywords: each option by its name.

    The names are the CLI's long flags with underscores (``det_threshold``, ``smooth``,
    ``start``, ``end``, ``track_buffer``, ``video``, ``bars``, ``plots``, ``format``...);
    :func:`option_names` lists them. Unknown names raise a TypeError that lists the valid ones.
    """
    from fervid.options import AnnotateOptions

    return AnnotateOptions.from_flat(**kwargs)


def option_names() -> list[str]:
    """Every keyword :func:`annotate` and :func:`stream` take, beyond ``source``/``output``/``progress``."""
    from fervid.options import leaf_fields

    return [f.name for _, f in leaf_fields()]


_cached: Pipeline | None = None


def pipeline(opts: AnnotateOptions) -> Pipeline:
    """A Pipeline for these options; the last one is reused, with its models when they are the same.

    Loading the detector and classifier takes about a second, so notebook loops over
    many clips reuse them (see :attr:`AnnotateOptions.models_key`).
    """
    global _cached
    from fervid.pipeline import Pipeline

    if _cached is None:
        _cached = Pipeline(opts)
    else:
        _cached.options = opts
    return _cached


def annotate(
    source: PathLike, output: PathLike | None = None, *, progress: Callable[[int], None] | None = None, **kwargs: Any
) -> AnnotateResult:
    """Detect, track and classify the faces of one video, image or image folder.

    Args:
        source: a video (anything FFmpeg reads), an image, or a folder of images.
        output: with a folder, write everything ``fervid annotate -o OUTPUT`` writes into
            ``OUTPUT/<stem>/`` (annotated video, tables, timeline PNG, run.json). Without,
            nothing is written; call :meth:`AnnotateResult.save` later if wanted.
        progress: called with the number of frames just processed.
        **kwargs: any ``fervid annotate`` option by its name (:func:`option_names`), e.g.
            ``model="ferplus"``, ``device="cuda"``, ``smooth=0.5``, ``smooth_mode="causal"``,
            ``every=2``, ``start=10``, ``end=20``, ``det_threshold=0.4``, ``video=False``.

    Example::

        result = fervid.annotate("interview.mp4", smooth=0.5, every=2)
        happy = result.faces.pivot_table(index="time_s", columns="face_id", values="ps_happy")
    """
    opts = options(**kwargs)
    source = Path(source)
    stem = source.name if source.is_dir() else source.stem
    outdir = Path(output) / stem if output is not None else None
    result = pipeline(opts).run(source, outdir, stem, progress=progress)
    return _wrap(result, stem, opts)


def stream(source: PathLike, **kwargs: Any) -> Iterator[SmoothedResult]:
    """Yield one result per processed frame, in order, without writing anything.

    Takes the same option keywords as :func:`annotate`. Each item has ``.frame`` (index,
    ``time_s``, the RGB ``image``), ``.detections`` (boxes, scores, landmarks, ``track_id``),
    ``.predictions`` (raw probabilities), ``.smoothed`` (None unless ``smooth`` > 0) and
    ``.shown`` (what the video would label). Tracking confirms a face over a few frames and
    centred smoothing needs ``smooth`` seconds of look-ahead, so items arrive a little behind
    decoding; the order is kept. Stop early with ``break``; the decoder thread is closed with
    the generator.

    Example::

        for r in fervid.stream("webcam.mp4", smooth=1.0, smooth_mode="causal"):
            for face, label in zip(r.detections.track_id, r.shown.label):
                print(f"{r.frame.time_s:6.2f}s face {face}: {label}")
    """
    yield from pipeline(options(**kwargs)).stream(Path(source))


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


def edit_persons(
    directory: PathLike, merge: Iterable[Sequence[int | str]] = (), names: dict[int | str, str] | None = None,
    drop: Iterable[int | str] = (),
) -> AnnotateResult:  # fmt: skip
    """Merge, name or drop persons of a finished run and rewrite all of its outputs (``fervid persons``).

    IDs are written as the report writes them (``"P3"``) or as numbers. ``merge=[("P3", "P5")]``
    folds P5 into P3; ``names={"P2": "Ada"}``; ``drop=["P9"]`` takes P9 out of the conclusions
    (its faces stay in the faces table with ``person_id`` 0). No model runs; the annotated video
    is drawn again from the input. Either every output changes or none (an error leaves the
    folder as it was). Returns the run read back, as :func:`load`.

    Example::

        result = fervid.edit_persons("fervid-out/clip", merge=[("P2", "P11")], names={"P2": "Ada"})
        result.persons
    """
    from fervid.identity.edits import PersonEdits
    from fervid.identity.rewrite import edit_persons as rewrite

    outcome = rewrite(Path(directory), PersonEdits.of(merge, names, drop))
    return load(outcome.folder, outcome.stem)


def read_table(path: PathLike) -> pd.DataFrame:
    """A faces, summary, persons or events table, or a corpus table (wide or long), from CSV or Parquet, with the
    dtypes it was made with.

    Parquet keeps dtypes itself; CSV has none, so a table's columns come back with the dtypes
    :mod:`fervid.columns` defines for them (ids and counts int64, the timeline's measurements
    float32, ``readable`` bool, times and summary statistics float64, text as text), other
    columns float32 (faces) or float64 (summaries). A corpus
    summary's ``person_id`` is missing for inputs run without identity, its ``readable_frames`` for
    runs made before it existed: such a column is then Int64 (nullable).
    """
    from fervid.columns import BY_NAME, TABLES, lookup

    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    is_summary = path.name.endswith((".summary.csv", ".persons.csv", ".events.csv", ".long.csv"))
    fixed = _SUMMARY_DTYPES if is_summary else {**{c.name: c.dtype for c in BY_NAME.values()}, **_TIMELINE_DTYPES}
    table = next((t for t in sorted(TABLES, key=len, reverse=True) if path.name.endswith(f".{t}.csv")), None)
    header = pd.read_csv(path, nrows=0).columns
    dtypes: dict[str, Any] = {c: fixed.get(c, "float64" if is_summary else "float32") for c in header}
    defined = {c: lookup(table, c) for c in header} if table else {}
    dtypes |= {c: "str" if d.dtype == "text" else d.dtype for c, d in defined.items() if d is not None}
    for c in _TEXT_COLUMNS:
        if c in dtypes:
            dtypes[c] = "str"
    nullable = [c for c in _NULLABLE_COUNTS if c in dtypes] if is_summary else []
    dtypes |= dict.fromkeys(nullable, "Int64")  # empty in some rows of a corpus summary
    frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])
    return _int64_where_complete(frame, nullable)


#: Integer columns of a corpus summary that some inputs lack: ``person_id`` (runs without identity),
#: ``readable_frames`` (runs made before it existed).
_NULLABLE_COUNTS = ("person_id", "readable_frames")


def _int64_where_complete(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Each of ``columns`` as int64 when no value is missing, else as Int64 (nullable)."""
    for c in columns:
        frame[c] = frame[c].astype("Int64")
        if not frame[c].isna().any():
            frame[c] = frame[c].astype("int64")
    return frame


def agree(folder: PathLike, *, write: bool = True, **kwargs: Any) -> Agreement:
    """Compare one run's labels of one person with a human-coded ELAN tier, as ``fervid agree`` does.

    ``folder`` is one input's output folder (``OUT/<stem>``); the keywords are ``fervid agree``'s
    options by name (:class:`fervid.options.AgreeOptions`): ``eaf``, ``tier``, ``person``,
    ``smoothed``, ``tolerance``, ``map``. With ``write`` (the default) the results are saved beside
    the run. Bad input raises :class:`fervid.agreement.AgreementError` (a ValueError) and writes nothing.

    Example::

        found = fervid.api.agree("fervid-out/clip", eaf="coded.eaf", tier="Emotion", person="P2")
        found.kappa, found.table, found.confusion
    """
    from fervid.agreement import agree as compare
    from fervid.options import AgreeOptions

    return compare(Path(folder), AgreeOptions(**kwargs), write=write)


def summarize(outdir: PathLike) -> pd.DataFrame:
    """One row per input × person over every complete input under ``outdir`` (a ``fervid annotate -o`` folder).

    A person seen in several shots (several face tracks) is one row, as in ``persons.csv``;
    an input run with ``identity=False`` has one row per face track instead, its
    ``person_id`` missing (``<NA>``). Columns: ``input`` (the output folder name), ``source``
    (the input's path), ``model``, ``person_id``, ``person`` (the ``--people`` name; only
    when some input has names), ``face_ids`` (the person's face tracks, space-separated),
    ``first_time_s``, ``last_time_s``, ``duration_s`` (last - first), ``visible_s`` (the time
    on screen: each of the face's frames lasts until the next processed frame), ``frames``,
    ``readable_frames`` and ``readable_share`` (the faces the conclusions rest on: readable, with
    ``p_correct`` at or above the run's ``--min-p-correct``; NaN for a run made before they existed),
    ``dominant_emotion`` (empty for a person with no such face), ``mean_p_<class>`` for every class
    of any input's model (NaN where a model lacks the class, or the person has no such face), then
    the per-input table's other columns as they are (``share_<class>``, a photo's ``file``), and last
    ``mean_valence`` and ``blinks_per_min`` (NaN for an input run with ``--no-behaviour``). Inputs
    without faces have no rows; inputs without a complete run.json (unfinished or failed) are
    skipped with a warning.

    Example::

        table = fervid.summarize("fervid-out")
        table.groupby("dominant_emotion").size()
    """
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise NotADirectoryError(f"{outdir}: is a file; give the folder `fervid annotate -o` wrote")
    if not outdir.is_dir():
        raise FileNotFoundError(f"{outdir}: no such folder")
    parts: list[pd.DataFrame] = []
    for folder, stem in metadata.run_records(outdir):
        if not metadata.is_complete(folder, stem):
            warnings.warn(f"{folder}: skipped, its run is incomplete", stacklevel=2)
            continue
        run = metadata.read_run(folder, stem) or {}
        parts.append(_corpus_rows(folder, stem, run, stem if folder == outdir else folder.name))
    columns = corpus_columns(parts)
    if not any(len(part) for part in parts):
        return pd.DataFrame({c: pd.Series(dtype=_corpus_dtype(c)) for c in columns})
    table = pd.concat([part for part in parts if len(part)], ignore_index=True).reindex(columns=columns)
    return _int64_where_complete(table, list(_NULLABLE_COUNTS))


#: The corpus table's first columns, in order; each input's other columns follow.
_CORPUS_HEAD = ("input", "source", "model", "person_id", "person", "face_ids", "first_time_s", "last_time_s",
                "duration_s", "visible_s", "frames", "readable_frames", "readable_share",
                "dominant_emotion")  # fmt: skip


def _corpus_rows(folder: Path, stem: str, run: dict[str, Any], label: str) -> pd.DataFrame:
    """One input's rows of the corpus table: its persons (its face tracks without identity), the run's facts first."""
    by_person = "identity" in run and any((folder / f"{stem}.persons{s}").exists() for s in _TABLE_SUFFIXES)
    table = read_table(find_table(folder, stem, "persons" if by_person else "summary"))
    info, opts = run.get("input", {}), run.get("options", {})
    rows = pd.DataFrame({"input": label, "source": info.get("path", ""), "model": opts.get("model", "")},
                        index=table.index)  # fmt: skip
    if by_person:
        rows["person_id"] = table["person_id"].astype("Int64")
    else:
        rows["person_id"] = pd.Series(pd.NA, index=table.index, dtype="Int64")
        rows["face_ids"] = table["face_id"].astype("int64").astype(str)
    rows["duration_s"] = table["last_time_s"] - table["first_time_s"]
    if "visible_s" not in table:  # a run made before summary.csv had it: processed frames x frame step
        fps = info.get("fps")
        rows["visible_s"] = table["frames"] * (opts.get("every", 1) / fps if fps else float("nan"))
    rest = table.drop(columns=[c for c in ("face_id", "person_id") if c in table])
    return pd.concat([rows, rest], axis=1)


def corpus_columns(
    parts: list[pd.DataFrame], head_columns: tuple[str, ...] = _CORPUS_HEAD, optional: tuple[str, ...] = ("person",)
) -> list[str]:
    """The head columns (``optional`` ones only when some input has them), then the inputs' other columns
    (``file``...), ``mean_p_<class>``, ``share_<class>``, other means (``mean_valence``...) and rates.

    Classes follow fervid.types.EMOTIONS (others after them), so inputs of different models line up.
    """
    from fervid.types import EMOTIONS

    seen = list(dict.fromkeys(c for part in parts for c in part.columns))
    head = [c for c in head_columns if c not in optional or c in seen]
    blocks = ("mean_p_", "share_", "mean_", "blinks_")

    def key(column: str) -> tuple[int, int, int]:
        block = next((k for k, prefix in enumerate(blocks, 1) if column.startswith(prefix)), 0)
        name = column.removeprefix(blocks[block - 1]) if block else ""
        return block, EMOTIONS.index(name) if name in EMOTIONS else len(EMOTIONS), seen.index(column)

    return head + sorted((c for c in seen if c not in head), key=key)


def _corpus_dtype(column: str) -> str:
    if column in ("input", "source", "model", "dominant_emotion", "person", "face_ids"):
        return "str"
    if column == "person_id":
        return "Int64"
    return "int64" if column in ("frames", "readable_frames") else "float64"


def find_table(folder: Path, stem: str, what: str) -> Path:
    """The ``<stem>.<what>`` table in ``folder`` (Parquet or CSV), or FileNotFoundError; fervid.corpus uses it too."""
    for suffix in _TABLE_SUFFIXES:
        path = folder / f"{stem}.{what}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"{folder}: no {stem}.{what}.parquet or .csv")


def _wrap(result: InputResult, stem: str, opts: AnnotateOptions) -> AnnotateResult:
    return AnnotateResult(
        source=result.source, stem=stem, faces=result.timeline, summary=result.summary, classes=result.classes,
        frames=result.frames, seconds=result.seconds, warning=result.warning, run=result.run,
        outputs=list(result.outputs), persons=result.persons, events=result.events, _input=result, _options=opts,
    )  # fmt: skip
