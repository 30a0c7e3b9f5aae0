"""``fervid summarize OUT``: one row per input × face over every complete input of an annotate run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _research_runs import two_inputs
from typer.testing import CliRunner

import fervid
from fervid.api import read_table
from fervid.cli import app
from fervid.types import EMOTIONS

STEMS = ("WolfgangLanger_Pexels", "short_hamilton_clip")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A private copy of the two-input annotate folder (tests add and break inputs in it)."""
    out = tmp_path / "out"
    shutil.copytree(two_inputs(), out)
    return out


def expected_rows(out: Path) -> pd.DataFrame:
    parts = []
    for stem in STEMS:
        summary = read_table(out / stem / f"{stem}.summary.csv")
        parts.append(summary.assign(input=stem))
    return pd.concat(parts, ignore_index=True)


def test_summarize_two_inputs_gives_one_row_per_input_and_face(corpus: Path) -> None:
    table = fervid.summarize(corpus)
    expected = expected_rows(corpus)
    assert len(table) == len(expected) >= 2
    assert table["input"].unique().tolist() == list(STEMS)
    assert table[["input", "face_id"]].values.tolist() == expected[["input", "face_id"]].values.tolist()
    assert table["dominant_emotion"].tolist() == expected["dominant_emotion"].tolist()
    for c in EMOTIONS:
        np.testing.assert_allclose(table[f"mean_p_{c}"], expected[f"mean_p_{c}"])
    np.testing.assert_allclose(table["duration_s"], expected["last_time_s"] - expected["first_time_s"])
    wolfgang = table[table["input"] == STEMS[0]]
    np.testing.assert_allclose(wolfgang["visible_s"], wolfgang["frames"] * 3 / 23.976024, rtol=1e-5)
    assert (table["model"] == "ferplus").all()
    assert table["source"].str.endswith((".mp4",)).all()
    assert list(table.columns[:10]) == ["input", "source", "model", "face_id", "first_time_s", "last_time_s",
                                        "duration_s", "visible_s", "frames", "dominant_emotion"]  # fmt: skip
    assert table["face_id"].dtype == np.int64 and table["frames"].dtype == np.int64


def test_cli_writes_csv_and_parquet_and_prints_a_table(corpus: Path) -> None:
    result = CliRunner().invoke(app, ["summarize", str(corpus), "--format", "both"])
    assert result.exit_code == 0, result.output
    csv, parquet = read_table(corpus / "corpus.summary.csv"), pd.read_parquet(corpus / "corpus.summary.parquet")
    assert list(csv.columns) == list(parquet.columns) and len(csv) == len(parquet) == len(expected_rows(corpus))
    pd.testing.assert_frame_equal(parquet, fervid.summarize(corpus))
    assert "WolfgangLanger_Pexels" in result.output and "short_hamilton_clip" in result.output
    assert "dominant" in result.output


def test_incomplete_inputs_are_skipped_with_a_warning(corpus: Path) -> None:
    broken = corpus / "broken"
    shutil.copytree(corpus / STEMS[0], broken)
    for p in broken.iterdir():
        p.rename(broken / p.name.replace(STEMS[0], "broken"))
    (broken / "broken.summary.csv").unlink()  # run.json lists it: the input is not complete
    (corpus / "unfinished").mkdir()  # a killed run: outputs without run.json are not looked at
    with pytest.warns(UserWarning, match="broken: skipped"):
        table = fervid.summarize(corpus)
    assert set(table["input"]) == set(STEMS)
    result = CliRunner().invoke(app, ["summarize", str(corpus), "-o", str(corpus / "all.csv")])
    assert result.exit_code == 0 and "broken: skipped" in result.output
    assert (corpus / "all.csv").exists()


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    table = fervid.summarize(tmp_path)
    assert len(table) == 0 and "dominant_emotion" in table.columns
    result = CliRunner().invoke(app, ["summarize", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such folder" in result.output


def test_a_folder_without_results_warns_writes_nothing_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "notes.txt").write_text("not a fervid result")
    result = CliRunner().invoke(app, ["summarize", str(tmp_path)])
    assert result.exit_code == 1
    assert "no finished fervid results here; nothing written" in " ".join(result.output.split())
    assert not (tmp_path / "corpus.summary.csv").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["clip"]
