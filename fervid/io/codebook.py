"""``<stem>.codebook.csv``: what each column of each table in an output folder means, from :mod:`fervid.columns`.

One codebook per input folder, beside the tables it describes: the model's classes (and so the
``p_<class>`` columns) and the options (``--smooth``, identity, ``--format``) differ from input
to input. Its rows are the columns of the tables as written (read back from the files, so the
codebook never claims a column a table lacks), each with the definition :mod:`fervid.columns`
gives: table, column, type, unit, definition, source. A table written in CSV and Parquet is
listed once. ``fervid agree`` adds the rows of ``<stem>.agreement.csv`` when it writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from fervid.columns import CODEBOOK_HEADER, codebook_rows
from fervid.io.atomic import atomic_path

SUFFIX = ".codebook.csv"
_FORMATS = (".csv", ".parquet")


def codebook_path(outdir: Path, stem: str) -> Path:
    return Path(outdir) / f"{stem}{SUFFIX}"


def table_of(path: Path, stem: str) -> str | None:
    """The table a file holds (``faces`` for ``<stem>.faces.csv`` or ``.parquet``), None when it is no table.

    Any ``<stem>.<name>.csv`` counts, defined in :data:`~fervid.columns.TABLES` or not: a table
    without definitions gets codebook rows that say so, which the tests catch.
    """
    name = Path(path).name
    for suffix in _FORMATS:
        if name.startswith(f"{stem}.") and name.endswith(suffix):
            table = name[len(stem) + 1 : -len(suffix)]
            return table if table and table != "codebook" else None
    return None


def header(path: Path) -> list[str]:
    """A table file's column names, read without its rows."""
    if Path(path).suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return list(pd.read_csv(path, nrows=0).columns)


def written_tables(paths: Iterable[Path], stem: str) -> dict[str, list[str]]:
    """Table -> its columns as written, for every table file among ``paths`` (the first of each table's formats)."""
    tables: dict[str, list[str]] = {}
    for path in paths:
        table = table_of(path, stem)
        if table is not None and table not in tables and Path(path).is_file():
            tables[table] = header(path)
    return tables


def codebook(tables: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The codebook of these tables (table -> columns) as a DataFrame with :data:`CODEBOOK_HEADER`."""
    return pd.DataFrame(codebook_rows(tables), columns=list(CODEBOOK_HEADER))


def write_codebook(tables: Mapping[str, Sequence[str]], path: Path) -> Path:
    """Write the codebook of ``tables`` atomically."""
    with atomic_path(path) as tmp:
        codebook(tables).to_csv(tmp, index=False)
    return path


def add_to_codebook(path: Path, table: str, columns: Sequence[str]) -> Path:
    """The codebook at ``path`` with ``table``'s rows replaced by those of ``columns`` (created if missing)."""
    tables: dict[str, list[str]] = {}
    if Path(path).exists():
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
        for name, rows in old.groupby("table", sort=False):
            tables[str(name)] = rows["column"].tolist()
    tables[table] = list(columns)
    return write_codebook(tables, path)
