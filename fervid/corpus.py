"""Study-level tables over a ``fervid annotate -o`` folder: every input's persons and events, wide and long.

``fervid summarize`` writes them (:func:`corpus_tables`), so a study's analysis starts from one
file instead of a loop over output folders:

* ``persons``: one row per input and person (:func:`fervid.api.summarize`; names from ``--people``);
* ``events``: every input's ``<stem>.events`` rows (``--events``), the input's facts first;
* each also in tidy long form (:func:`long_form`): the key columns, then ``measure, value``,
  one row per number, which R's ``lme4`` and pandas' ``groupby``/``pivot_table`` take as they are.

Only complete inputs count (``fervid.metadata.is_complete``), as for the corpus summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fervid import metadata

#: The key columns of the long tables, in order, where the wide table has them. A face track's id is a key
#: only for inputs run without identity (``person_id`` missing).
LONG_KEYS = ("input", "person_id", "person", "face_ids", "face_id", "event", "onset_s", "offset_s")
#: Columns of the wide tables that describe a row rather than measure it: not in the long tables.
NOT_MEASURES = frozenset({"source", "model", "first_time_s", "last_time_s", "files", "file", "dominant_emotion"})
#: The events table's first columns, in order; each input's other columns follow.
EVENTS_HEAD = ("input", "source", "model", "event", "onset_s", "offset_s", "person_id", "person", "face_id")


def corpus_events(outdir: str | Path) -> pd.DataFrame:
    """Every complete input's event rows (``<stem>.events``), with ``input``, ``source`` and ``model`` first.

    Inputs run without ``--events`` have no rows; an empty table (no columns) when none has events.
    Inputs run without identity have ``face_id`` and a missing (``<NA>``) ``person_id``.
    """
    from fervid.api import corpus_columns
    from fervid.io.table_reader import find_table, read_table

    outdir = Path(outdir)
    parts = []
    for folder, stem in metadata.run_records(outdir):
        if not metadata.is_complete(folder, stem):
            continue  # fervid.api.summarize has warned
        run = metadata.read_run(folder, stem) or {}
        if "events" not in run:
            continue
        table = read_table(find_table(folder, stem, "events"))
        facts = {"input": stem if folder == outdir else folder.name, "source": run.get("input", {}).get("path", ""),
                 "model": run.get("options", {}).get("model", "")}  # fmt: skip
        rows = pd.DataFrame(facts, index=table.index)
        if "person_id" not in table:
            rows["person_id"] = pd.Series(pd.NA, index=table.index, dtype="Int64")
        parts.append(pd.concat([rows, table], axis=1))
    if not parts:
        return pd.DataFrame()
    columns = corpus_columns(parts, EVENTS_HEAD, optional=("person", "face_id"))
    table = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True).reindex(columns=columns)
    for c in ("person_id", "face_id"):
        if c in table:
            table[c] = table[c].astype("Int64")
            if not table[c].isna().any():
                table[c] = table[c].astype("int64")
    return table


def long_form(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` in tidy long form: its key columns (:data:`LONG_KEYS`), then ``measure`` and ``value``.

    Every numeric column that is not a key or a description (:data:`NOT_MEASURES`) is a measure;
    a text column (``dominant_emotion``) stays in the wide table. Rows follow the wide table's
    order, measures its column order; missing values are kept (NaN), so every row has every measure.
    """
    keys = [c for c in LONG_KEYS if c in table.columns]
    if "person_id" in keys and not table["person_id"].isna().any():
        keys = [c for c in keys if c not in ("face_ids", "face_id")]  # a person is known: the tracks are no key
    measures = [c for c in table.columns if c not in keys and c not in NOT_MEASURES
                and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]  # fmt: skip
    if not len(table):
        return pd.DataFrame({**{c: table[c] for c in keys}, "measure": pd.Series(dtype=object),
                             "value": pd.Series(dtype="float64")})  # fmt: skip
    long = (
        table[keys + measures]
        .reset_index(names="_row")
        .melt(id_vars=["_row", *keys], value_vars=measures, var_name="measure", value_name="value")
    )
    order = {m: i for i, m in enumerate(measures)}
    long = long.sort_values(
        ["_row", "measure"], key=lambda s: s.map(order) if s.name == "measure" else s, kind="stable"
    )
    long["value"] = long["value"].astype(np.float64)
    return long.drop(columns="_row").reset_index(drop=True)


def corpus_tables(outdir: str | Path, persons: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The corpus tables by name: ``persons`` and ``persons.long``; ``events`` and ``events.long`` when some
    input has events. ``persons``: :func:`fervid.api.summarize` of ``outdir`` when the caller has it (else made
    here; incomplete inputs are skipped with a warning)."""
    from fervid.api import summarize

    persons = summarize(outdir) if persons is None else persons
    tables = {"persons": persons, "persons.long": long_form(persons)}
    events = corpus_events(outdir)
    if len(events.columns):
        tables |= {"events": events, "events.long": long_form(events)}
    return tables


#: CSV digits of the corpus tables: a long table's ``value`` holds times too (3725.4167 s must not become 3725.42).
LONG_FLOAT_FORMAT = "%.10g"


def table_paths(base: Path, name: str, suffixes: tuple[str, ...]) -> list[Path]:
    """Where a corpus table goes beside the summary ``base`` (``OUT/corpus.summary`` -> ``OUT/corpus.persons.csv``;
    ``-o study`` -> ``study.persons.csv``)."""
    prefix = base.name.removesuffix(".summary")
    return [base.with_name(f"{prefix}.{name}{suffix}") for suffix in suffixes]


def write_corpus_codebook(written: dict[str, list[str]], base: Path) -> Path:
    """``<prefix>.codebook.csv`` beside the corpus tables: a row per column of each table written (``written``:
    ``summary``, ``persons``, ``events`` and the long ones -> their columns), defined in :mod:`fervid.columns`
    under ``corpus.<name>``; the ``table`` column names the file as written (``study.persons`` with ``-o study``)."""
    from fervid.columns import CODEBOOK_HEADER, codebook_rows
    from fervid.io.atomic import atomic_path

    prefix = base.name.removesuffix(".summary")
    rows = codebook_rows({f"corpus.{name}": columns for name, columns in written.items()})
    for row in rows:  # the name of the file as written: corpus.summary.csv, or study.csv with -o study
        name = row["table"].removeprefix("corpus.")
        row["table"] = base.name if name == "summary" else f"{prefix}.{name}"
    path = base.with_name(f"{prefix}.codebook.csv")
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=list(CODEBOOK_HEADER)).to_csv(tmp, index=False)
    return path
