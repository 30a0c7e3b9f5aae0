"""Agreement of fervid's labels with a human-coded ELAN tier (``fervid agree``): kappa, per-class scores, events.

Video researchers validate automated coding against human coders in ELAN. This module puts
one person's per-frame labels from a finished run beside one coded tier and scores them:

* **Frames.** The frames compared are the run's processed frames (a regular grid from the first to
  the last processed time, ``--every`` / fps apart; a frame with a face has that face's own time)
  inside the coded span, from the tier's first annotation's start to its last's end. A frame is coded
  with the label of the annotation holding its time in whole milliseconds, as ELAN counts them
  (``start <= ms < end``); none holds it: the coder gave no label there.
* **fervid's label** of a frame is the person's raw ``emotion`` (or with ``smoothed`` the top
  ``ps_<class>``, the label the annotated video and the ELAN export show) of a face the conclusions
  rest on (:func:`fervid.io.tables.trusted` at the run's ``--min-p-correct``). A frame where the
  person is not visible or their face is not trusted has no label.
* **Scores.** Cohen's kappa, frame agreement and per-class precision, recall and F1 are over the
  frames both label. Frames only one side labels are counted apart (``no_fervid_label``,
  ``not_coded``) and shown in the confusion matrix's ``(none)`` row and column: how often fervid
  says nothing is a finding of its own, not an error of the label.
* **Events.** An event is a run of one label: consecutive coded frames or touching annotations of
  one label, or consecutive frames fervid labels the same (a frame without a label ends a run). A
  coded event is matched when fervid starts a run of the same label within ``tolerance`` seconds of
  its onset; a fervid run that starts in the coded span is matched when a coded event of its label
  starts within ``tolerance`` of it (matches need not be one to one).
* **Labels.** Coded labels are mapped to the run's classes by :data:`SYNONYMS` (case and spaces
  ignored) and an optional user table (``label,class``; an empty class: no label). Unknown labels
  are an error that names them.

Kappa is computed from the confusion matrix (``(p_o - p_e) / (1 - p_e)``, NaN when ``p_e`` is 1:
both sides used one and the same label throughout, where kappa is undefined).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fervid.options import AgreeOptions

#: Coded labels -> fervid classes (besides each class's own name), lower case.
SYNONYMS: dict[str, str] = {
    "happiness": "happy", "joy": "happy", "joyful": "happy", "smile": "happy", "smiling": "happy",
    "sadness": "sad", "sorrow": "sad",
    "anger": "angry", "angry": "angry", "mad": "angry",
    "surprised": "surprise",
    "fearful": "fear", "afraid": "fear", "scared": "fear",
    "disgusted": "disgust",
    "contemptuous": "contempt",
    "none": "neutral", "no emotion": "neutral", "neutral": "neutral",
}  # fmt: skip
NONE = "(none)"
#: (onset in seconds, label) of each event.
Events = list[tuple[float, str]]
OVERALL = "overall"


class AgreementError(ValueError):
    """Bad input to ``fervid agree``: the message is one line naming the file and the reason."""


@dataclass
class Agreement:
    """What :func:`agree` found: the per-class table (``<stem>.agreement.csv``), the confusion matrix and the text."""

    table: pd.DataFrame
    confusion: pd.DataFrame
    kappa: float
    frame_agreement: float
    text: str
    outputs: list[Path]


@dataclass(frozen=True)
class _Run:
    folder: Path
    stem: str
    faces: pd.DataFrame
    classes: tuple[str, ...]
    run: dict[str, Any]


# --------------------------------------------------------------------------------- reading
def read_run(folder: Path) -> _Run:
    """A finished fervid input folder, or an AgreementError saying why it is not one."""
    from fervid import metadata
    from fervid.result import load

    folder = Path(folder)
    if not folder.is_dir():
        raise AgreementError(f"{folder}: no such folder (give OUT/<stem>, a folder fervid annotate wrote)")
    records = sorted(folder.glob(f"*{metadata.SUFFIX}"))
    stem = records[0].name[: -len(metadata.SUFFIX)] if len(records) == 1 else None
    if stem is None or not metadata.is_complete(folder, stem):
        raise AgreementError(f"{folder}: not a finished fervid output folder (no complete <stem>{metadata.SUFFIX})")
    loaded = load(folder, stem)
    if loaded.run.get("kind") != "video" and not (loaded.run.get("options") or {}).get("sequence"):
        raise AgreementError(f"{folder}: a run of independent photos, which have no time to compare with ELAN")
    return _Run(folder, stem, loaded.faces, tuple(loaded.classes), loaded.run)


def read_tier(path: Path, tier: str) -> list[tuple[int, int, str]]:
    """The tier's annotations as (start_ms, end_ms, value), in time order."""
    from pympi import Eaf

    path = Path(path)
    if not path.is_file():
        raise AgreementError(f"{path}: no such ELAN file")
    try:
        eaf = Eaf(str(path))
    except Exception as exc:  # pympi raises what its XML parser raises
        raise AgreementError(f"{path}: not an ELAN file ({type(exc).__name__}: {exc})") from None
    tiers = list(eaf.get_tier_names())
    if tier not in tiers:
        raise AgreementError(f"{path}: no tier {tier!r}; its tiers: {', '.join(map(repr, tiers)) or 'none'}")
    annotations = sorted((int(a[0]), int(a[1]), str(a[2])) for a in eaf.get_annotation_data_for_tier(tier))
    if not annotations:
        raise AgreementError(f"{path}: tier {tier!r} has no time-aligned annotations")
    return annotations


def read_map(path: Path) -> dict[str, str]:
    """A user's label table (CSV with columns ``label,class``): coded label (lower case) -> class ("" = no label)."""
    path = Path(path)
    if not path.is_file():
        raise AgreementError(f"{path}: no such label table")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AgreementError(f"{path}: not a CSV table ({exc})") from None
    if list(table.columns[:2]) != ["label", "class"]:
        raise AgreementError(f"{path}: the label table needs the columns label,class (found {','.join(table.columns)})")
    return {_key(label): cls.strip() for label, cls in zip(table["label"], table["class"])}


def _key(label: str) -> str:
    return " ".join(str(label).lower().split())


def label_mapping(coded: list[str], classes: tuple[str, ...], user: dict[str, str] | None = None) -> dict[str, str]:
    """Each coded label -> a class of the run ("" for no label), or an AgreementError naming those it cannot map."""
    table = {**{c: c for c in classes}, **{k: v for k, v in SYNONYMS.items() if v in classes}, **(user or {})}
    wrong = sorted({cls for cls in (user or {}).values() if cls and cls not in classes})
    if wrong:
        raise AgreementError(f"the label table maps to {', '.join(map(repr, wrong))}, not classes of the run's "
                             f"model ({', '.join(classes)})")  # fmt: skip
    mapping, unknown = {}, []
    for label in dict.fromkeys(coded):
        key = _key(label)
        if key == "":
            mapping[label] = ""  # an empty annotation: the coder gave no label
        elif key in table:
            mapping[label] = table[key]
        else:
            unknown.append(label)
    if unknown:
        raise AgreementError(f"unknown labels {', '.join(map(repr, unknown))}: map them to the run's classes "
                             f"({', '.join(classes)}) with --map labels.csv (columns label,class)")  # fmt: skip
    return mapping


# --------------------------------------------------------------------------------- frames
def subject_rows(faces: pd.DataFrame, person: str | None) -> tuple[str, np.ndarray]:
    """The chosen subject's label (``P2``) and its rows; an AgreementError when the choice is missing or wrong."""
    from fervid.report.subjects import subjects_of

    subjects = subjects_of(faces)
    if not subjects:
        raise AgreementError("the run found no faces to compare")
    names = ", ".join(s.title for s in subjects)
    if person is None:
        if len(subjects) > 1:
            raise AgreementError(f"the run has {len(subjects)} persons ({names}): say which one the tier codes with "
                                 "--person")  # fmt: skip
        chosen = subjects[0]
    else:
        wanted = str(person).strip()
        found = [s for s in subjects if wanted in (s.label, str(s.key), s.name) and wanted]
        if not found:
            raise AgreementError(f"no person {wanted!r} in the run; its persons: {names}")
        chosen = found[0]
    from fervid.report.subjects import rows_of

    return chosen.label, rows_of(faces, chosen)


def fervid_labels(faces: pd.DataFrame, rows: np.ndarray, classes: tuple[str, ...], smoothed: bool,
                  min_p_correct: float) -> np.ndarray:  # fmt: skip
    """The label of each of ``rows`` (object array; "" where the face is not trusted)."""
    from fervid.io.tables import trusted

    table = faces.iloc[rows]
    if smoothed:
        columns = [f"ps_{c}" for c in classes]
        if not all(c in table.columns for c in columns):
            raise AgreementError("--smoothed needs the ps_<class> columns: the run was made without --smooth")
        probs = table[columns].to_numpy(np.float64)
        labels = np.asarray(classes, dtype=object)[np.nan_to_num(probs, nan=-1.0).argmax(axis=1)]
        labels[np.isnan(probs).any(axis=1)] = ""
    else:
        labels = table["emotion"].to_numpy(dtype=object).copy()
    labels[~trusted(table, min_p_correct)] = ""
    return labels


def frame_grid(faces: pd.DataFrame, run: dict[str, Any]) -> tuple[np.ndarray, float]:
    """The processed frames' times (a frame with a face keeps its own time) and the step between frames.

    The faces table holds only frames with faces, so the frames between are put back on a regular
    grid from the run's first to its last processed time, ``--every`` / fps apart (the median step
    between the table's times when the run does not say).
    """
    options, facts = run.get("options") or {}, run.get("input") or {}
    times = np.unique(faces["time_s"].to_numpy(np.float64))
    times = times[np.isfinite(times)]
    fps = facts.get("fps") if run.get("kind") == "video" else options.get("fps")
    step = options.get("every", 1) / fps if fps else (float(np.median(np.diff(times))) if len(times) > 1 else 0.0)
    span = run.get("time_range_s") or ([times[0], times[-1]] if len(times) else None)
    if span is None or not all(np.isfinite(span)) or not step > 0:
        raise AgreementError("the run has no frame times to compare")
    grid = span[0] + step * np.arange(int(round((span[1] - span[0]) / step)) + 1)
    nearest, close = _nearest(times, grid, step / 2)
    return np.unique(np.where(close, times[nearest] if len(times) else grid, grid)), step


def _nearest(times: np.ndarray, points: np.ndarray, within: float) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the index of the nearest of ``times`` (sorted) and whether it is at most ``within`` away."""
    if len(times) == 0:
        return np.zeros(len(points), np.int64), np.zeros(len(points), bool)
    after = np.clip(np.searchsorted(times, points), 0, len(times) - 1)
    before = np.clip(after - 1, 0, len(times) - 1)
    nearest = np.where(np.abs(times[before] - points) < np.abs(times[after] - points), before, after)
    return nearest, np.abs(times[nearest] - points) <= within


def on_grid(grid: np.ndarray, step: float, times: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per grid frame, the label of the row at that time ("" where there is none within half a step)."""
    order = np.argsort(times, kind="stable")
    nearest, close = _nearest(times[order], grid, step / 2)
    out = np.full(len(grid), "", dtype=object)
    out[close] = labels[order][nearest[close]]
    return out


def coded_on_grid(grid_ms: np.ndarray, annotations: list[tuple[int, int, str]]) -> np.ndarray:
    """Per frame (time in ms), the label of the annotation holding it ("" where none does)."""
    out = np.full(len(grid_ms), "", dtype=object)
    for start, end, label in annotations:
        out[(grid_ms >= start) & (grid_ms < end)] = label
    return out


# --------------------------------------------------------------------------------- scores
def confusion_matrix(coded: np.ndarray, found: np.ndarray, labels: list[str]) -> np.ndarray:
    """Counts (len(labels), len(labels)): rows the coded label, columns fervid's (``labels`` may include "")."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[c] for c in coded], [index[f] for f in found]), 1)
    return matrix


def cohen_kappa(matrix: np.ndarray) -> float:
    """Cohen's kappa of a square confusion matrix: ``(p_o - p_e) / (1 - p_e)``; NaN when undefined (p_e = 1)."""
    n = matrix.sum()
    if n == 0:
        return float("nan")
    p_o = np.trace(matrix) / n
    p_e = float((matrix.sum(axis=1) * matrix.sum(axis=0)).sum()) / n**2
    return float("nan") if p_e >= 1 else float((p_o - p_e) / (1 - p_e))


def runs(times: np.ndarray, labels: np.ndarray) -> Events:
    """(onset, label) of each run of one label over consecutive frames ("" ends a run and starts none)."""
    out = []
    for i, label in enumerate(labels):
        if label and (i == 0 or labels[i - 1] != label):
            out.append((float(times[i]), str(label)))
    return out


def coded_events(annotations: list[tuple[int, int, str]], mapping: dict[str, str]) -> Events:
    """(onset s, class) of each run of one class in the tier: touching annotations of one class are one event."""
    out: Events = []
    last_end, last_label = None, None
    for start, end, value in annotations:
        label = mapping[value]
        if label and not (label == last_label and last_end is not None and start <= last_end):
            out.append((start / 1000, label))
        last_end, last_label = end, label
    return out


def _matched(events: Events, others: Events, tolerance: float) -> list[bool]:
    return [any(label == o and abs(onset - t) <= tolerance + 1e-9 for t, o in others) for onset, label in events]


def score(
    coded: np.ndarray, found: np.ndarray, coded_ev: Events, found_ev: Events, classes: tuple[str, ...],
    tolerance: float,
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:  # fmt: skip
    """The per-class table (+ the overall row), the confusion matrix and its labels ("" last)."""
    present = [c for c in classes if c in set(coded) | set(found) | {label for _, label in coded_ev}]
    labels = [*present, ""]
    matrix = confusion_matrix(coded, found, labels)
    both = matrix[:-1, :-1]
    coded_n, found_n, agree_n = both.sum(axis=1), both.sum(axis=0), np.diag(both)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = agree_n / found_n
        recall = agree_n / coded_n
        f1 = 2 * agree_n / (coded_n + found_n)
    coded_hit = _matched(coded_ev, found_ev, tolerance)
    found_hit = _matched(found_ev, coded_ev, tolerance)
    rows = []
    for i, cls in enumerate(present):
        mine = [hit for (_, label), hit in zip(coded_ev, coded_hit) if label == cls]
        theirs = [hit for (_, label), hit in zip(found_ev, found_hit) if label == cls]
        rows.append({
            "label": cls, "coded_frames": int(coded_n[i]), "fervid_frames": int(found_n[i]),
            "agreeing_frames": int(agree_n[i]), "precision": precision[i], "recall": recall[i], "f1": f1[i],
            "kappa": np.nan, "frame_agreement": np.nan, "no_fervid_label": int(matrix[i, -1]),
            "not_coded": int(matrix[-1, i]), **_events(mine, theirs),
        })  # fmt: skip
    n = int(both.sum())
    rows.append({
        "label": OVERALL, "coded_frames": n, "fervid_frames": n, "agreeing_frames": int(agree_n.sum()),
        "precision": _mean(precision), "recall": _mean(recall), "f1": _mean(f1), "kappa": cohen_kappa(both),
        "frame_agreement": agree_n.sum() / n if n else np.nan, "no_fervid_label": int(matrix[:-1, -1].sum()),
        "not_coded": int(matrix[-1, :-1].sum()), **_events(coded_hit, found_hit),
    })  # fmt: skip
    return pd.DataFrame(rows), matrix, labels


def _events(coded_hit: list[bool], found_hit: list[bool]) -> dict[str, float]:
    """The event columns from which coded events and which fervid runs were matched."""

    def share(hits: list[bool]) -> float:
        return sum(hits) / len(hits) if hits else np.nan

    return {
        "coded_events": len(coded_hit), "matched_events": sum(coded_hit), "event_recall": share(coded_hit),
        "fervid_events": len(found_hit), "matched_fervid_events": sum(found_hit), "event_precision": share(found_hit),
    }  # fmt: skip


def _mean(values: np.ndarray) -> float:
    """The macro mean over the classes where the score is defined (NaN when none is)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


# --------------------------------------------------------------------------------- the command
def agree(folder: str | Path, options: AgreeOptions, write: bool = True) -> Agreement:
    """Compare one run's labels of one person with a coded ELAN tier; with ``write``, save the results beside the
    run (``<stem>.agreement.csv``, ``<stem>.agreement.confusion.csv``, ``<stem>.agreement.txt``, and their rows
    in ``<stem>.codebook.csv``). Every input is checked before anything is written."""
    run = read_run(Path(folder))
    annotations = read_tier(Path(options.eaf or ""), options.tier or "")
    user = read_map(Path(options.map)) if options.map else None
    mapping = label_mapping([a[2] for a in annotations], run.classes, user)
    label, rows = subject_rows(run.faces, options.person)
    min_p_correct = float((run.run.get("options") or {}).get("min_p_correct", 0.0))
    labels = fervid_labels(run.faces, rows, run.classes, options.smoothed, min_p_correct)
    grid, step = frame_grid(run.faces, run.run)
    origin = _media_origin(run.run)
    grid_ms = np.round((grid - origin) * 1000).astype(np.int64)
    first, last = annotations[0][0], max(a[1] for a in annotations)
    inside = (grid_ms >= first) & (grid_ms < last)
    if not inside.any():
        raise AgreementError(f"{options.eaf}: tier {options.tier!r} spans {first / 1000:.2f}-{last / 1000:.2f} s, the "
                             f"run processed {grid[0]:.2f}-{grid[-1]:.2f} s: no frames in common")  # fmt: skip
    found_all = on_grid(grid, step, run.faces["time_s"].to_numpy(np.float64)[rows], labels)
    coded = np.array([mapping.get(v, "") for v in coded_on_grid(grid_ms[inside], annotations)], dtype=object)
    found = found_all[inside]
    coded_ev = [(t + origin, c) for t, c in coded_events(annotations, mapping)]
    start_s, end_s = first / 1000 + origin, last / 1000 + origin
    found_ev = [(t, c) for t, c in runs(grid, found_all) if first <= round((t - origin) * 1000) < last]  # as frames
    table, matrix, names = score(coded, found, coded_ev, found_ev, run.classes, options.tolerance)
    table.insert(0, "person", label)
    shown = [n or NONE for n in names]
    confusion = pd.DataFrame(matrix, index=pd.Index(shown, name="coded"), columns=shown).reset_index()
    what = "smoothed label (top ps_<class>)" if options.smoothed else "raw emotion"
    header = (f"fervid agree: {run.stem} {label}, {what} of trusted faces (p_correct >= {min_p_correct:g}) vs "
              f"{Path(options.eaf or '').name} tier {options.tier!r}")  # fmt: skip
    text = summary_text(header, table, confusion, (start_s, end_s), int(inside.sum()), step, options.tolerance)
    outputs = _write(run, table, confusion, text) if write else []
    overall = table.iloc[-1]
    return Agreement(table, confusion, float(overall["kappa"]), float(overall["frame_agreement"]), text, outputs)


def _media_origin(run: dict[str, Any]) -> float:
    """Where ELAN's 0 lies on the input's timeline (as fervid's own ELAN export puts it); 0 when the input is gone."""
    from fervid.report.elan import media_origin_s

    path = (run.get("input") or {}).get("path")
    return media_origin_s(Path(path)) if run.get("kind") == "video" and path and Path(path).is_file() else 0.0


def summary_text(header: str, table: pd.DataFrame, confusion: pd.DataFrame, span: tuple[float, float], frames: int,
                 step: float, tolerance: float) -> str:  # fmt: skip
    """The short summary (Rich tables rendered as plain text): what was compared, the figures, the matrix."""
    from rich.console import Console
    from rich.table import Table

    o = table.iloc[-1]
    console = Console(file=io.StringIO(), width=110, record=True, color_system=None, soft_wrap=True)  # lines whole
    console.print(header, highlight=False)
    console.print(
        f"frames: {frames} in the coded span {span[0]:.2f}-{span[1]:.2f} s (every {step:.3f} s); both label "
        f"{o.coded_frames}; coded, no fervid label {o.no_fervid_label}; fervid label, not coded {o.not_coded}",
        highlight=False,
    )
    console.print(
        f"Cohen's kappa {_figure(o.kappa)}, frame agreement {_figure(o.frame_agreement)}, macro F1 {_figure(o.f1)} "
        f"(over the frames both label)", highlight=False,
    )  # fmt: skip
    console.print(
        f"events (onset within ±{tolerance:g} s): {o.matched_events} of {o.coded_events} coded matched; "
        f"{o.matched_fervid_events} of {o.fervid_events} fervid runs matched", highlight=False,
    )  # fmt: skip
    scores = Table(title="per class (frames both label)")
    for column in ("label", "coded", "fervid", "agree", "precision", "recall", "F1", "events matched"):
        scores.add_column(column, justify="left" if column == "label" else "right")
    for row in table.itertuples(index=False):
        scores.add_row(row.label, str(row.coded_frames), str(row.fervid_frames), str(row.agreeing_frames),
                       _figure(row.precision), _figure(row.recall), _figure(row.f1),
                       f"{row.matched_events}/{row.coded_events}")  # fmt: skip
    console.print(scores)
    matrix = Table(title="confusion matrix (rows: coded, columns: fervid)")
    for column in confusion.columns:
        matrix.add_column(str(column), justify="left" if column == "coded" else "right")
    for row in confusion.itertuples(index=False):
        matrix.add_row(*(str(v) for v in row))
    console.print(matrix)
    return console.export_text()


def _figure(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"


def _write(run: _Run, table: pd.DataFrame, confusion: pd.DataFrame, text: str) -> list[Path]:
    from fervid.io.atomic import atomic_path
    from fervid.io.codebook import add_to_codebook, codebook_path
    from fervid.io.tables import write_table

    written = [run.folder / f"{run.stem}.agreement.csv", run.folder / f"{run.stem}.agreement.confusion.csv"]
    write_table(table, written[0])
    write_table(confusion, written[1])
    path = run.folder / f"{run.stem}.agreement.txt"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    written.append(path)
    book = codebook_path(run.folder, run.stem)
    add_to_codebook(book, "agreement", list(table.columns))
    add_to_codebook(book, "agreement.confusion", list(confusion.columns))
    return [*written, book]
