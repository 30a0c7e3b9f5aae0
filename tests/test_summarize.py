"""``fervid summarize OUT``: one row per input × face over every complete input of an annotate run."""

from __future__ import annotations

import re
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
from fervid.options import ClassificationOptions
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
        persons = read_table(out / stem / f"{stem}.persons.csv")
        parts.append(persons.assign(input=stem))
    return pd.concat(parts, ignore_index=True)


def test_summarize_two_inputs_gives_one_row_per_input_and_person(corpus: Path) -> None:
    table = fervid.summarize(corpus)
    expected = expected_rows(corpus)
    assert len(table) == len(expected) >= 2
    assert table["input"].unique().tolist() == list(STEMS)
    columns = ["input", "person_id", "face_ids", "frames", "dominant_emotion"]
    assert table[columns].values.tolist() == expected[columns].values.tolist()
    for c in EMOTIONS:
        np.testing.assert_allclose(table[f"mean_p_{c}"], expected[f"mean_p_{c}"])
        np.testing.assert_allclose(table[f"share_{c}"], expected[f"share_{c}"])
    np.testing.assert_allclose(table["duration_s"], expected["last_time_s"] - expected["first_time_s"])
    np.testing.assert_allclose(table["visible_s"], expected["visible_s"])
    assert (table["model"] == ClassificationOptions().model).all()  # the default model the runs used
    assert table["source"].str.endswith((".mp4",)).all()
    assert list(table.columns[:14]) == ["input", "source", "model", "person_id", "face_ids", "first_time_s",
                                        "last_time_s", "duration_s", "visible_s", "frames", "readable_frames",
                                        "readable_share", "dominant_emotion", "mean_p_angry"]  # fmt: skip
    assert table["person_id"].dtype == np.int64 and table["frames"].dtype == np.int64
    assert table["readable_frames"].dtype == np.int64
    assert table["readable_frames"].tolist() == expected["readable_frames"].tolist()  # issue 30


def test_cli_writes_csv_and_parquet_and_prints_a_table(corpus: Path) -> None:
    result = CliRunner().invoke(app, ["summarize", str(corpus), "--format", "both"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    csv, parquet = read_table(corpus / "corpus.summary.csv"), pd.read_parquet(corpus / "corpus.summary.parquet")
    assert list(csv.columns) == list(parquet.columns) and len(csv) == len(parquet) == len(expected_rows(corpus))
    pd.testing.assert_frame_equal(parquet, fervid.summarize(corpus))
    assert "WolfgangLanger_Pexels" in result.output and "short_hamilton_clip" in result.output
    assert "dominant (its mean p)" in " ".join(result.output.split()) and "mean p " not in result.output


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


def test_an_unknown_format_is_annotates_error_before_any_work(tmp_path: Path) -> None:
    """``--format`` is annotate's option, checked by the same code (fervid.options.table_suffixes)."""
    (tmp_path / "clip").mkdir()
    result = CliRunner().invoke(app, ["summarize", str(tmp_path), "--format", "xlsx"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: unknown table format 'xlsx'; choose one of: csv, parquet, both"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


# ---------------------------------------------- issue 36: persons across shots, inputs without faces, no identity
def _write_input(out: Path, stem: str, persons: pd.DataFrame | None, summary: pd.DataFrame, **run: object) -> None:
    """An input folder as `fervid annotate` leaves it: tables, then run.json listing them."""
    from fervid import metadata
    from fervid.io.tables import write_table

    folder = out / stem
    folder.mkdir(parents=True)
    outputs = [f"{stem}.summary.csv"]
    write_table(summary, folder / outputs[0])
    if persons is not None:
        outputs.append(f"{stem}.persons.csv")
        write_table(persons, folder / outputs[1])
    record = {"options": {"model": "ferplus"}, "input": {"path": f"/media/{stem}.mp4", "fps": 25.0}, **run}
    metadata.write_run(folder, stem, {**record, "outputs": outputs})


def _track_rows(ids: list[int], first: list[float], last: list[float], frames: list[int]) -> dict[str, object]:
    n = len(ids)
    happy = np.linspace(0.9, 0.6, n) if n else np.zeros(0)
    return {"first_time_s": first, "last_time_s": last, "frames": frames, "visible_s": [f / 25 for f in frames],
            "dominant_emotion": ["happy"] * n, "mean_p_happy": happy, "mean_p_neutral": 1 - happy}  # fmt: skip


@pytest.fixture
def three_shots(tmp_path: Path) -> Path:
    """Ada in shots 1 and 3 (tracks 1 and 3, one person), Bo in shot 2; an input without faces; one without identity."""
    out = tmp_path / "out"
    tracks = pd.DataFrame({"face_id": [1, 2, 3], "person_id": [1, 2, 1],
                           **_track_rows([1, 2, 3], [0.0, 2.0, 4.0], [1.0, 3.0, 5.0], [25, 25, 25])})  # fmt: skip
    persons = pd.DataFrame({"person_id": [1, 2], "person": ["Ada", ""], "face_ids": ["1 3", "2"],
                            **_track_rows([1, 2], [0.0, 2.0], [5.0, 3.0], [50, 25])})  # fmt: skip
    _write_input(out, "shots", persons, tracks, identity={"persons": 2})
    empty = pd.DataFrame({"face_id": pd.Series(dtype="int64"), "person_id": pd.Series(dtype="int64"),
                          **_track_rows([], [], [], [])})  # fmt: skip
    _write_input(out, "nobody", empty.drop(columns="face_id").assign(face_ids=pd.Series(dtype=str)), empty,
                 identity={"persons": 0})  # fmt: skip
    _write_input(out, "plain", None, pd.DataFrame({"face_id": [7], **_track_rows([7], [1.0], [2.0], [10])}))
    return out


def test_a_person_seen_in_several_shots_is_one_row(three_shots: Path) -> None:
    table = fervid.summarize(three_shots)
    assert table["input"].tolist() == ["plain", "shots", "shots"]
    shots = table[table["input"] == "shots"]
    assert shots["person_id"].tolist() == [1, 2] and shots["face_ids"].tolist() == ["1 3", "2"]
    assert shots["person"].fillna("").tolist() == ["Ada", ""] and shots["frames"].tolist() == [50, 25]
    assert shots["duration_s"].tolist() == [5.0, 1.0]
    plain = table[table["input"] == "plain"].iloc[0]  # run without identity: its face track, no person
    assert pd.isna(plain["person_id"]) and plain["face_ids"] == "7" and plain["visible_s"] == pytest.approx(0.4)
    assert table["person_id"].dtype == "Int64"
    assert list(table.columns[:6]) == ["input", "source", "model", "person_id", "person", "face_ids"]
    assert "face_id" not in table.columns


def test_the_corpus_csv_reads_back_with_missing_person_ids(three_shots: Path) -> None:
    result = CliRunner().invoke(app, ["summarize", str(three_shots), "--format", "both"])
    assert result.exit_code == 0, result.output
    csv = read_table(three_shots / "corpus.summary.csv")
    pd.testing.assert_frame_equal(csv, pd.read_parquet(three_shots / "corpus.summary.parquet"))
    pd.testing.assert_frame_equal(csv, fervid.summarize(three_shots))


def test_the_header_counts_every_complete_input_and_names_persons(three_shots: Path) -> None:
    result = CliRunner().invoke(app, ["summarize", str(three_shots)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"{three_shots}: 3 inputs (1 without faces), 2 persons, 1 face track (run with --no-identity)" in text
    assert re.search(r"shots │ P1 Ada │ 1 3 │ 0\.0-5\.0 │ 50 │ - │ happy \(0\.90\)", text), text  # no readable_share
    assert re.search(r"plain │ - │ 7 │", text), text
