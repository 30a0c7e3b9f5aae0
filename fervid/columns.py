"""Per-face columns beyond the box and the probabilities: each defined once, with its type, unit and meaning.

Column names are a research contract: researchers script against them. A per-face value a
stage adds (``Detections.data``) becomes a faces-table column of the same name; this module
says which ones exist, in which order they are written, and what they mean, so the tables,
the docs (``docs/outputs.md``, checked by a test) and the code cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column: name, dtype (numpy), unit ("" for none) and a definition a reader can use."""

    name: str
    dtype: str
    unit: str
    definition: str


#: The faces table's per-face measurements and reliability columns, in the order they are written
#: (after the ``p_<class>`` columns).
FACE_COLUMNS: tuple[Column, ...] = (
    Column("readable", "bool", "", "the face is inside every limit where the model still reads faces "
           "(size, sharpness, light, head turn; fitted per model by benchmarks/readability.py)"),
    Column("p_correct", "float32", "probability", "estimated probability that `emotion` (the top label) is right, "
           "from the model's output and the measurements (scripts/fit_reliability.py)"),
    Column("face_px", "float32", "px", "eye distance in the source frame's pixels"),
    Column("sharpness", "float32", "grey levels²", "variance of the Laplacian of the model's grey crop "
           "(the square the model reads, before its normalisation)"),
    Column("brightness", "float32", "grey level 0-255", "mean grey level of the model's crop"),
    Column("contrast", "float32", "grey level 0-255", "standard deviation of the grey levels of the model's crop"),
    Column("yaw", "float32", "degrees", "head turn about the image's vertical axis; positive: the nose points to the "
           "image's right (the person turns to their left); by `pose_source` (docs/behaviour-measures.md), "
           "five-point with --no-behaviour (`readable` and `p_correct` always read the five-point value)"),
    Column("roll", "float32", "degrees", "head tilt about the face's front axis; positive: the eye line runs down to "
           "the right on the image; source as `yaw`'s"),
    Column("pitch", "float32", "degrees", "head nod; positive: the face looks up (the nose points to the top of the "
           "image); 68-point pose only, else empty"),
    Column("pose_source", "object", "", "where `yaw`, `pitch` and `roll` come from: `68` (solvePnP on the 68 "
           "landmarks; yaw the mean of its and the five-point yaw), `5` (turned too far for the 68-point fit: yaw "
           "from the five landmarks and the nose's place in the box, five-point roll, no pitch), `none` (no angle); "
           "absent with --no-behaviour"),
    Column("eye_open_l", "float32", "ratio", "eye aspect ratio (Soukupová & Čech 2016) of the eye on the image's "
           "left (the person's right eye): about 0.3 open, under 0.15 closed; empty unless `pose_source` is `68`"),
    Column("eye_open_r", "float32", "ratio", "the same for the eye on the image's right (the person's left eye)"),
    Column("mouth_open", "float32", "ratio", "mean gap between the inner lips over the distance between the eyes' "
           "centres: 0 closed, 0.5 and more wide open; empty unless `pose_source` is `68`"),
    Column("valence", "float32", "-1..1", "p(happy) minus the largest of p(angry), p(disgust), p(fear), p(sad) "
           "(FaceReader's definition)"),
    Column("valence_s", "float32", "-1..1", "`valence` of the smoothed probabilities (the `ps_` columns; --smooth "
           "only), empty where they are"),
)  # fmt: skip
FACE_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in FACE_COLUMNS)
BY_NAME: dict[str, Column] = {c.name: c for c in FACE_COLUMNS}


def ordered(names: set[str] | list[str] | tuple[str, ...]) -> list[str]:
    """``names`` in the faces table's order: the defined columns first, in their order, any others sorted."""
    known = [n for n in FACE_COLUMN_NAMES if n in names]
    return known + sorted(n for n in names if n not in BY_NAME)


def column_table_markdown() -> str:
    """The docs' table of the per-face columns (docs/outputs.md holds it verbatim; a test checks it)."""
    lines = ["| column | type | unit | what it is |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.unit or '–'} | {c.definition} |" for c in FACE_COLUMNS]
    return "\n".join(lines)
