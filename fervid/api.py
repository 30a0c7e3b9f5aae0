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

:class:`AnnotateResult` and :func:`load` live in :mod:`fervid.result`, :func:`read_table` and :func:`find_table` in
:mod:`fervid.io.table_reader`, so the commands offered here can read runs without importing this module back; they
are the API's names all the same.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fervid import metadata
from fervid.io.table_reader import NULLABLE_COUNTS, TABLE_SUFFIXES, find_table, int64_where_complete, read_table
from fervid.result import AnnotateResult, PathLike, load

__all__ = [
    "AnnotateResult", "PathLike", "agree", "annotate", "corpus_columns", "edit_persons", "find_table", "load",
    "option_names", "options", "pipeline", "read_table", "stream", "summarize",
]  # fmt: skip

if TYPE_CHECKING:
    from fervid.agreement import Agreement
    from fervid.options import AnnotateOptions
    from fervid.pipeline import InputResult, Pipeline
    from fervid.smooth import SmoothedResult


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
    return int64_where_complete(table, list(NULLABLE_COUNTS))


#: The corpus table's first columns, in order; each input's other columns follow.
_CORPUS_HEAD = ("input", "source", "model", "person_id", "person", "face_ids", "first_time_s", "last_time_s",
                "duration_s", "visible_s", "frames", "readable_frames", "readable_share",
                "dominant_emotion")  # fmt: skip


def _corpus_rows(folder: Path, stem: str, run: dict[str, Any], label: str) -> pd.DataFrame:
    """One input's rows of the corpus table: its persons (its face tracks without identity), the run's facts first."""
    by_person = "identity" in run and any((folder / f"{stem}.persons{s}").exists() for s in TABLE_SUFFIXES)
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


def _wrap(result: InputResult, stem: str, opts: AnnotateOptions) -> AnnotateResult:
    return AnnotateResult(
        source=result.source, stem=stem, faces=result.timeline, summary=result.summary, classes=result.classes,
        frames=result.frames, seconds=result.seconds, warning=result.warning, run=result.run,
        outputs=list(result.outputs), persons=result.persons, events=result.events, _input=result, _options=opts,
    )  # fmt: skip
