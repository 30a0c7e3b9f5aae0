"""``<stem>.codebook.csv`` (issue 37, item 4): every column of every table a run writes is defined once, in
fervid.columns, and the codebook written with the run says so, column for column."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _research_runs import _ROOT, WOLFGANG, two_inputs, wolfgang_coded_span, wolfgang_smoothed
from conftest import shared_path

from fervid.columns import RUN_TABLES, TABLES, UNDEFINED, lookup, present, table_markdown
from fervid.io.codebook import codebook_path, header, table_of

DOC = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"
#: How the codebook's types read back from Parquet (pandas' names).
PARQUET_TYPES = {"text": ("object", "str", "string"), "bool": ("bool",), "int64": ("int64",),
                 "float32": ("float32",), "float64": ("float64",)}  # fmt: skip


@functools.cache
def photos_and_no_identity() -> list[Path]:
    """Two more cached runs for the conditional columns: photos (``file``, ``files``) and ``--no-identity`` with
    ``--events``."""
    import fervid

    photos = _ROOT / "photos-in"
    photos.mkdir(exist_ok=True)
    for name in ("obama_and_biden.jpg", "two_people.jpg"):
        shutil.copy(shared_path(f"media/face_recognition/{name}"), photos / name)
    fervid.annotate(photos, _ROOT / "codebook", device="cpu", video=False, format="both")
    source = shared_path(WOLFGANG)
    events = _ROOT / "codebook-events.csv"
    events.write_text("onset_s,offset_s,event\n0,0.5,first\n0.25,1.0,second\n")
    fervid.annotate(source, _ROOT / "codebook", device="cpu", end=1.0, every=4, video=False, plots=False,
                    identity=False, format="both", events=events)  # fmt: skip
    return [_ROOT / "codebook" / "photos-in", _ROOT / "codebook" / source.stem]


def run_folders() -> list[Path]:
    """Folders of real runs with different options: smoothed CSV+Parquet, plain CSV (two inputs), ELAN every run,
    photos, no identity."""
    smoothed = wolfgang_smoothed()[1]
    corpus = two_inputs()
    return [smoothed, *sorted(p for p in corpus.iterdir() if p.is_dir()), wolfgang_coded_span(),
            *photos_and_no_identity()]  # fmt: skip


def written(folder: Path) -> dict[str, dict[str, list[str]]]:
    """Table -> file name -> its columns, for every table file in the folder."""
    stem = next(folder.glob("*.run.json")).name.removesuffix(".run.json")
    tables: dict[str, dict[str, list[str]]] = {}
    for path in sorted(folder.iterdir()):
        table = table_of(path, stem)
        if table is not None:
            tables.setdefault(table, {})[path.name] = header(path)
    return tables


def test_every_column_written_has_its_codebook_entry_and_no_entry_claims_more() -> None:
    seen: dict[str, set[str]] = {}
    for folder in run_folders():
        stem = next(folder.glob("*.run.json")).name.removesuffix(".run.json")
        book = pd.read_csv(codebook_path(folder, stem), dtype=str, keep_default_na=False)
        tables = written(folder)
        assert {"faces", "summary"} <= set(tables), folder
        assert set(tables) <= set(RUN_TABLES), f"{folder.name}: tables not in fervid.columns.RUN_TABLES: {tables}"
        for table, files in tables.items():
            rows = book[book["table"] == table]
            for name, columns in files.items():
                assert rows["column"].tolist() == columns, f"{folder.name}/{name}: codebook and header differ"
            seen.setdefault(table, set()).update(rows["column"])
        assert set(book["table"]) == set(tables), f"{folder.name}: the codebook lists a table not written"
        undefined = book[(book["definition"] == UNDEFINED) | (book["definition"] == "") | (book["source"] == "")]
        assert undefined.empty, f"written without a definition in fervid.columns: {undefined.to_dict('records')}"
        for row in book.itertuples():  # the codebook's words are the definitions', spelled out for the class
            defined = lookup(row.table, row.column)
            assert defined is not None and (row.type, row.definition, row.source) == (defined.dtype,
                   defined.definition, defined.source)  # fmt: skip
        for parquet in folder.glob(f"{stem}.*.parquet"):  # the types are the types written
            table = table_of(parquet, stem)
            dtypes = pd.read_parquet(parquet).dtypes.astype(str)
            for column, dtype in dtypes.items():
                assert dtype in PARQUET_TYPES[lookup(table, column).dtype], (parquet.name, column, dtype)
    # the reverse: a definition without a condition is written by every run (next test) and so by some run here
    for table in RUN_TABLES:
        for column in TABLES[table]:
            if not column.condition:
                assert any(column.matches(name) is not None for name in seen.get(table, ())), (
                    f"{table}.{column.name} is defined as always written, but no run wrote it"
                )


def test_unconditional_columns_are_in_every_written_table() -> None:
    for folder in run_folders():
        for table, files in written(folder).items():
            required = [c for c in TABLES[table] if not c.condition]
            for name, columns in files.items():
                missing = [c.name for c in required if not any(c.matches(n) is not None for n in columns)]
                assert not missing, f"{folder.name}/{name} lacks {missing}, defined as always written"


def test_docs_hold_every_tables_column_table_as_defined() -> None:
    text = DOC.read_text()
    for table in TABLES:
        assert table_markdown(table) in text, (
            f"docs/outputs.md's `{table}` column table is out of date: paste the output of python -m fervid.columns"
        )


@pytest.mark.parametrize(
    ("table", "name", "expected"),
    [("faces", "p_happy", "raw probability of happy"), ("faces", "ps_sad", "probability of sad smoothed"),
     ("faces", "p_correct", "estimated probability"), ("summary", "mean_p_fear", "mean raw probability of fear"),
     ("persons", "share_neutral", "share of faces whose top label is neutral"),
     ("agreement.confusion", "happy", "that fervid labels happy"), ("faces", "nonsense", None),
     ("moments", "p_happy", None)],
)  # fmt: skip
def test_lookup_spells_out_per_class_columns(table: str, name: str, expected: str | None) -> None:
    found = lookup(table, name)
    assert (found is None) if expected is None else (found is not None and expected in found.definition)


def test_order_follows_the_definitions_and_adding_a_column_is_one_line() -> None:
    smoothing = {"ps_<class>", "valence_s"}  # columns --smooth adds
    names = present("faces", ["happy", "sad"], without={"file", "person", *smoothing}, data=["yaw", "zz", "readable"])
    assert names[:4] == ["frame", "time_s", "face_id", "person_id"]
    assert names[-5:] == ["p_happy", "p_sad", "readable", "yaw", "zz"]  # an undefined per-face value goes last


def test_csv_reads_back_with_the_defined_dtypes_as_parquet_keeps_them() -> None:
    """``fervid.api.read_table`` types a CSV's columns by their definitions: the same dtypes as the Parquet file."""
    from fervid.api import read_table

    for folder in (wolfgang_smoothed()[1], *photos_and_no_identity()):
        for parquet in folder.glob("*.parquet"):
            csv, kept = read_table(parquet.with_suffix(".csv")), pd.read_parquet(parquet)
            assert csv.dtypes.astype(str).to_dict() == kept.dtypes.astype(str).to_dict(), parquet.name


def test_faces_summary_persons_and_events_are_written_in_the_defined_order() -> None:
    """The order of ``fervid.columns`` is the order written (moments lead with their subject, ``face_id`` without
    identity, so they are left out)."""
    for folder in run_folders():
        for table, files in written(folder).items():
            if table not in ("faces", "summary", "persons", "events"):
                continue
            for name, columns in files.items():
                place = []
                for column in columns:
                    defined = TABLES[table]
                    exact = [i for i, c in enumerate(defined) if not c.per_class and c.name == column]  # p_correct
                    at = (exact or [i for i, c in enumerate(defined) if c.matches(column) is not None])[0]
                    place.append(at)
                assert place == sorted(place), f"{folder.name}/{name}: {columns}"
