"""``fervid agree``: fervid's labels against a human-coded ELAN tier (issue 37, item 5)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _research_runs import wolfgang_coded_span
from typer.testing import CliRunner

from fervid import api
from fervid.agreement import (
    AgreementError,
    coded_events,
    cohen_kappa,
    label_mapping,
    runs,
    score,
    subject_rows,
)
from fervid.cli import app

CODED = Path(__file__).resolve().parent / "data" / "wolfgang_coded.eaf"
STEM = "WolfgangLanger_Pexels"
WRITTEN = (".agreement.csv", ".agreement.confusion.csv", ".agreement.txt")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A copy of the cached run (tests write into it)."""
    folder = tmp_path / STEM
    shutil.copytree(wolfgang_coded_span(), folder)
    return folder


# ------------------------------------------------------------------------------ figures by hand
def test_kappa_of_a_textbook_matrix() -> None:
    # 50 items: both yes 20, coder yes / fervid no 5, coder no / fervid yes 10, both no 15.
    # p_o = 35/50 = 0.7; p_e = (25*30 + 25*20) / 50^2 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4
    assert cohen_kappa(np.array([[20, 5], [10, 15]])) == pytest.approx(0.4)
    assert cohen_kappa(np.array([[7, 0], [0, 3]])) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(np.array([[9, 0], [0, 0]])))  # one label on both sides: undefined
    assert math.isnan(cohen_kappa(np.zeros((2, 2), int)))


def test_scores_of_a_small_coded_sequence() -> None:
    coded = np.array(["happy", "happy", "happy", "sad", "sad", "sad", "", ""], dtype=object)
    found = np.array(["happy", "happy", "sad", "sad", "", "sad", "sad", ""], dtype=object)
    times = np.arange(8) * 0.5
    table, matrix, labels = score(coded, found, [(0.0, "happy"), (1.5, "sad")], runs(times, found),
                                  ("happy", "sad"), tolerance=0.5)  # fmt: skip
    # both label frames 0,1,2,3,5: happy/happy x2, happy/sad, sad/sad x2
    assert labels == ["happy", "sad", ""]
    assert matrix.tolist() == [[2, 1, 0], [0, 2, 1], [0, 1, 1]]
    rows = table.set_index("label")
    assert rows.loc["happy", ["coded_frames", "fervid_frames", "agreeing_frames"]].tolist() == [3, 2, 2]
    assert rows.loc["happy", "precision"] == 1.0 and rows.loc["happy", "recall"] == pytest.approx(2 / 3)
    assert rows.loc["sad", "precision"] == pytest.approx(2 / 3) and rows.loc["sad", "recall"] == 1.0
    # p_o = 4/5, p_e = (3*2 + 2*3)/25 = 12/25 -> kappa = (20/25 - 12/25) / (13/25) = 8/13
    assert rows.loc["overall", "kappa"] == pytest.approx(8 / 13)
    assert rows.loc["overall", "frame_agreement"] == pytest.approx(0.8)
    assert rows.loc["sad", "no_fervid_label"] == 1 and rows.loc["sad", "not_coded"] == 1
    # fervid runs: happy@0, sad@1.0, sad@2.5 (after the gap); coded sad@1.5 is matched by sad@1.0
    assert rows.loc["overall", ["coded_events", "matched_events", "fervid_events", "matched_fervid_events"]].tolist() \
        == [2, 2, 3, 2]  # fmt: skip


def test_touching_annotations_of_one_label_are_one_event() -> None:
    mapping = {"joy": "happy", "Happy": "happy", "sad": "sad"}
    annotations = [(0, 1000, "joy"), (1000, 2000, "Happy"), (2000, 2500, "sad"), (3000, 4000, "sad")]
    assert coded_events(annotations, mapping) == [(0.0, "happy"), (2.0, "sad"), (3.0, "sad")]


def test_label_table_synonyms_user_map_and_unknown_labels() -> None:
    classes = ("angry", "happy", "sad", "surprise", "neutral")
    found = label_mapping(["Joy", "happiness", "anger", "Sadness", "surprised", "None", "neutral", "sad"], classes)
    assert found == {"Joy": "happy", "happiness": "happy", "anger": "angry", "Sadness": "sad",
                     "surprised": "surprise", "None": "neutral", "neutral": "neutral", "sad": "sad"}  # fmt: skip
    user = {"grin": "happy", "unclear": ""}
    assert label_mapping(["grin", "unclear"], classes, user) == user
    with pytest.raises(AgreementError, match="unknown labels 'grin', 'meh'"):
        label_mapping(["grin", "joy", "meh"], classes)
    with pytest.raises(AgreementError, match="'elated'"):
        label_mapping(["grin"], classes, {"grin": "elated"})
    with pytest.raises(AgreementError, match="'contempt'"):  # a class this model does not have
        label_mapping(["contempt"], classes)


def test_several_persons_need_person_and_unknown_ones_are_named() -> None:
    faces = pd.DataFrame({"time_s": [0.0, 0.0, 0.1], "face_id": [1, 2, 1], "person_id": [1, 2, 1]})
    with pytest.raises(AgreementError, match=r"2 persons \(P1, P2\).*--person"):
        subject_rows(faces, None)
    assert subject_rows(faces, "P2")[0] == "P2" and subject_rows(faces, "1")[1].tolist() == [0, 2]
    with pytest.raises(AgreementError, match="no person 'P7' in the run; its persons: P1, P2"):
        subject_rows(faces, "P7")


# ------------------------------------------------------------------------------ real runs
def test_fervids_own_elan_export_agrees_with_its_labels(run_dir: Path) -> None:
    """The run's ELAN file holds its smoothed labels (``elan_min_run=0``): agreement must be perfect."""
    found = api.agree(run_dir, eaf=str(run_dir / f"{STEM}.eaf"), tier="P1", smoothed=True)
    overall = found.table.iloc[-1]
    assert found.kappa == pytest.approx(1.0) and found.frame_agreement == 1.0
    assert overall["no_fervid_label"] == 0 and overall["not_coded"] == 0
    assert overall["matched_events"] == overall["coded_events"] > 1
    confusion = found.confusion.set_index("coded")
    assert confusion.drop(index="(none)", columns="(none)").to_numpy().sum() == overall["agreeing_frames"]
    assert len(found.table) > 2  # more than one label: kappa is defined
    # the raw labels flicker where the smoothed ones do not: less than perfect, still far above chance
    raw = api.agree(run_dir, eaf=str(run_dir / f"{STEM}.eaf"), tier="P1", write=False)
    assert 0.5 < raw.kappa < 1.0


def test_a_tier_coded_by_eye_gives_the_figures_computed_by_hand(run_dir: Path) -> None:
    """tests/data/wolfgang_coded.eaf against fervid's raw labels at 8-12 s (see tests/data/README.md).

    The run's rows there (every 2nd frame, 0.0834 s apart; 48 frames in [8.0, 12.0) s), p_correct < 0.5 = no label:
    coded Sadness 8.0-9.5 (18 frames): fervid sad 2 (8.425, 9.343), surprise 6, none 10;
    coded neutral 9.5-10.0 (6 frames): fervid happy 5, none 1 (9.51, p_correct 0.34);
    coded Joy 10.0-12.0 (24 frames): fervid happy 24.
    Both label 37 frames, 26 agree: p_o = 26/37; coded totals sad 8, neutral 5, happy 24; fervid sad 2,
    surprise 6, happy 29: p_e = (8*2 + 24*29)/37^2 = 712/1369; kappa = (962 - 712)/(1369 - 712) = 250/657.
    Events (±0.5 s): coded sad@8.0 matched by sad@8.425, neutral@9.5 by none, happy@10.0 by happy@9.593: 2 of 3;
    fervid runs in the span sad@8.425, surprise@8.508, surprise@8.675, sad@9.343, happy@9.593: 2 of 5 matched.
    """
    result = CliRunner().invoke(app, ["agree", str(run_dir), "--eaf", str(CODED), "--tier", "Emotion"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run_dir / f"{STEM}.agreement.csv").set_index("label")
    confusion = pd.read_csv(run_dir / f"{STEM}.agreement.confusion.csv").set_index("coded")
    expected = pd.DataFrame(
        [[24, 0, 0, 0, 0], [0, 2, 6, 0, 10], [0, 0, 0, 0, 0], [5, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        index=(labels := ["happy", "sad", "surprise", "neutral", "(none)"]), columns=labels,
    )  # fmt: skip
    assert confusion.loc[expected.index, expected.columns].to_numpy().tolist() == expected.to_numpy().tolist()
    overall = table.loc["overall"]
    assert overall["kappa"] == pytest.approx(250 / 657, abs=1e-6)
    assert overall["frame_agreement"] == pytest.approx(26 / 37, abs=1e-6)
    assert (overall["coded_frames"], overall["agreeing_frames"], overall["no_fervid_label"]) == (37, 26, 11)
    assert table.loc["sad", ["precision", "recall"]].tolist() == pytest.approx([1.0, 2 / 8])
    assert table.loc["happy", ["precision", "recall", "f1"]].tolist() == pytest.approx([24 / 29, 1.0, 48 / 53])
    assert table.loc["neutral", "recall"] == 0 and np.isnan(table.loc["neutral", "precision"])
    assert (overall["coded_events"], overall["matched_events"]) == (3, 2)
    assert (overall["fervid_events"], overall["matched_fervid_events"]) == (5, 2)
    assert table.loc["neutral", ["coded_events", "matched_events"]].tolist() == [1, 0]
    assert "Cohen's kappa 0.381" in result.output and "2 of 3 coded matched" in result.output
    text = (run_dir / f"{STEM}.agreement.txt").read_text()
    assert "Cohen's kappa 0.381" in text and "confusion matrix" in text
    book = pd.read_csv(run_dir / f"{STEM}.codebook.csv")
    for name in ("agreement", "agreement.confusion"):
        written = pd.read_csv(run_dir / f"{STEM}.{name}.csv").columns.tolist()
        assert book.loc[book["table"] == name, "column"].tolist() == written
    assert {"faces", "summary", "persons", "moments"} <= set(book["table"])  # the run's own rows are kept


def test_tolerance_decides_which_events_match(run_dir: Path) -> None:
    """With ±0.3 s neither coded event of 2 of 3 is matched any more (fervid started 0.425 s and 0.407 s away)."""
    found = api.agree(run_dir, eaf=str(CODED), tier="Emotion", tolerance=0.3, write=False)
    assert found.table.iloc[-1]["matched_events"] == 0
    assert found.kappa == pytest.approx(250 / 657)  # frames do not depend on the tolerance


# ------------------------------------------------------------------------------ bad input
def _bad(run_dir: Path, tmp_path: Path) -> list[tuple[list[str], str]]:
    unknown = tmp_path / "unknown.eaf"
    unknown.write_text(CODED.read_text().replace(">Joy<", ">Elation<"))
    broken = tmp_path / "broken.eaf"
    broken.write_text("<ANNOTATION_DOCUMENT")
    later = tmp_path / "later.eaf"
    later.write_text(CODED.read_text().replace('"8000"', '"100000"').replace('"9500"', '"100500"')
                     .replace('"10000"', '"101000"').replace('"12000"', '"102000"'))  # fmt: skip
    labels = tmp_path / "labels.csv"
    labels.write_text("coded,fervid\nJoy,happy\n")
    return [
        (["--eaf", str(tmp_path / "none.eaf"), "--tier", "Emotion"], "none.eaf: no such ELAN file"),
        (["--eaf", str(broken), "--tier", "Emotion"], "broken.eaf: not an ELAN file"),
        (["--eaf", str(CODED), "--tier", "Emotions"], "no tier 'Emotions'; its tiers: 'Emotion'"),
        (["--eaf", str(unknown), "--tier", "Emotion"], "unknown labels 'Elation'"),
        (["--eaf", str(later), "--tier", "Emotion"], "spans 100.00-102.00 s, the run processed 7.01-12.43 s"),
        (["--eaf", str(CODED), "--tier", "Emotion", "--person", "P4"], "no person 'P4' in the run; its persons: P1"),
        (["--eaf", str(CODED), "--tier", "Emotion", "--map", str(labels)], "needs the columns label,class"),
        (["--eaf", str(CODED), "--tier", "Emotion", "--map", str(tmp_path / "x.csv")], "x.csv: no such label table"),
    ]


def test_bad_input_is_one_line_and_writes_nothing(run_dir: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in run_dir.iterdir())
    book = (run_dir / f"{STEM}.codebook.csv").read_bytes()
    for args, message in _bad(run_dir, tmp_path):
        result = CliRunner().invoke(app, ["agree", str(run_dir), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert result.output.startswith("error:") and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in run_dir.iterdir()) == before
    assert (run_dir / f"{STEM}.codebook.csv").read_bytes() == book


def test_a_folder_that_is_no_fervid_output_is_refused(tmp_path: Path) -> None:
    for folder, message in ((tmp_path / "nothing", "no such folder"), (tmp_path, "not a finished fervid output")):
        result = CliRunner().invoke(app, ["agree", str(folder), "--eaf", str(CODED), "--tier", "Emotion"])
        assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_photos_have_no_time_to_compare(tmp_path: Path) -> None:
    from conftest import shared_path

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(shared_path("media/pyfeat/single_face.jpg"), photos / "single_face.jpg")
    api.annotate(photos, tmp_path / "out", device="cpu", video=False, report=False)
    before = sorted(p.name for p in (tmp_path / "out" / "photos").iterdir())
    result = CliRunner().invoke(app, ["agree", str(tmp_path / "out" / "photos"), "--eaf", str(CODED), "--tier", "x"])
    assert result.exit_code == 2 and "a run of independent photos" in result.output, result.output
    assert sorted(p.name for p in (tmp_path / "out" / "photos").iterdir()) == before


def test_smoothed_needs_a_smoothed_run(run_dir: Path) -> None:
    faces = pd.read_csv(run_dir / f"{STEM}.faces.csv")
    faces.drop(columns=[c for c in faces if c.startswith("ps_")]).to_csv(run_dir / f"{STEM}.faces.csv", index=False)
    with pytest.raises(AgreementError, match="--smoothed needs the ps_<class> columns"):
        api.agree(run_dir, eaf=str(CODED), tier="Emotion", smoothed=True)
    assert not (run_dir / f"{STEM}.agreement.csv").exists()
