"""``fervid summarize OUT``'s study tables: corpus.persons and corpus.events, wide and long (issue 37, item 2)."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from PIL import Image
from typer.testing import CliRunner

import fervid
from fervid.api import read_table
from fervid.cli import app
from fervid.columns import UNDEFINED
from fervid.corpus import long_form

CLIPS = {"WolfgangLanger_Pexels": "media/pyfeat/WolfgangLanger_Pexels.mp4",
         "short_hamilton_clip": "media/face_recognition/short_hamilton_clip.mp4",
         "single_face": "media/pyfeat/single_face.mp4"}  # fmt: skip
EVENTS = """onset_s,offset_s,event,input
0,0.75,early,
0.75,1.5,late,
0,1.5,whole,WolfgangLanger_Pexels
0.9,1.5,singer,short_hamilton_clip.mp4
"""
KEYS = ["input", "person_id", "person", "event", "onset_s", "offset_s"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three inputs (1.5 s each, every 3rd frame) run as one batch with --events and --people, then summarized."""
    clips = [shared_path(relative) for relative in CLIPS.values()]
    root = tmp_path_factory.mktemp("corpus-tables")
    people = root / "people"
    people.mkdir()
    with av.open(str(clips[0])) as container:  # Wolfgang's first frame names him
        Image.fromarray(next(container.decode(video=0)).to_ndarray(format="rgb24")).save(people / "Wolfgang.jpg")
    (root / "trials.csv").write_text(EVENTS)
    out = root / "out"
    args = ["annotate", *map(str, clips), "-o", str(out), "--end", "1.5", "--every", "3", "--no-video", "--device",
            "cpu", "--people", str(people), "--events", str(root / "trials.csv")]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["summarize", str(out), "--format", "both"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("persons", "persons.long", "events", "events.long"):
        assert f"corpus.{name}.csv" in result.output and f"corpus.{name}.parquet" in result.output
    return out


@pytest.mark.slow
def test_corpus_events_are_every_inputs_event_rows(batch: Path) -> None:
    table = read_table(batch / "corpus.events.csv")
    parts = [read_table(batch / stem / f"{stem}.events.csv").assign(input=stem) for stem in CLIPS]
    assert len(table) == sum(len(p) for p in parts) > 0
    expected = pd.concat(parts, ignore_index=True)
    assert list(table.columns[:9]) == ["input", "source", "model", "event", "onset_s", "offset_s", "person_id",
                                       "person", "frames"]  # fmt: skip
    for column in ("input", "event", "person_id", "person", "frames", "readable_frames", "dominant_emotion"):
        assert table[column].fillna("-").tolist() == expected[column].fillna("-").tolist(), column
    for column in [c for c in expected.columns if c.startswith(("mean_", "share_"))]:
        np.testing.assert_allclose(table[column], expected[column], equal_nan=True, err_msg=column)
    events = {stem: sorted(set(table.loc[table["input"] == stem, "event"])) for stem in CLIPS}
    assert events == {"WolfgangLanger_Pexels": ["early", "late", "whole"],
                      "short_hamilton_clip": ["early", "late", "singer"], "single_face": ["early", "late"]}  # fmt: skip
    assert "Wolfgang" in set(table["person"])  # --people names reach the corpus
    pd.testing.assert_frame_equal(pd.read_parquet(batch / "corpus.events.parquet"), table, check_dtype=False)


@pytest.mark.slow
def test_the_corpus_codebook_defines_every_column_written(batch: Path) -> None:
    """``corpus.codebook.csv`` has a row, with a definition, for every column of every corpus table, in order."""
    book = pd.read_csv(batch / "corpus.codebook.csv", dtype=str, keep_default_na=False)
    for name in ("summary", "persons", "persons.long", "events", "events.long"):
        written = list(read_table(batch / f"corpus.{name}.parquet").columns)
        rows = book[book["table"] == f"corpus.{name}"]
        assert rows["column"].tolist() == written, name
        missing = rows[(rows["definition"] == UNDEFINED) | (rows["type"] == "")]["column"].tolist()
        assert not missing, f"corpus.{name}: columns without a definition in fervid.columns: {missing}"


@pytest.mark.slow
def test_corpus_persons_is_the_summary_with_names(batch: Path) -> None:
    persons = read_table(batch / "corpus.persons.csv")
    pd.testing.assert_frame_equal(persons, read_table(batch / "corpus.summary.csv"))
    pd.testing.assert_frame_equal(persons, fervid.summarize(batch))
    assert set(persons["input"]) == set(CLIPS) and "Wolfgang" in set(persons["person"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["persons", "events"])
def test_long_tables_hold_every_number_of_the_wide_ones(batch: Path, name: str) -> None:
    wide = read_table(batch / f"corpus.{name}.csv")
    long = read_table(batch / f"corpus.{name}.long.csv")
    keys = [k for k in KEYS if k in wide.columns]
    assert list(long.columns) == [*keys, "measure", "value"]
    measures = list(dict.fromkeys(long["measure"]))
    assert "mean_p_happy" in measures and "readable_share" in measures and "frames" in measures
    assert not {"dominant_emotion", "source", "model", "first_time_s", "person_id"} & set(measures)
    assert len(long) == len(wide) * len(measures)
    for measure in measures:  # each measure's values, row by row, are the wide table's column
        values = long.loc[long["measure"] == measure, "value"].to_numpy()
        np.testing.assert_allclose(values, wide[measure].to_numpy(np.float64), rtol=1e-6, equal_nan=True,
                                   err_msg=measure)  # fmt: skip
    first = long.loc[long["measure"] == measures[0], keys].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, wide[keys].reset_index(drop=True), check_dtype=False)
    if name == "events":
        assert set(measures) >= {"mean_yaw", "mean_roll", "visible_s"}  # behaviour means of the faces table
    pd.testing.assert_frame_equal(pd.read_parquet(batch / f"corpus.{name}.long.parquet"), long, check_dtype=False)


@pytest.mark.slow
def test_the_pandas_example_of_the_docs_runs(batch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "outputs.md").read_text()
    code = re.search(r"In pandas, the same numbers per event, and back to wide:\n\n```python\n(.*?)```", doc, re.S)
    assert code is not None, "docs/outputs.md lost its pandas example"
    monkeypatch.chdir(batch.parent)
    (batch.parent / "fervid-out").symlink_to(batch)
    namespace: dict = {}
    exec(compile(code.group(1), "outputs.md", "exec"), namespace)  # noqa: S102 - the documented example, as written
    assert len(namespace["wide"]) == len(read_table(batch / "corpus.events.csv"))
    assert set(namespace["happy"]["event"]) <= {"early", "late", "whole", "singer"}


def test_long_form_of_a_table_without_identity_keeps_the_tracks() -> None:
    wide = pd.DataFrame({"input": ["a", "a"], "person_id": pd.array([pd.NA, pd.NA], dtype="Int64"),
                         "face_ids": ["1", "2"], "frames": [3, 4], "dominant_emotion": ["happy", None],
                         "mean_p_happy": [0.5, np.nan]})  # fmt: skip
    long = long_form(wide)
    assert list(long.columns) == ["input", "person_id", "face_ids", "measure", "value"]
    assert long["measure"].tolist() == ["frames", "mean_p_happy"] * 2
    np.testing.assert_allclose(long["value"], [3, 0.5, 4, np.nan], equal_nan=True)
    empty = long_form(wide.iloc[:0])
    assert len(empty) == 0 and list(empty.columns)[-2:] == ["measure", "value"]


def test_summarize_without_events_writes_no_events_tables(tmp_path: Path) -> None:
    from fervid import metadata
    from fervid.io.tables import write_table

    folder = tmp_path / "clip"
    folder.mkdir()
    persons = pd.DataFrame({"person_id": [1], "face_ids": ["1"], "first_time_s": [0.0], "last_time_s": [1.0],
                            "frames": [10], "visible_s": [1.0], "readable_frames": [8], "readable_share": [0.8],
                            "dominant_emotion": ["happy"], "mean_p_happy": [0.7], "share_happy": [0.9]})  # fmt: skip
    write_table(persons, folder / "clip.persons.csv")
    write_table(persons.drop(columns="face_ids").rename(columns={"person_id": "face_id"}), folder / "clip.summary.csv")
    metadata.write_run(folder, "clip", {"identity": {}, "input": {"path": "/m/clip.mp4"}, "options": {"model": "m"},
                                        "outputs": ["clip.persons.csv", "clip.summary.csv"]})  # fmt: skip
    result = CliRunner().invoke(app, ["summarize", str(tmp_path), "-o", str(tmp_path / "study")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("study*")) == ["study.codebook.csv", "study.csv", "study.persons.csv",
                                                              "study.persons.long.csv"]  # fmt: skip
    book = pd.read_csv(tmp_path / "study.codebook.csv", keep_default_na=False)
    assert book["table"].unique().tolist() == ["study", "study.persons", "study.persons.long"]
    long = read_table(tmp_path / "study.persons.long.csv")
    assert long["measure"].tolist() == ["duration_s", "visible_s", "frames", "readable_frames", "readable_share",
                                        "mean_p_happy", "share_happy"]  # fmt: skip
