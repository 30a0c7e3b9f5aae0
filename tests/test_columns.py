"""The per-face columns are a research contract: defined once, documented as defined."""

from __future__ import annotations

from pathlib import Path

from fervid.columns import FACE_COLUMN_NAMES, column_table_markdown, ordered

DOC = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"


def test_outputs_doc_holds_the_column_table_as_defined() -> None:
    assert column_table_markdown() in DOC.read_text(), (
        "docs/outputs.md's per-face column table is out of date: paste the output of "
        "python -c 'from fervid.columns import column_table_markdown as m; print(m())'"
    )


def test_the_issues_column_names_are_defined() -> None:
    names = {"face_px", "sharpness", "brightness", "contrast", "yaw", "roll", "readable", "p_correct"}
    assert names <= set(FACE_COLUMN_NAMES)


def test_ordered_puts_defined_columns_first_in_their_order() -> None:
    assert ordered({"zeta", "yaw", "readable", "alpha"}) == ["readable", "yaw", "alpha", "zeta"]
