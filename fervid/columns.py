"""Every column of every table fervid writes, defined once: name, type, unit, meaning and where it comes from.

Column names are a research contract: researchers script against them. This module is the one
place they are defined, and everything else follows from it:

* the order of the tables' columns (:mod:`fervid.io.tables`);
* ``<stem>.codebook.csv``, written with every run (:class:`fervid.sinks.CodebookSink`): one row
  per column of each table the run wrote, with the definition given here;
* the column tables of ``docs/outputs.md`` (a test checks that the docs hold :func:`table_markdown`
  of every table verbatim, and that every column a real run writes has an entry here).

A per-face value a stage adds (``Detections.data``) becomes a faces-table column of the same
name; :data:`FACE_COLUMNS` lists those. Per-class columns are patterns (``p_<class>``): one
entry, expanded for the run's model's classes. A column that is only there under a condition
(``--smooth``, identity, image inputs) says so in ``condition``.

Adding a column is one line: a :class:`Column` in its table's tuple (in the order written).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

#: The placeholder of a per-class column's name and definition.
CLASS = "<class>"


@dataclass(frozen=True)
class Column:
    """One column: name (``p_<class>`` for one per class), dtype (numpy, or ``text``), unit ("" for none), a
    definition a reader can use, the stage, model or file that computes it, and when it is there ("": always)."""

    name: str
    dtype: str
    unit: str
    definition: str
    source: str = ""
    condition: str = ""

    @property
    def per_class(self) -> bool:
        return CLASS in self.name

    def for_class(self, cls: str) -> Column:
        """This per-class column spelled out for one class."""
        return replace(self, name=self.name.replace(CLASS, cls), definition=self.definition.replace(CLASS, cls))

    def matches(self, name: str) -> str | None:
        """The class a per-class column's ``name`` is for ("" for the column itself), else None."""
        if not self.per_class:
            return "" if name == self.name else None
        head, tail = self.name.split(CLASS)
        found = re.fullmatch(re.escape(head) + "(.+)" + re.escape(tail), name)
        return found.group(1) if found else None


CLASSIFIER = "expression model (fervid.classify; run.json: models.expression)"
MEASURED = "fervid.quality, from the model's crop and the landmarks (fervid.classify)"
RELIABILITY = "the model's reliability file <model>.reliability.json (fervid.reliability)"
DETECTOR = "face detector, RetinaFace (fervid.detect; run.json: models.detector)"
TRUSTED = "over the trusted faces only: readable, p_correct >= --min-p-correct (fervid.io.tables.trusted)"
WITH_RELIABILITY = "the model has a reliability file (the shipped ones do)"
IDENTITY = "identity on (not --no-identity)"
PEOPLE = "--people given"
IMAGES = "image inputs (a folder of images or a photo)"
BEHAVIOUR = "68 landmarks and head pose (fervid.behaviour; run.json: models.landmarks)"
WITH_BEHAVIOUR = "behaviour on (not --no-behaviour)"
TRACKED = "videos and --sequence folders"

#: The faces table's per-face measurements and reliability columns, in the order they are written
#: (after the ``p_<class>`` columns).
FACE_COLUMNS: tuple[Column, ...] = (
    Column("readable", "bool", "", "the face is inside every limit where the model still reads faces "
           "(size, sharpness, light, head turn; fitted per model by benchmarks/readability.py)", RELIABILITY,
           WITH_RELIABILITY),
    Column("p_correct", "float32", "probability", "estimated probability that `emotion` (the top label) is right, "
           "from the model's output and the measurements (scripts/fit_reliability.py)", RELIABILITY,
           WITH_RELIABILITY),
    Column("face_px", "float32", "px", "eye distance in the source frame's pixels", MEASURED),
    Column("sharpness", "float32", "grey levels²", "variance of the Laplacian of the model's grey crop "
           "(the square the model reads, before its normalisation)", MEASURED),
    Column("brightness", "float32", "grey level 0-255", "mean grey level of the model's crop", MEASURED),
    Column("contrast", "float32", "grey level 0-255", "standard deviation of the grey levels of the model's crop",
           MEASURED),
    Column("yaw", "float32", "degrees", "head turn about the image's vertical axis; positive: the nose points to the "
           "image's right (the person turns to their left); by `pose_source` (docs/behaviour-measures.md), "
           "five-point with --no-behaviour (`readable` and `p_correct` always read the five-point value)",
           f"{BEHAVIOUR}; {MEASURED} with --no-behaviour"),
    Column("roll", "float32", "degrees", "head tilt about the face's front axis; positive: the eye line runs down to "
           "the right on the image; source as `yaw`'s, empty for a face turned too far (`pose_source` `5`)",
           f"{BEHAVIOUR}; {MEASURED} with --no-behaviour"),
    Column("pitch", "float32", "degrees", "head nod; positive: the face looks up (the nose points to the top of the "
           "image); 68-point pose only, else empty; rough (about +10° bias)", BEHAVIOUR, WITH_BEHAVIOUR),
    Column("pose_source", "text", "", "where `yaw`, `pitch` and `roll` come from: `68` (solvePnP on the 68 "
           "landmarks, kept because the face is not turned far and the fit is sound; yaw the mean of its and the "
           "five-point yaw); `5` (yaw from the five landmarks and the nose's place in the box, no pitch) in two "
           "cases: the face is turned too far for the fit (five-point yaw beyond ±45° or the nose tip over 0.4 of the "
           "box's width from its centre; no roll, as the detector guesses the hidden eye), or the fit was rejected "
           "(solvePnP failed or put the face behind the camera, read a yaw beyond ±60°, or missed by over 0.2 of the "
           "face's size; five-point roll), so an empty `roll` tells the first case; `none` (no angle at all: the "
           "five landmarks or the box are not finite numbers or the box has no width, which fervid's detector does "
           "not produce)",
           BEHAVIOUR, WITH_BEHAVIOUR),
    Column("eye_open_l", "float32", "ratio", "eye aspect ratio (Soukupová & Čech 2016) of the eye on the image's "
           "left (the person's right eye): about 0.3 open, under 0.15 closed; empty unless `pose_source` is `68`",
           BEHAVIOUR, WITH_BEHAVIOUR),
    Column("eye_open_r", "float32", "ratio", "the same for the eye on the image's right (the person's left eye)",
           BEHAVIOUR, WITH_BEHAVIOUR),
    Column("mouth_open", "float32", "ratio", "mean gap between the inner lips over the distance between the eyes' "
           "centres: 0 closed, 0.5 and more wide open; empty unless `pose_source` is `68`", BEHAVIOUR,
           WITH_BEHAVIOUR),
    Column("valence", "float32", "-1..1", "p(happy) minus the largest of p(angry), p(disgust), p(fear), p(sad) "
           "(FaceReader's definition)", "fervid.behaviour.valence", WITH_BEHAVIOUR),
)  # fmt: skip
FACE_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in FACE_COLUMNS)
BY_NAME: dict[str, Column] = {c.name: c for c in FACE_COLUMNS}

_POINTS = ("left eye", "right eye", "nose", "left mouth corner", "right mouth corner")
_LANDMARKS = tuple(
    Column(f"lm{i}_{axis}", "float32", "px", f"{axis} of landmark {i}, the {point} as seen in the image, in the "
           "source frame's pixels", DETECTOR)
    for i, point in enumerate(_POINTS, 1) for axis in ("x", "y")
)  # fmt: skip

FACES: tuple[Column, ...] = (
    Column("frame", "int64", "", "index of the decoded frame, counting from 0 (with --every, every Nth is read)",
           "decoder (fervid.io.video, PyAV)"),
    Column("file", "text", "", "the image the face is in", "input folder (fervid.io.images)", IMAGES),
    Column("time_s", "float64", "s", "the frame's presentation time on the input file's own timeline (pts × time "
           "base, as ffprobe's pts_time); empty for independent photos", "decoder (fervid.io.video, PyAV)"),
    Column("face_id", "int64", "", "face track number: one face followed over time (for independent photos, one "
           "face)", "tracker (fervid.track, --tracker)"),
    Column("person_id", "int64", "", "person number: the face tracks of one person, by face descriptor (0: not "
           "grouped)", "identity stage (fervid.identity)", IDENTITY),
    Column("person", "text", "", "the name of the --people photo the person matches; empty when none matches",
           "identity stage (fervid.identity.people)", PEOPLE),
    Column("x1", "float32", "px", "left edge of the face box in the source frame", DETECTOR),
    Column("y1", "float32", "px", "top edge of the face box", DETECTOR),
    Column("x2", "float32", "px", "right edge of the face box", DETECTOR),
    Column("y2", "float32", "px", "bottom edge of the face box", DETECTOR),
    Column("det_score", "float32", "score 0-1", "the detector's face score", DETECTOR),
    *_LANDMARKS,
    Column("emotion", "text", "", "the top class of the raw probabilities (never smoothed)", CLASSIFIER),
    Column("confidence", "float32", "probability", "the top raw probability (that of `emotion`)", CLASSIFIER),
    Column(f"p_{CLASS}", "float32", "probability", f"raw probability of {CLASS} in this frame (calibrated; the "
           "classes sum to 1)", CLASSIFIER),
    *FACE_COLUMNS,
    Column(f"ps_{CLASS}", "float32", "probability", f"probability of {CLASS} smoothed over time within the face "
           "track (the --smooth window and --smooth-mode); empty for an untrusted face", "fervid.smooth",
           "--smooth > 0 (videos and --sequence folders)"),
    Column("valence_s", "float32", "-1..1", "`valence` of the smoothed probabilities (the `ps_` columns), empty "
           "where they are", "fervid.behaviour.valence", f"{WITH_BEHAVIOUR}, --smooth > 0"),
)  # fmt: skip

_SUBJECT_STATS: tuple[Column, ...] = (
    Column("first_time_s", "float64", "s", "time_s of the first face", "fervid.io.tables.summarize_tracks"),
    Column("last_time_s", "float64", "s", "time_s of the last face", "fervid.io.tables.summarize_tracks"),
    Column("frames", "int64", "frames", "faces in the faces table (processed frames it is seen in), every face",
           "fervid.io.tables.summarize_tracks"),
    Column("visible_s", "float64", "s", "time on screen: each processed frame it is in lasts until the next "
           "processed frame (empty for photos)", "fervid.io.tables.visible_seconds"),
    Column("readable_frames", "int64", "frames", "faces the conclusions rest on (trusted: readable, p_correct >= "
           "--min-p-correct)", "fervid.io.tables.trusted"),
    Column("readable_share", "float64", "share 0-1", "readable_frames / frames", "fervid.io.tables.summarize_tracks"),
    Column("dominant_emotion", "text", "", "the label most often on top (ties: higher mean probability), "
           f"{TRUSTED}; empty when never readable", "fervid.io.tables.summarize_tracks"),
    Column(f"mean_p_{CLASS}", "float64", "probability", f"mean raw probability of {CLASS}, {TRUSTED}",
           "fervid.io.tables.summarize_tracks"),
    Column(f"share_{CLASS}", "float64", "share 0-1", f"share of faces whose top label is {CLASS}, {TRUSTED}",
           "fervid.io.tables.summarize_tracks"),
)  # fmt: skip

_BEHAVIOUR_STATS: tuple[Column, ...] = (
    Column("blinks_per_min", "float64", "blinks/min", "blinks (the blinks table) per minute of visible_s",
           "fervid.behaviour.summary", f"{WITH_BEHAVIOUR}; empty for photos"),
    Column("mean_valence", "float64", "-1..1", f"mean valence, {TRUSTED}", "fervid.behaviour.summary",
           WITH_BEHAVIOUR),
)  # fmt: skip

SUMMARY: tuple[Column, ...] = (
    Column("face_id", "int64", "", "face track number (as in the faces table)", "tracker (fervid.track)"),
    Column("person_id", "int64", "", "the track's person (as in the faces table)", "identity stage (fervid.identity)",
           IDENTITY),
    Column("file", "text", "", "the image of the track's first face", "input folder (fervid.io.images)", IMAGES),
    *_SUBJECT_STATS,
    *_BEHAVIOUR_STATS,
)  # fmt: skip

PERSONS: tuple[Column, ...] = (
    Column("person_id", "int64", "", "person number (as in the faces table)", "identity stage (fervid.identity)"),
    Column("person", "text", "", "the --people name; empty when none matches", "identity stage", PEOPLE),
    Column("face_ids", "text", "", "the person's face tracks, space-separated", "identity stage (fervid.identity)"),
    Column("files", "text", "", "the file of each of face_ids, in order, joined by ' | '",
           "fervid.io.tables.summarize_persons", IMAGES),
    *_SUBJECT_STATS,
    *_BEHAVIOUR_STATS,
)  # fmt: skip

_BLINKS = "fervid.behaviour.blinks"
_BLINKS_WHEN = f"{WITH_BEHAVIOUR}, {TRACKED}"
BLINKS: tuple[Column, ...] = (
    Column("face_id", "int64", "", "the face track that blinked (as in the faces table)", _BLINKS, _BLINKS_WHEN),
    Column("person_id", "int64", "", "its person (as in the faces table; -1 with --no-identity)", _BLINKS,
           _BLINKS_WHEN),
    Column("start_s", "float64", "s", "time of the first closed frame", _BLINKS, _BLINKS_WHEN),
    Column("end_s", "float64", "s", "time of the first frame open again", _BLINKS, _BLINKS_WHEN),
    Column("duration_s", "float64", "s", "end_s - start_s", _BLINKS, _BLINKS_WHEN),
)  # fmt: skip

LANDMARKS68: tuple[Column, ...] = (
    Column("frame", "int64", "", "as in the faces table", "fervid.behaviour.outputs", "--landmarks"),
    Column("file", "text", "", "as in the faces table", "fervid.behaviour.outputs", f"--landmarks, {IMAGES}"),
    Column("time_s", "float64", "s", "as in the faces table", "fervid.behaviour.outputs", "--landmarks"),
    Column("face_id", "int64", "", "as in the faces table (join on frame and face_id)", "fervid.behaviour.outputs",
           "--landmarks"),
    *(Column(f"pt{i}_{axis}", "float32", "px", f"{axis} of dlib's 68-point landmark {i} (0-based) in the source "
             "frame's pixels", BEHAVIOUR, "--landmarks") for i in range(68) for axis in ("x", "y")),
)  # fmt: skip

_MOMENTS = "fervid.report.moments"
MOMENTS: tuple[Column, ...] = (
    Column("person_id", "int64", "", "the person (as in the faces table)", "identity stage (fervid.identity)",
           IDENTITY),
    Column("person", "text", "", "the --people name; empty when none matches", "identity stage", PEOPLE),
    Column("emotion", "text", "", "the class of the moment (never neutral)", _MOMENTS),
    Column("time_s", "float64", "s", "time of the peak, on the file's timeline", _MOMENTS),
    Column("frame", "int64", "", "frame of the peak (as in the faces table)", _MOMENTS),
    Column("file", "text", "", "the image of the peak", _MOMENTS, "--sequence folders"),
    Column("face_id", "int64", "", "the face track the peak was seen in (without identity: the subject)", _MOMENTS),
    Column("p_smoothed", "float64", "probability", "the peak smoothed probability of `emotion` (at least "
           "--moment-threshold)", _MOMENTS),
    Column("smooth_s", "float64", "s", "the smoothing window (--smooth, or the report's 0.5 s when it is off)",
           _MOMENTS),
    Column("smooth_mode", "text", "", "the smoothing mode: centred or causal", _MOMENTS),
    Column("image", "text", "", "the thumbnail of the face at the peak, relative to the folder", _MOMENTS),
)  # fmt: skip

_EVENTS = "fervid.events.event_table (--events)"
EVENTS: tuple[Column, ...] = (
    Column("event", "text", "", "the event's (trial's, stimulus's) name, as in the --events file", _EVENTS),
    Column("onset_s", "float64", "s", "the window's start on the file's timeline (a frame counts when onset_s <= "
           "time_s < offset_s)", _EVENTS),
    Column("offset_s", "float64", "s", "the window's end", _EVENTS),
    Column("person_id", "int64", "", "the person (as in the faces table)", "identity stage (fervid.identity)",
           IDENTITY),
    Column("face_id", "int64", "", "the face track, one row per track", "tracker (fervid.track)", "--no-identity"),
    Column("person", "text", "", "the --people name; empty when none matches", "identity stage", PEOPLE),
    *(replace(c, definition=f"{c.definition}, within the window", source=_EVENTS)
      for c in _SUBJECT_STATS if c.name not in ("first_time_s", "last_time_s")),
    Column("mean_valence", "float64", "-1..1", f"mean valence, {TRUSTED}, within the window", _EVENTS,
           "the faces table has valence (not --no-behaviour)"),
    Column("mean_yaw", "float64", "degrees", "mean yaw over every face in the window with a value (a turned head "
           "is what makes a face unreadable: only readable faces would bias it to frontal)", _EVENTS,
           "the faces table has yaw"),
    Column("mean_pitch", "float64", "degrees", "mean pitch over every face in the window with a value", _EVENTS,
           "the faces table has pitch (not --no-behaviour)"),
    Column("mean_roll", "float64", "degrees", "mean roll over every face in the window with a value", _EVENTS,
           "the faces table has roll"),
    Column("blinks_per_min", "float64", "blinks/min", "blinks starting in the window per minute of visible_s",
           _EVENTS, "a blinks table was written (not --no-behaviour; videos and --sequence folders)"),
)  # fmt: skip

_AGREE = "fervid agree (fervid.agreement)"
_BOTH = "over the frames both label"
AGREEMENT: tuple[Column, ...] = (
    Column("person", "text", "", "the person compared (P2; F3 without identity)", _AGREE),
    Column("label", "text", "", "a class of the run's model, or `overall` (the last row)", _AGREE),
    Column("coded_frames", "int64", "frames", f"frames the coder gave this label, {_BOTH} (overall: frames both "
           "label)", _AGREE),
    Column("fervid_frames", "int64", "frames", f"frames fervid gives this label, {_BOTH} (overall: frames both "
           "label)", _AGREE),
    Column("agreeing_frames", "int64", "frames", "frames where both give this label (overall: where both agree)",
           _AGREE),
    Column("precision", "float64", "share 0-1", "agreeing_frames / fervid_frames; empty when fervid never gives "
           "the label (overall: the mean over the classes where it is defined)", _AGREE),
    Column("recall", "float64", "share 0-1", "agreeing_frames / coded_frames; empty when the coder never gives "
           "the label (overall: the mean over the classes)", _AGREE),
    Column("f1", "float64", "share 0-1", "2 agreeing_frames / (coded_frames + fervid_frames) (overall: the mean "
           "over the classes)", _AGREE),
    Column("kappa", "float64", "", f"Cohen's kappa, {_BOTH}; empty when undefined (one label throughout) and in the "
           "class rows", _AGREE),
    Column("frame_agreement", "float64", "share 0-1", "agreeing_frames / frames both label (overall row only)",
           _AGREE),
    Column("no_fervid_label", "int64", "frames", "frames coded with this label where fervid gives none (the person "
           "not visible, or the face not trusted)", _AGREE),
    Column("not_coded", "int64", "frames", "frames fervid gives this label inside the coded span where the coder "
           "gives none", _AGREE),
    Column("coded_events", "int64", "events", "runs of this label in the coded tier", _AGREE),
    Column("matched_events", "int64", "events", "of them, those fervid starts a run of the same label within "
           "--tolerance seconds of", _AGREE),
    Column("event_recall", "float64", "share 0-1", "matched_events / coded_events", _AGREE),
    Column("fervid_events", "int64", "events", "runs of this label fervid starts inside the coded span", _AGREE),
    Column("matched_fervid_events", "int64", "events", "of them, those a coded event of the same label starts "
           "within --tolerance seconds of", _AGREE),
    Column("event_precision", "float64", "share 0-1", "matched_fervid_events / fervid_events", _AGREE),
)  # fmt: skip
AGREEMENT_CONFUSION: tuple[Column, ...] = (
    Column("coded", "text", "", "the coder's label (a row of the matrix); `(none)`: the coder gave none", _AGREE),
    Column(CLASS, "int64", "frames", f"frames coded with the row's label that fervid labels {CLASS} (`(none)`: "
           "fervid gives no label)", _AGREE),
)  # fmt: skip

_CORPUS = "fervid summarize (fervid.api.summarize, fervid.corpus)"
_INPUT: tuple[Column, ...] = (
    Column("input", "text", "", "the input's output folder name (OUT/<input>/)", _CORPUS),
    Column("source", "text", "", "the input's path, as run.json records it", _CORPUS),
    Column("model", "text", "", "the expression model the input was run with", _CORPUS),
)
_KEYS_NO_IDENTITY = "inputs run with --no-identity (one row per face track; person_id empty)"
CORPUS_PERSONS: tuple[Column, ...] = (
    *_INPUT,
    Column("person_id", "Int64", "", "the person (as in the input's faces table); empty for an input run with "
           "--no-identity", "identity stage (fervid.identity)"),
    Column("person", "text", "", "the --people name; empty when none matches", "identity stage",
           "some input was run with --people"),
    Column("face_ids", "text", "", "the person's face tracks, space-separated (the track, without identity)",
           _CORPUS),
    Column("file", "text", "", "the image of the track's first face", "input folder (fervid.io.images)",
           "some input is a folder of images"),
    Column("files", "text", "", "the file of each of face_ids, in order, joined by ' | '",
           "fervid.io.tables.summarize_persons", "some input is a folder of images"),
    Column("duration_s", "float64", "s", "last_time_s - first_time_s", _CORPUS),
    *_SUBJECT_STATS,
    *_BEHAVIOUR_STATS,
)  # fmt: skip
CORPUS_EVENTS: tuple[Column, ...] = (*_INPUT, *EVENTS)
CORPUS_LONG: tuple[Column, ...] = (
    Column("input", "text", "", "the input's output folder name", _CORPUS),
    Column("person_id", "Int64", "", "the person; empty for an input run with --no-identity", _CORPUS),
    Column("person", "text", "", "the --people name", _CORPUS, "the wide table has it"),
    Column("face_ids", "text", "", "the person's face tracks, space-separated", _CORPUS, "the persons table"),
    Column("face_id", "int64", "", "the face track (one row per track)", _CORPUS, _KEYS_NO_IDENTITY),
    Column("event", "text", "", "the event's name", _CORPUS, "the events table"),
    Column("onset_s", "float64", "s", "the event window's start", _CORPUS, "the events table"),
    Column("offset_s", "float64", "s", "the event window's end", _CORPUS, "the events table"),
    Column("measure", "text", "", "the wide table's column this value comes from (its meaning is that "
           "column's, above)", _CORPUS),
    Column("value", "float64", "", "the measure's value (unit: the measure's)", _CORPUS),
)  # fmt: skip

#: Every table, by the name in its file (``<stem>.<table>.csv``), with its columns in the order written.
TABLES: dict[str, tuple[Column, ...]] = {
    "faces": FACES,
    "summary": SUMMARY,
    "persons": PERSONS,
    "moments": MOMENTS,
    "events": EVENTS,
    "agreement": AGREEMENT,
    "agreement.confusion": AGREEMENT_CONFUSION,
    "blinks": BLINKS,
    "landmarks": LANDMARKS68,
    "corpus.summary": CORPUS_PERSONS,
    "corpus.persons": CORPUS_PERSONS,
    "corpus.events": CORPUS_EVENTS,
    "corpus.persons.long": CORPUS_LONG,
    "corpus.events.long": CORPUS_LONG,
}
#: Tables a run writes (the others are written by other commands: ``fervid agree``).
RUN_TABLES: tuple[str, ...] = ("faces", "summary", "persons", "moments", "events", "blinks", "landmarks")
#: What the codebook says of a column the definitions lack (a test keeps this from happening).
UNDEFINED = "(not defined in fervid.columns)"
CODEBOOK_HEADER: tuple[str, ...] = ("table", "column", "type", "unit", "definition", "source")


def lookup(table: str, name: str) -> Column | None:
    """The definition of one column of a table (a per-class column spelled out for its class), else None."""
    exact = [c for c in TABLES.get(table, ()) if not c.per_class and c.name == name]
    if exact:
        return exact[0]
    for column in TABLES.get(table, ()):
        cls = column.matches(name)
        if cls:
            return column.for_class(cls)
    return None


def expand(table: str, classes: Sequence[str]) -> list[Column]:
    """A table's columns in the order written, per-class ones spelled out for ``classes``."""
    out: list[Column] = []
    for column in TABLES[table]:
        out += [column.for_class(c) for c in classes] if column.per_class else [column]
    return out


def ordered(names: set[str] | list[str] | tuple[str, ...], table: str = "faces") -> list[str]:
    """``names`` in a table's order: the defined columns first, in their order, any others sorted."""
    position = {c.name: i for i, c in enumerate(TABLES[table])}
    known = [n for n in names if n in position]
    return sorted(known, key=position.__getitem__) + sorted(n for n in names if n not in position)


def present(table: str, classes: Sequence[str], without: Iterable[str] = (), data: Iterable[str] = ()) -> list[str]:
    """The names of a table's columns in the order written, per-class ones for ``classes``.

    ``without``: definitions (by name, ``ps_<class>`` for a per-class one) the table lacks here,
    such as conditional columns whose condition does not hold. The per-face values of
    :data:`FACE_COLUMNS` are there only when named in ``data`` (what the classifier measured); a
    ``data`` name without a definition follows them, sorted.
    """
    skip, data = set(without), list(data)
    names = []
    for column in TABLES[table]:
        if column.name in skip or (column.name in BY_NAME and column.name not in data):
            continue
        names += [column.for_class(c).name for c in classes] if column.per_class else [column.name]
    known = {c.name for c in TABLES[table]}
    unknown = sorted(n for n in data if n not in known)
    if not unknown:
        return names
    after = max((i for i, n in enumerate(names) if n in BY_NAME or n.startswith("p_")), default=len(names) - 1)
    return [*names[: after + 1], *unknown, *names[after + 1 :]]


def codebook_rows(tables: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """The codebook of written tables (table -> its columns, as written): one row per column, defined here."""
    rows = []
    for table, names in tables.items():
        for name in names:
            column = lookup(table, name) or Column(name, "", "", UNDEFINED)
            rows.append(dict(zip(CODEBOOK_HEADER, (table, name, column.dtype, column.unit, column.definition,
                                                   column.source))))  # fmt: skip
    return rows


def table_markdown(table: str) -> str:
    """The docs' table of one table's columns (docs/outputs.md holds each verbatim; a test checks them)."""
    lines = ["| column | type | unit | what it is | computed by | there when |", "|---|---|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.unit or '–'} | {c.definition} | {c.source} | {c.condition or 'always'} |"
              for c in TABLES[table]]  # fmt: skip
    return "\n".join(lines)


def column_table_markdown() -> str:
    """The docs' table of the per-face measurement columns (docs/outputs.md holds it verbatim; a test checks it)."""
    lines = ["| column | type | unit | what it is |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.unit or '–'} | {c.definition} |" for c in FACE_COLUMNS]
    return "\n".join(lines)


def docs_markdown() -> str:
    """Every table's column table, under its heading, as docs/outputs.md's Codebook section holds them."""
    return "\n\n".join(f"#### `{table}`\n\n{table_markdown(table)}" for table in TABLES)


if __name__ == "__main__":  # python -m fervid.columns: the docs' tables, to paste into docs/outputs.md
    print(docs_markdown())
