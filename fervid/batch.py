"""Many inputs in one run: find them, process each on its own, report, resume, stop cleanly.

``fervid annotate`` hands this module its arguments; it never stops a batch for one
bad file, never leaves a half-written output behind, and never reports a folder of
outputs as a result unless the run that wrote it finished.

Input discovery (content is sniffed with Pillow and PyAV, extensions are ignored):

* A file argument is one input, whatever it holds (a bad file fails with its reason).
* A folder with images and no video is one image-folder input, as it always was:
  its unreadable files are skipped with a warning and the input is marked partial.
* Any other folder is a batch: every file in it that is not an image is one input
  (a video, or anything else, which then fails with its one-line reason instead of
  being ignored), and its loose images, if any, form one image-folder input named
  after the folder. A folder argument with nothing in it fails with a hint.
* Subfolders are visited only with ``recursive``, each by the same rule.
  Hidden files and folders (``.name``) and the output folder itself are ignored.

Per input the outcome is one of ``done``, ``partial`` (outputs complete, but the
input was damaged: a truncated video, a corrupt stretch, skipped images),
``skipped`` (complete outputs from an earlier run, see ``fervid.metadata``),
``failed`` (no outputs) and ``interrupted``. A partial result is a finished result:
a re-run skips it too (redoing it would only hit the same damage), and the table
says "skipped (partial: ...)" so the damage is never forgotten.

Outputs of the input being processed are removed when it fails or is interrupted,
so an output folder holds either a complete result (with its ``<stem>.run.json``
written last) or nothing new. SIGINT and SIGTERM raise :class:`Interrupted` (a
``KeyboardInterrupt``) through :func:`stop_on_signals`, which only the CLI installs.

Where ``BatchRunner.process`` runs is an :class:`Executor`'s only job: here, one input at
a time (:class:`LocalExecutor`), or in Ray actors across a cluster (``fervid.cluster``,
imported only for ``--ray``). Discovery, stems, resume and the report are the same for both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import errno
import os
import shutil
import signal
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from fervid.checks import plural
from fervid.errors_text import one_line
from fervid.io.atomic import PARTIAL_TAG, clean_partials
from fervid.io.errors import InputError
from fervid.io.images import natural_key
from fervid.io.probe import MediaInfo, expected_frames, probe

if TYPE_CHECKING:
    from fervid.options import AnnotateOptions
    from fervid.pipeline import InputResult, Pipeline

ProgressCallback = Callable[[int], None]
#: Refuse to start with less free space than this on the output file system.
MIN_FREE_BYTES = 64 * 2**20
#: Errors writing outputs that will hit every later input too: the batch stops.
_FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


# ---------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class BatchInput:
    """One unit of work: a file, or a folder of images (all of it, or the listed ``images``)."""

    source: Path
    kind: Literal["file", "images"]
    label: str  # how the table names it: relative to the folder argument it came from
    images: tuple[Path, ...] | None = None  # loose images next to videos; None: the whole folder
    stem: str = ""  # output folder name, filled by assign_stems
    problem: str | None = None  # known before processing: the input fails with this reason
    media: MediaInfo | None = None  # the probe result, made once (at discovery or just before processing)


def sniff(path: Path) -> MediaInfo | None:
    """What a file holds, by content (:func:`fervid.io.probe.probe`); None when it is neither image nor video.

    Opening is not enough for video: FFmpeg's image demuxer "opens" any file named
    ``.jpg``, so a video is a file whose first frame actually decodes.
    """
    try:
        return probe(path)
    except Exception:  # whatever PyAV raises, a file it cannot decode is not media; the run says why
        return None


def probed(item: BatchInput) -> BatchInput:
    """``item`` with its probe result: each input is probed once, and the result travels with it.

    A file that cannot be probed keeps ``media=None``; processing then fails with the reason.
    """
    if item.media is not None or item.problem is not None or not item.source.exists():
        return item
    try:
        return dataclasses.replace(item, media=probe(item.source))
    except (InputError, OSError, ValueError):
        return item


def _kind(media: MediaInfo | None) -> Literal["image", "video", "other"]:
    return "other" if media is None else ("image" if media.kind == "image" else "video")


def discover_inputs(
    paths: Sequence[Path], recursive: bool = False, exclude: Sequence[Path] = (), unvisited: list[Path] | None = None
) -> list[BatchInput]:
    """Expand the command-line paths into inputs, in argument order, each folder's content sorted naturally.

    Stems are assigned (``assign_stems``) so the same files always map to the same folders.
    ``exclude`` names folders never to descend into (the output folder). Without ``recursive``,
    the subfolders of folder arguments that gave inputs are added to ``unvisited`` when given,
    so the caller can say how many were left out (a folder with no inputs fails with that hint).
    """
    skip = {_resolved(p) for p in exclude}
    found: list[BatchInput] = []
    seen: set[tuple[Path, tuple[Path, ...] | None]] = set()
    for path in paths:
        path = Path(path)
        if path.is_dir():
            items = _discover_folder(path, path.name or str(path), recursive, skip, set(), top=True)
            if unvisited is not None and not recursive and not any(i.problem for i in items):
                unvisited += [p for p in _subfolders(path) if _resolved(p) not in skip]
        else:
            items = [BatchInput(path, "file", path.name or str(path))]
        for item in items:
            key = (_resolved(item.source), item.images)
            if key not in seen:  # the same file named twice is done once
                seen.add(key)
                found.append(item)
    return assign_stems(found)


def _discover_folder(
    folder: Path, label: str, recursive: bool, skip: set[Path], visited: set[Path], top: bool
) -> list[BatchInput]:
    real = _resolved(folder)
    if real in visited or real in skip:
        return []
    visited.add(real)
    try:
        entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=natural_key)
    except OSError as exc:
        return [BatchInput(folder, "images", f"{label}/", problem=f"cannot list folder ({_os_reason(exc)})")]
    files = [p for p in entries if p.is_file()]
    media = {p: sniff(p) for p in files}
    kinds = {p: _kind(m) for p, m in media.items()}
    has = {kind: any(k == kind for k in kinds.values()) for kind in ("image", "video")}
    inputs: list[BatchInput] = []
    if has["image"] and not has["video"]:
        inputs.append(BatchInput(folder, "images", f"{label}/"))  # an image folder, as before
    else:  # videos, or files that are neither: each is an input (a bad one fails with its reason)
        for path in files:
            if kinds[path] != "image":
                inputs.append(BatchInput(path, "file", f"{label}/{path.name}", media=media[path]))
        images = tuple(p for p in files if kinds[p] == "image")
        if images:
            inputs.append(BatchInput(folder, "images", f"{label}/ (images)", images))
    subfolders = [p for p in entries if p.is_dir()]
    if recursive:
        for sub in subfolders:
            inputs += _discover_folder(sub, f"{label}/{sub.name}", recursive, skip, visited, top=False)
    if top and not inputs:
        hint = ""
        if subfolders and not recursive:
            hint = f" ({plural(len(subfolders), 'subfolder')}; add --recursive to look inside)"
        inputs.append(BatchInput(folder, "images", f"{label}/", problem=f"no media files found in folder{hint}"))
    return inputs


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_key)
    except OSError:
        return []


def _resolved(path: Path) -> Path:
    try:
        return Path(path).resolve()
    except OSError:
        return Path(os.path.abspath(path))


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """Output folder name per input: the file stem (a folder's name), with -2, -3... when taken.

    Names are compared case-insensitively (``Clip.mp4`` and ``clip.mov`` would share
    a folder on macOS/Windows). The result depends only on the order of ``paths``.
    """
    used: set[str] = set()
    stems = []
    for path in paths:
        base = path.name if path.is_dir() else path.stem
        base = base or "input"
        stem, n = base, 1
        while stem.casefold() in used:
            n += 1
            stem = f"{base}-{n}"
        used.add(stem.casefold())
        stems.append(stem)
    return stems


def assign_stems(inputs: Sequence[BatchInput]) -> list[BatchInput]:
    """Give every input its output folder name, computed over the inputs sorted by path.

    Sorting first makes the mapping independent of argument order, which resume needs:
    ``fervid annotate b.mp4 a.mp4`` and ``fervid annotate a.mp4 b.mp4`` use the same folders.
    """
    order = sorted(range(len(inputs)), key=lambda i: (str(_resolved(inputs[i].source)), inputs[i].kind))
    stems = unique_stems([inputs[i].source for i in order])
    by_index = dict(zip(order, stems))
    return [_with_stem(item, by_index[i]) for i, item in enumerate(inputs)]


def _with_stem(item: BatchInput, stem: str) -> BatchInput:
    return dataclasses.replace(item, stem=stem)


# ------------------------------------------------------------------- inputs vs. options
class UsageError(ValueError):
    """The command cannot do anything useful as given (exit code 2), found before any model is loaded."""


def missing_paths(paths: Sequence[Path]) -> list[Path]:
    """The arguments that name nothing: a mistyped path is a usage error, not an input that fails."""
    return [p for p in paths if not Path(p).exists()]


def check_inputs(items: Sequence[BatchInput], options: AnnotateOptions) -> tuple[list[BatchInput], list[str]]:
    """Match the inputs with the options that depend on them, before any model is loaded.

    ``--sequence`` with no image-folder input (a video, one photo) would change nothing:
    a :class:`UsageError`; with image folders and other inputs together it applies to the
    folders, and a note says the others are read as usual. A video that ends before
    ``--start`` gets that as its problem, so it fails with
    the reason and the others run; when that is true of every input, nothing would run:
    a UsageError naming the duration. Returns the inputs (file arguments probed, once:
    the result travels with them) and the notes.
    """
    notes: list[str] = []
    o = options.input
    if o.sequence:
        folders = sum(item.kind == "images" for item in items)
        if not folders:
            what = f"{items[0].label} is not one" if len(items) == 1 else f"none of the {len(items)} inputs is one"
            raise UsageError(f"--sequence reads a folder of images as consecutive frames; {what}")
        if folders < len(items):
            others = len(items) - folders
            verb = "is" if others == 1 else "are"
            notes.append(f"--sequence applies to the {plural(folders, 'image folder')}; "
                         f"the {plural(others, 'other input')} {verb} read as usual")  # fmt: skip
    if o.start is None:
        return list(items), notes
    checked, out_of_range = [], []
    for item in items:
        if item.kind == "file" and item.problem is None:
            item = probed(item)
            if (problem := range_problem(item.media, o.start)) is not None:
                item = dataclasses.replace(item, problem=problem)
                out_of_range.append(item)
        checked.append(item)
    if checked and len(out_of_range) == len(checked):
        if len(checked) == 1:
            raise UsageError(f"{checked[0].label}: {checked[0].problem}")
        longest = max(checked, key=lambda i: i.media.duration_s if i.media and i.media.duration_s else 0.0)
        raise UsageError(f"every video ends before --start; the longest, {longest.label}: {longest.problem}")
    return checked, notes


def range_problem(media: MediaInfo | None, start: float | None) -> str | None:
    """Why a video has no frame from ``start`` on, naming its duration; None when it has some or is no video.

    Times are on the file's own timeline, as ``--start`` is: a video whose first frame is at 0.85 s
    ends 0.85 s after its duration. Only a start near or past the duration opens the file to read
    where its stream starts, so a corpus run with ``--start`` costs no extra open per video.
    """
    if start is None or media is None or media.kind != "video" or not media.duration_s:
        return None
    step = 1 / (media.fps or 25.0)  # the last frame is about one (average) frame step before the end
    if start <= media.duration_s - step:
        return None  # a stream starts at 0 or later: frames remain after start
    from fervid.io.video import VideoReader

    try:
        with VideoReader(media.path, info=media) as reader:
            first = reader.stream_start_s
    except (InputError, OSError):
        return None  # the run says what is wrong with it
    if start <= first + media.duration_s - step + 1e-6:
        return None
    length = f"{media.duration_s:.2f} s long" + (f", from {first:.2f} s" if abs(first) >= 0.005 else "")
    return f"--start {start:g} s is past the end of the video ({length})"


# ------------------------------------------------------------------------- output folder
class OutputDirError(Exception):
    """The output folder cannot take results; raised before any work starts."""


class ExecutorError(Exception):
    """An executor cannot start (no cluster to join, models that do not load there): no input was processed."""


def check_output_dir(output: Path, min_free: int = MIN_FREE_BYTES) -> None:
    """Create ``output`` and prove it is writable, with room to spare, or raise OutputDirError."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise OutputDirError(f"{output}: exists and is not a folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"{output}: cannot create the output folder ({_os_reason(exc)})") from None
    clean_partials(output)  # a killed run's probe file
    probe = output / f".fervid-write-check{PARTIAL_TAG}{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"fervid")
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputDirError(f"{output}: output folder is not writable ({_os_reason(exc)})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    free = shutil.disk_usage(output).free
    if free < min_free:
        raise OutputDirError(
            f"{output}: only {free / 2**20:.0f} MiB free on the output disk (need at least {min_free / 2**20:.0f} MiB)"
        )


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# -------------------------------------------------------------------------------- status
class Status(str, enum.Enum):
    DONE = "done"
    PARTIAL = "partial"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass
class Outcome:
    """What happened to one input; ``reason`` is one line (failure, damage, or why skipped)."""

    input: BatchInput
    status: Status
    outdir: Path
    reason: str | None = None
    notes: list[str] = field(default_factory=list)  # warnings raised while processing it
    result: InputResult | None = None
    fatal: bool = False  # the output disk is full or read-only: later inputs would fail too


@dataclass
class BatchReport:
    """All outcomes of a run, plus what never started and why the run stopped early."""

    outcomes: list[Outcome] = field(default_factory=list)
    not_started: list[BatchInput] = field(default_factory=list)
    signal: int | None = None  # the signal that stopped the run
    stopped: str | None = None  # why the run stopped before the end (disk full, ...)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in (Status.FAILED, Status.INTERRUPTED)]

    @property
    def exit_code(self) -> int:
        """130 for SIGINT, 143 for SIGTERM, 1 when an input failed or never ran, else 0."""
        if self.signal is not None:
            return 128 + self.signal
        return 1 if self.failed or self.not_started else 0


# ---------------------------------------------------------------------------- processing
class BatchRunner:
    """Runs inputs one at a time through a loaded Pipeline into ``output/<stem>/``.

    ``pipeline`` is None on a cluster's driver, which only decides what to skip and reports:
    its workers hold the models, each in a runner of its own (:mod:`fervid.cluster`). It is
    also None until the CLI knows some input needs the models (none do when all are complete),
    so ``options`` (default: the pipeline's) are what a skipped input's earlier run is compared with.
    """

    def __init__(
        self, pipeline: Pipeline | None, output: Path, overwrite: bool = False, options: AnnotateOptions | None = None
    ) -> None:
        self.pipeline = pipeline
        self.output = Path(output)
        self.overwrite = overwrite
        self._options = options

    @property
    def options(self) -> AnnotateOptions | None:
        return self._options or (self.pipeline.options if self.pipeline is not None else None)

    def probed(self, item: BatchInput) -> BatchInput:
        return probed(item)

    def expected_frames(self, item: BatchInput) -> int | None:
        """Frame count for a progress bar; None when unknown (the bar then just counts)."""
        if item.images is not None:
            return len(item.images)
        if item.media is None or self.options is None:
            return None
        o = self.options.input
        return expected_frames(item.media, o.start, o.end, o.every)

    def completed(self, item: BatchInput) -> Outcome | None:
        """A skipped Outcome when ``item`` already has complete outputs (and no --overwrite)."""
        if self.overwrite:
            return None
        from fervid import metadata

        outdir = self.output / item.stem
        if not metadata.is_complete(outdir, item.stem) or _mismatch(outdir, item) is not None:
            return None
        damage = _recorded_warning(outdir, item.stem)
        changed = self._changed_options(outdir, item.stem)
        reason = "complete (earlier run" + (", other options" if changed else "")
        reason += f"; partial: {damage})" if damage else ")"
        notes = [f"its earlier run used other options ({'; '.join(changed)}): --overwrite redoes it"] if changed else []
        return Outcome(item, Status.SKIPPED, outdir, reason, notes)

    def _changed_options(self, outdir: Path, stem: str) -> list[str]:
        """How the options recorded in ``outdir``'s run.json differ from this run's (:func:`describe_changes`)."""
        from fervid.metadata import read_run
        from fervid.options import describe_changes

        recorded = (read_run(outdir, stem) or {}).get("options")
        if not isinstance(recorded, dict) or self.options is None:
            return []
        return describe_changes(recorded, self.options)

    def process(self, item: BatchInput, progress: ProgressCallback | None = None) -> Outcome:
        """Run one input; failures become a FAILED outcome, interrupts propagate after cleanup."""
        from fervid import metadata

        outdir = self.output / item.stem
        if item.problem is not None:
            return Outcome(item, Status.FAILED, outdir, item.problem)
        if not item.source.exists():
            return Outcome(item, Status.FAILED, outdir, "no such file or folder")
        for folder in (outdir, outdir / "annotated"):
            clean_partials(folder)  # temp files of a killed earlier run
        mismatch = _mismatch(outdir, item)
        notes = [mismatch] if mismatch else []
        pipeline = self.pipeline
        assert pipeline is not None  # inputs are processed only once the models are loaded
        metadata.invalidate(outdir, item.stem)  # from here on a crash leaves it incomplete
        before = files_under(outdir)
        created = not outdir.exists()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = pipeline.run(
                    item.source, outdir, item.stem, progress=progress, images=item.images, media=item.media
                )
            except BaseException as exc:
                discard_new_files(outdir, before, created)
                if not isinstance(exc, Exception):
                    raise  # KeyboardInterrupt / Interrupted / SystemExit: the caller reports it
                fatal = isinstance(exc, OSError) and exc.errno in _FATAL_ERRNOS
                return Outcome(item, Status.FAILED, outdir, error_reason(exc), notes + _notes(caught), fatal=fatal)
        status = Status.PARTIAL if result.warning else Status.DONE
        return Outcome(item, status, outdir, result.warning, notes + _notes(caught), result)


ProgressFactory = Callable[[BatchInput, int | None], contextlib.AbstractContextManager[ProgressCallback]]


@dataclass
class BatchState:
    """Where an executor reports: the run's outcomes, plus the caller's progress bar and outcome callback."""

    report: BatchReport
    progress: ProgressFactory | None = None  # ``progress(item, total)`` yields the frame callback
    on_outcome: Callable[[Outcome], None] | None = None

    def finish(self, outcome: Outcome) -> bool:
        """Record one input's outcome; False once the batch must stop (the output disk is full or read-only)."""
        self.report.outcomes.append(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        if outcome.fatal and self.report.stopped is None:
            self.report.stopped = f"stopped: {outcome.reason}"
        return self.report.stopped is None


class Executor(Protocol):
    """How ``BatchRunner.process(item) -> Outcome`` is called on the inputs left to do: the seam between runs.

    :class:`LocalExecutor` calls it here, one input at a time; ``fervid.cluster.RayExecutor``
    calls it in Ray actors, several at a time. ``run`` hands every outcome to ``state.finish``
    as soon as it is known, starts no more inputs once that returns False, and on a
    KeyboardInterrupt stops, reports the inputs it had started (interrupted, once their
    partial outputs are removed) and re-raises. Inputs it never reported are "not started".
    """

    def run(self, runner: BatchRunner, items: Sequence[BatchInput], state: BatchState) -> None: ...


class LocalExecutor:
    """One input at a time, in order, in this process, with ``runner``'s loaded pipeline."""

    def run(self, runner: BatchRunner, items: Sequence[BatchInput], state: BatchState) -> None:
        for item in items:
            try:
                item = runner.probed(item)
                if state.progress is None:
                    outcome = runner.process(item)
                else:
                    with state.progress(item, runner.expected_frames(item)) as advance:
                        outcome = runner.process(item, advance)
            except KeyboardInterrupt as exc:
                state.finish(interrupted(item, runner.output, getattr(exc, "signum", signal.SIGINT)))
                raise
            if not state.finish(outcome):
                return


def interrupted(item: BatchInput, output: Path, signum: int) -> Outcome:
    """The outcome of an input stopped by a signal (its unfinished outputs already removed)."""
    reason = f"stopped by {_signal_name(signum)}; its unfinished outputs were removed"
    return Outcome(item, Status.INTERRUPTED, Path(output) / item.stem, reason)


def run_batch(
    runner: BatchRunner,
    inputs: Sequence[BatchInput],
    progress: ProgressFactory | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    executor: Executor | None = None,
) -> BatchReport:
    """Process every input and return the report; stops early only on a signal or a full disk.

    Inputs with complete outputs are skipped before anything is started (resume); the rest
    go to ``executor`` (default: :class:`LocalExecutor`). ``progress(item, total)`` returns a
    context manager yielding the frame callback (the CLI's progress bar); ``on_outcome`` sees
    each outcome as soon as it is known. The report lists the outcomes in input order.
    """
    state = BatchState(BatchReport(), progress, on_outcome)
    todo: list[BatchInput] = []
    try:
        for item in inputs:
            done = runner.completed(item)
            if done is None:
                todo.append(item)
            else:
                state.finish(done)
        (executor or LocalExecutor()).run(runner, todo, state)
    except KeyboardInterrupt as exc:
        state.report.signal = getattr(exc, "signum", signal.SIGINT)
    order = {_key(item): i for i, item in enumerate(inputs)}
    state.report.outcomes.sort(key=lambda o: order.get(_key(o.input), len(order)))
    reported = {_key(o.input) for o in state.report.outcomes}
    state.report.not_started = [item for item in inputs if _key(item) not in reported]
    return state.report


def _key(item: BatchInput) -> tuple[Path, tuple[Path, ...] | None, str]:
    """What identifies an input across copies of it (probed, or sent to a worker and back)."""
    return item.source, item.images, item.stem


def error_reason(exc: BaseException) -> str:
    """One line for the table: the reader's own reason, an OS error's text, or the type and message."""
    if isinstance(exc, InputError):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = one_line(exc)
    from fervid.models.expression_weights import WeightsError

    if isinstance(exc, (ValueError, WeightsError)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _notes(caught: list[warnings.WarningMessage]) -> list[str]:
    notes: list[str] = []
    for w in caught:
        text = one_line(w.message)
        if text and text not in notes:
            notes.append(text)
    return notes


def _mismatch(outdir: Path, item: BatchInput) -> str | None:
    """Why the run recorded in ``outdir`` was not of ``item`` (None: it was, or there is no record).

    The same input means the same resolved path and, for a file, the same size, so a
    replaced file, or another file whose name maps to the same folder, is redone
    rather than skipped, and the note says whose outputs get replaced.
    """
    from fervid.metadata import read_run

    record = read_run(outdir, item.stem) or {}
    facts = record.get("input")
    if not isinstance(facts, dict) or not facts.get("path"):
        return None
    if Path(str(facts["path"])) != _resolved(item.source):
        return f"replacing the outputs of another input ({facts['path']}) in {outdir}"
    if item.source.is_file() and facts.get("size_bytes") not in (None, _size(item.source)):
        return "the file changed since its outputs were written: redoing it"
    return None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _recorded_warning(outdir: Path, stem: str) -> str | None:
    """The damage note the run that wrote ``outdir`` recorded (None when its input was clean)."""
    from fervid.metadata import read_run

    record = read_run(outdir, stem) or {}
    warning = record.get("warning")
    return one_line(warning) if warning else None


def files_under(folder: Path) -> set[Path]:
    """Every file (and link) below ``folder``: taken before an attempt, so :func:`discard_new_files` knows what it
    wrote. Public because the cluster executor (fervid.cluster.executor) cleans up a failed input the same way."""
    if not folder.is_dir():
        return set()
    return {p for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def discard_new_files(outdir: Path, before: set[Path], created: bool) -> None:
    """Delete what this attempt wrote (finished files of an unfinished input are not a result)."""
    if not outdir.is_dir():
        return
    for path in files_under(outdir) - before:
        with contextlib.suppress(OSError):
            path.unlink()
    for folder in sorted((p for p in outdir.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only empty ones go
    if created:
        with contextlib.suppress(OSError):
            outdir.rmdir()


# ------------------------------------------------------------------------------- signals
class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by :func:`stop_on_signals`; ``signum`` picks the exit code (128 + n)."""

    def __init__(self, signum: int) -> None:
        super().__init__(_signal_name(signum))
        self.signum = signum


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@contextlib.contextmanager
def stop_on_signals(
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM), say: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into :class:`Interrupted` once, so cleanup code runs undisturbed.

    The first signal raises; a second one while cleaning up only says so (``say``);
    a third quits at once (the temp files left then are removed by the next run).
    Outside the main thread this does nothing (Python delivers signals there only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Interrupted(signum)
        if len(received) == 2:
            if say is not None:
                say("stopping: removing unfinished outputs (signal again to quit at once)")
            return
        os._exit(128 + received[0])

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
