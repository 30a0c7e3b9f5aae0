"""Issue 37 item 3: ``fervid persons`` merges, names and drops persons after a run, in every output, atomically.

The small cases check the edits and the table operations on a hand-made faces table; the real
ones edit a cached run of the Hamilton clip (several persons, some on screen together) and check
that every output agrees afterwards, that nothing of a person who is gone remains, and that a
failure midway leaves the old outputs byte for byte.
"""

from __future__ import annotations

import functools
import html
import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _drawn_labels import DrawnLabels
from conftest import shared_path
from typer.testing import CliRunner

import fervid
from fervid.api import read_table
from fervid.cli import app
from fervid.identity.edits import (
    NO_PERSON,
    EditError,
    PersonEdits,
    edited_blinks,
    edited_faces,
    edited_persons,
    plan_edits,
)
from fervid.io.tables import trusted
from fervid.options import AnnotateOptions
from fervid.report.context import edited_persons as edits_in_words
from fervid.report.index import write_index
from fervid.run import behaviour_summaries

HAMILTON = "media/face_recognition/short_hamilton_clip.mp4"
STEM = "short_hamilton_clip"


def _invoke(args: list[object]) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, " ".join(result.output.split())


# ------------------------------------------------------------------------------- the edits alone
@pytest.mark.parametrize(
    ("merge", "name", "drop", "expected"),
    [
        (["P3,P5"], [], [], PersonEdits(merge=((3, 5),))),
        (["P3 P5 7"], ["p2=Ada Lovelace"], ["P9", "9"], PersonEdits(((3, 5, 7),), ((2, "Ada Lovelace"),), (9,))),
        ([], ["P2= Ada "], [], PersonEdits(names=((2, "Ada"),))),
    ],
)
def test_edits_from_the_command_line(merge, name, drop, expected) -> None:
    assert PersonEdits.from_cli(merge, name, drop) == expected


@pytest.mark.parametrize(
    ("merge", "more", "expected"),
    [
        (["P3"], ["P5"], ((3, 5),)),  # --merge P3 P5: P5 is left over beside the folder
        (["P3"], ["P5", "P7"], ((3, 5, 7),)),
        (["P3", "P2"], ["P5", "P7"], ((3, 5), (2, 7))),  # --merge P3 P5 --merge P2 P7
        (["P3,P5", "P2"], ["P7"], ((3, 5), (2, 7))),
    ],
)
def test_ids_left_over_complete_the_merges_in_order(merge, more, expected) -> None:
    assert PersonEdits.from_cli(merge, [], [], more).merge == expected


@pytest.mark.parametrize(("merge", "more"), [(["P3", "P2"], ["P5"]), ([], ["P5"]), (["P3,P5"], ["P7"])])
def test_ids_left_over_that_fit_no_merge(merge, more) -> None:
    with pytest.raises(EditError, match="write each merge as --merge P3,P5"):
        PersonEdits.from_cli(merge, [], ["P9"], more)


@pytest.mark.parametrize(
    ("merge", "name", "drop", "message"),
    [
        ([], [], [], "nothing to do"),
        (["P3"], [], [], "needs two persons"),
        (["P3,P3"], [], [], "merged with itself"),
        (["P3,Q5"], [], [], "'Q5' is not a person ID"),
        (["P0,P5"], [], [], "start at P1"),
        ([], ["P2"], [], "--name P2=Ada"),
        ([], ["P2=Ada", "P2=Bea"], [], "named twice"),
        ([], ["P2="], [], "one line of text"),
        (["P3,P5"], [], ["P5"], "P5 is both merged and dropped"),
        ([], ["P5=Ada"], ["P5"], "P5 is both named and dropped"),
    ],
)
def test_edits_that_make_no_sense_alone(merge, name, drop, message) -> None:
    with pytest.raises(EditError, match=re.escape(message)):
        PersonEdits.from_cli(merge, name, drop)


def _faces(rows: list[tuple[int, int, int]], names: dict[int, str] | None = None) -> pd.DataFrame:
    """(frame, face_id, person_id) rows of a faces table, with one class."""
    frame, face, person = (np.array(c, dtype=np.int64) for c in zip(*rows))
    table = pd.DataFrame({"frame": frame, "time_s": frame / 10.0, "face_id": face, "person_id": person,
                          "p_happy": np.float32(0.5), "p_neutral": np.float32(0.5)})  # fmt: skip
    if names is not None:
        table.insert(4, "person", table["person_id"].map(names).fillna(""))
    return table


#: P1 (track 1) and P2 (track 2) together in frames 0-1; P3 (track 3) in frames 2-3, with P4 (track 4) in frame 3;
#: P5 (track 5) alone in frame 4.
ROWS = [(0, 1, 1), (0, 2, 2), (1, 1, 1), (1, 2, 2), (2, 3, 3), (3, 3, 3), (3, 4, 4), (4, 5, 5)]


def test_a_merge_keeps_the_first_id_and_a_drop_leaves_the_faces_with_no_person() -> None:
    faces = _faces(ROWS)
    plan = plan_edits(faces, PersonEdits.of(merge=[("P1", "P3")], drop=["P4"], names={"P3": "Ada"}))
    assert plan.new_of_old == {1: 1, 2: 2, 3: 1, 4: NO_PERSON, 5: 5}
    assert plan.names == {1: "Ada"}  # a name given to a merged-away person names the person it went into
    edited = edited_faces(faces, plan)
    assert edited["person_id"].tolist() == [1, 2, 1, 2, 1, 1, NO_PERSON, 5]
    assert edited["person"].tolist() == ["Ada", "", "Ada", "", "Ada", "Ada", "", ""]
    assert len(edited) == len(faces) and edited["face_id"].tolist() == faces["face_id"].tolist()


def test_merges_apply_in_order() -> None:
    plan = plan_edits(_faces(ROWS), PersonEdits.of(merge=[("P3", "P1"), ("P1", "P5")]))
    assert plan.new_of_old == {1: 3, 2: 2, 3: 3, 4: 4, 5: 3}


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        (PersonEdits.of(merge=[("P1", "P2")]), "P1, P2 are both seen in frame 0 (0.00 s)"),
        (PersonEdits.of(merge=[("P1", "P3"), ("P4", "P1")]), "P3, P4 are both seen in frame 3 (0.30 s)"),
        (PersonEdits.of(drop=["P7"]), "no person P7 in this run (its persons: P1, P2, P3, P4, P5)"),
        (PersonEdits.of(merge=[("P1", "P3"), ("P3", "P1")]), "P1 is already part of P1"),
    ],
)
def test_edits_that_do_not_fit_the_run(edits, message) -> None:
    with pytest.raises(EditError, match=re.escape(message)):
        plan_edits(_faces(ROWS), edits)


def test_merging_two_named_persons_needs_a_name_for_the_merged_one() -> None:
    faces = _faces(ROWS, names={1: "Ada", 3: "Bea"})
    with pytest.raises(EditError, match="P1 would be both Ada and Bea"):
        plan_edits(faces, PersonEdits.of(merge=[("P1", "P3")]))
    assert plan_edits(faces, PersonEdits.of(merge=[("P1", "P3")], names={"P1": "Cy"})).names == {1: "Cy"}
    assert plan_edits(faces, PersonEdits.of(drop=["P3"])).names == {1: "Ada"}


def test_a_run_without_persons_cannot_be_edited() -> None:
    with pytest.raises(EditError, match="no persons"):
        plan_edits(_faces(ROWS).drop(columns="person_id"), PersonEdits.of(drop=["P1"]))


def test_a_merged_persons_time_on_screen_is_the_sum_of_its_parts() -> None:
    faces = _faces(ROWS)
    old = pd.DataFrame({"person_id": [1, 2, 3, 4, 5], "visible_s": [0.25, 0.2, 0.3, np.nan, 0.1]})
    plan = plan_edits(faces, PersonEdits.of(merge=[("P1", "P3")], drop=["P2", "P5"]))
    persons = edited_persons(edited_faces(faces, plan), old, plan, ("happy", "neutral"), 0.0)
    assert persons["person_id"].tolist() == [1, 4]
    assert persons["visible_s"].tolist()[0] == pytest.approx(0.55)
    assert np.isnan(persons["visible_s"].tolist()[1])
    assert persons["face_ids"].tolist() == ["1 3", "4"] and persons["frames"].tolist() == [4, 1]


def test_a_merged_persons_blinks_and_valence_are_those_of_its_parts() -> None:
    faces = _faces(ROWS).assign(valence=[0.1, -0.5, 0.3, -0.5, 0.6, 0.2, 0.9, -0.2])
    old = pd.DataFrame({"person_id": [1, 2, 3, 4, 5], "visible_s": [0.25, 0.2, 0.3, 0.1, 0.1]})
    blinks = pd.DataFrame({"face_id": [1, 1, 3, 2], "person_id": [1, 1, 3, 2], "start_s": [0.0, 0.1, 0.2, 0.0],
                           "end_s": [0.05, 0.15, 0.25, 0.05], "duration_s": [0.05] * 4})  # fmt: skip
    plan = plan_edits(faces, PersonEdits.of(merge=[("P1", "P3")], drop=["P2"]))
    faces = edited_faces(faces, plan)
    blinks = edited_blinks(blinks, plan)
    assert blinks["person_id"].tolist() == [1, 1, 1, NO_PERSON] and blinks["face_id"].tolist() == [1, 1, 3, 2]
    persons = edited_persons(faces, old, plan, ("happy", "neutral"), 0.0)
    tracks = old.rename(columns={"person_id": "face_id"})  # one track a person: the same times
    _, persons = behaviour_summaries(tracks, persons, faces, blinks, AnnotateOptions())
    merged = persons.set_index("person_id").loc[1]
    assert merged["blinks_per_min"] == pytest.approx(3 / (0.55 / 60))  # 3 blinks in 0.55 s of face
    assert merged["mean_valence"] == pytest.approx(np.mean([0.1, 0.3, 0.6, 0.2]))
    assert persons["person_id"].tolist() == [1, 4, 5] and persons["blinks_per_min"].tolist()[1:] == [0, 0]


def test_the_record_reads_back_as_the_same_edits() -> None:
    edits = PersonEdits.of(merge=[("P2", "P11")], names={"P2": "Ada"}, drop=["P9"])
    assert PersonEdits.from_record(json.loads(json.dumps(edits.record()))) == edits
    words = edits_in_words({"edits": [{"at": "2026-01-01T12:05:00+00:00", **edits.record()}]})
    assert words == ["P11 merged into P2; P2 named Ada; P9 dropped (2026-01-01 12:05 UTC)"]


# ------------------------------------------------------------------------------- folders that are no run
def test_folders_that_are_no_finished_run_are_one_line_errors(tmp_path: Path) -> None:
    code, output = _invoke(["persons", tmp_path / "nowhere", "--drop", "P1"])
    assert (code, output) == (2, f"error: {tmp_path / 'nowhere'}: no such folder (give a fervid output folder, "
                                 "OUT/<stem>)")  # fmt: skip
    (tmp_path / "notes.txt").write_text("mine")
    code, output = _invoke(["persons", tmp_path, "--drop", "P1"])
    assert code == 2 and output.startswith(f"error: {tmp_path}: not a fervid output folder"), output
    code, output = _invoke(["persons", "--merge", "P3", "P5", tmp_path])  # the folder after the IDs
    assert code == 2 and output.startswith(f"error: {tmp_path}: not a fervid output folder"), output
    assert _invoke(["persons", "--drop", "P3", "P5"]) == (2, "error: give one output folder (OUT/<stem>)")
    (tmp_path / "clip.run.json").write_text("{not json")
    code, output = _invoke(["persons", tmp_path, "--drop", "P1"])
    assert (code, output) == (2, f"error: {tmp_path / 'clip.run.json'}: not a fervid run record")
    record = {"format": "fervid-run/1", "stem": "clip", "options": {"identity": False}, "outputs": ["clip.faces.csv"]}
    (tmp_path / "clip.run.json").write_text(json.dumps(record))
    code, output = _invoke(["persons", tmp_path, "--drop", "P1"])
    assert (code, output) == (2, f"error: {tmp_path}: the run is incomplete (clip.faces.csv missing)")
    (tmp_path / "clip.faces.csv").write_text("frame,time_s,face_id\n")
    code, output = _invoke(["persons", tmp_path, "--drop", "P1"])
    assert code == 2 and output == f"error: {tmp_path}: this run has no persons (made with --no-identity): nothing "\
        "to merge, name or drop", output  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.faces.csv", "clip.run.json", "notes.txt"]


# ------------------------------------------------------------------------------- a real run
_ROOT = Path(tempfile.mkdtemp(prefix="fervid-persons-tests-"))


@functools.cache
def _hamilton_run() -> Path:
    """The Hamilton clip as in the researcher's trial (``--smooth 0.5``), tables in CSV and Parquet, embeddings
    saved, an events window per shot; made once, copied by each test."""
    source = shared_path(HAMILTON)
    events = _ROOT / "shots.csv"  # one window per shot of the clip
    events.write_text("onset_s,offset_s,event\n0,3.57,stage\n3.57,7.88,singer\n7.88,10,audience\n")
    fervid.annotate(source, _ROOT / "run", device="cpu", smooth=0.5, format="both", save_embeddings=True,
                    events=events)  # fmt: skip
    return _ROOT / "run" / STEM


@pytest.fixture
def run_copy(tmp_path: Path) -> Path:
    """A fresh copy of the cached run, in an ``OUT`` folder of its own."""
    folder = tmp_path / "out" / STEM
    shutil.copytree(_hamilton_run(), folder)
    return folder


def _choice(folder: Path) -> tuple[int, int, int]:
    """(keep, other, dropped): the person seen longest, the longest-seen person never in a frame with them, and a
    third one. Picked from the table so the test does not hang on the identity stage's numbering."""
    faces = pd.read_csv(folder / f"{STEM}.faces.csv")
    persons = faces[faces["person_id"] >= 1]
    counts = persons["person_id"].value_counts()
    keep = int(counts.index[0])
    together = set(persons.loc[persons["frame"].isin(persons.loc[persons["person_id"] == keep, "frame"]), "person_id"])
    other = int(next(p for p in counts.index if p not in together))
    dropped = int(next(p for p in counts.index if p not in (keep, other)))
    return keep, other, dropped


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@functools.cache
def _edited() -> tuple[Path, Path, tuple[int, int, int], dict[int, list[str]]]:
    """The run edited twice: ``--merge keep other --drop dropped``, then ``--name keep=Ada``; the labels drawn."""
    original = _hamilton_run()
    folder = _ROOT / "edited" / STEM
    shutil.copytree(original, folder)
    keep, other, dropped = _choice(folder)
    write_index(folder.parent)  # as a batch leaves it
    with pytest.MonkeyPatch.context() as monkeypatch:
        drawn = DrawnLabels(monkeypatch)
        code, output = _invoke(["persons", folder, "--merge", f"P{keep}", f"P{other}", "--drop", f"P{dropped}"])
        assert code == 0, output
        code, output = _invoke(["persons", folder, "--name", f"P{keep}=Ada"])
        assert code == 0, output
    return original, folder, (keep, other, dropped), drawn.texts()


@pytest.fixture
def edited() -> tuple[Path, Path, tuple[int, int, int], dict[int, list[str]]]:
    return _edited()


def _persons_after(original: Path, keep: int, other: int, dropped: int) -> list[int]:
    before = pd.read_csv(original / f"{STEM}.persons.csv")["person_id"].tolist()
    return [p for p in before if p not in (other, dropped)]


@pytest.mark.slow
def test_the_tables_agree_after_a_merge_and_a_rename(edited) -> None:
    original, folder, (keep, other, dropped), _ = edited
    mapping = {other: keep, dropped: NO_PERSON}
    for suffix in (".csv", ".parquet"):  # every format the run wrote
        before = read_table(original / f"{STEM}.faces{suffix}")
        after = read_table(folder / f"{STEM}.faces{suffix}")
        expected = before["person_id"].map(lambda p: mapping.get(p, p))
        assert after["person_id"].tolist() == expected.tolist()
        assert after["person"].fillna("").tolist() == ["Ada" if p == keep else "" for p in expected]
        pd.testing.assert_frame_equal(after.drop(columns=["person_id", "person"]), before.drop(columns="person_id"))
        summary_before = read_table(original / f"{STEM}.summary{suffix}")
        summary = read_table(folder / f"{STEM}.summary{suffix}")
        assert summary["person_id"].tolist() == summary_before["person_id"].map(lambda p: mapping.get(p, p)).tolist()
        pd.testing.assert_frame_equal(summary.drop(columns="person_id"), summary_before.drop(columns="person_id"))
        persons_before = read_table(original / f"{STEM}.persons{suffix}").set_index("person_id")
        persons = read_table(folder / f"{STEM}.persons{suffix}").set_index("person_id")
        assert persons.index.tolist() == _persons_after(original, keep, other, dropped)
        merged = persons.loc[keep]
        assert merged["person"] == "Ada"
        assert merged["frames"] == persons_before.loc[keep, "frames"] + persons_before.loc[other, "frames"]
        assert merged["visible_s"] == pytest.approx(persons_before.loc[[keep, other], "visible_s"].sum())
        assert sorted(merged["face_ids"].split()) == sorted(
            persons_before.loc[keep, "face_ids"].split() + persons_before.loc[other, "face_ids"].split()
        )
        untouched = [p for p in persons.index if p != keep]
        pd.testing.assert_frame_equal(persons.loc[untouched].drop(columns="person"), persons_before.loc[untouched],
                                      check_exact=suffix == ".parquet", rtol=1e-6)  # fmt: skip
        blinks_before = read_table(original / f"{STEM}.blinks{suffix}")
        blinks = read_table(folder / f"{STEM}.blinks{suffix}")  # found per track: only the persons change
        assert blinks["person_id"].tolist() == blinks_before["person_id"].map(lambda p: mapping.get(p, p)).tolist()
        pd.testing.assert_frame_equal(blinks.drop(columns="person_id"), blinks_before.drop(columns="person_id"))
        mine = blinks_before["person_id"].isin([keep, other])
        assert (blinks["person_id"] == keep).sum() == mine.sum()
        assert merged["blinks_per_min"] == pytest.approx(mine.sum() / (merged["visible_s"] / 60))
        counted = after[trusted(after) & (after["person_id"] == keep)]
        assert merged["mean_valence"] == pytest.approx(counted["valence"].mean())
        events_before = read_table(original / f"{STEM}.events{suffix}")
        events = read_table(folder / f"{STEM}.events{suffix}")
        assert set(events["person_id"]) == set(persons.index)
        assert list(events["event"].unique()) == ["stage", "singer", "audience"]
        for event, rows in events.groupby("event", sort=False):
            was = events_before[events_before["event"] == event].set_index("person_id")
            now = rows.set_index("person_id")
            assert now.loc[keep, "frames"] == was.loc[[keep, other], "frames"].sum()
            assert now.loc[keep, "visible_s"] == pytest.approx(was.loc[[keep, other], "visible_s"].sum())
            assert now.loc[keep, "person"] == "Ada"
            same = [p for p in now.index if p != keep]
            pd.testing.assert_frame_equal(now.loc[same].drop(columns="person"), was.loc[same], rtol=1e-6)
    with np.load(folder / f"{STEM}.embeddings.npz") as npz, np.load(original / f"{STEM}.embeddings.npz") as old:
        assert npz["person_id"].tolist() == [mapping.get(int(p), int(p)) for p in old["person_id"]]
        np.testing.assert_array_equal(npz["descriptors"], old["descriptors"])


@pytest.mark.slow
def test_nothing_of_the_persons_who_are_gone_remains(edited) -> None:
    from fervid.report.gallery import GALLERY_FILE
    from fervid.report.moments import MOMENT_FILE

    original, folder, (keep, other, dropped), _ = edited
    persons = _persons_after(original, keep, other, dropped)
    gallery = {p.name for p in (folder / "faces").iterdir()}
    assert {int(re.match(r"P(\d+)", n).group(1)) for n in gallery} == set(persons)
    assert all(GALLERY_FILE.match(n) for n in gallery)
    moments = pd.read_csv(folder / f"{STEM}.moments.csv")
    assert set(moments["person_id"]) <= set(persons)
    on_disk = {f"moments/{p.name}" for p in (folder / "moments").iterdir()} if (folder / "moments").is_dir() else set()
    assert on_disk == set(moments["image"]) and all(MOMENT_FILE.match(Path(n).name) for n in on_disk)
    before = pd.read_csv(original / f"{STEM}.moments.csv")
    assert set(before["person_id"]) & {keep, other}, "the merged persons had no moment: pick another pair"
    for emotion in set(before.loc[before["person_id"].isin([keep, other]), "emotion"]):
        best = before[before["person_id"].isin([keep, other]) & (before["emotion"] == emotion)]["p_smoothed"].max()
        row = moments[(moments["person_id"] == keep) & (moments["emotion"] == emotion)]
        assert row["p_smoothed"].tolist() == pytest.approx([best], abs=1e-6)  # the merged person's peak
    assert not list(folder.parent.glob(f".{STEM}*"))  # no temporary folder left beside it
    record = json.loads((folder / f"{STEM}.run.json").read_text())
    assert [(e["merge"], e["names"], e["drop"]) for e in record["edits"]] == [
        ([[f"P{keep}", f"P{other}"]], {}, [f"P{dropped}"]), ([], {f"P{keep}": "Ada"}, [])
    ]  # fmt: skip
    assert record["identity"]["persons"] == len(persons) and record["identity"]["names"] == {str(keep): "Ada"}
    assert sorted(record["outputs"]) == sorted(json.loads((original / f"{STEM}.run.json").read_text())["outputs"])
    assert fervid.load(folder).run["edits"] == record["edits"]  # complete: every output listed exists
    index = (folder.parent / "index.html").read_text()
    assert f'<th scope="row">{STEM}</th><td>video</td><td>{len(persons)}</td>' in index  # the corpus index too
    newest = max(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file())
    assert (folder / f"{STEM}.run.json").stat().st_mtime_ns == newest  # run.json is the last file written


@pytest.mark.slow
def test_elan_report_and_video_name_the_same_persons(edited) -> None:
    from pympi import Eaf

    original, folder, (keep, other, dropped), drawn = edited
    persons = _persons_after(original, keep, other, dropped)
    eaf = Eaf(str(folder / f"{STEM}.eaf"))
    labels, moods = [f"P{p}" for p in persons], [f"P{p} valence" for p in persons]  # a valence tier each
    assert sorted(eaf.get_tier_names()) == sorted([*labels, *moods, "Events"])  # --events' tier too
    assert eaf.tiers[f"P{keep}"][2]["PARTICIPANT"] == "Ada"
    assert eaf.tiers[f"P{keep} valence"][2]["PARTICIPANT"] == "Ada"
    assert eaf.get_annotation_data_for_tier(f"P{keep} valence")  # the merged person's valence runs
    page = (folder / f"{STEM}.report.html").read_text()
    record = json.loads((folder / f"{STEM}.run.json").read_text())
    for words in edits_in_words(record):
        assert html.escape(words) in page  # the report says what was edited...
        page = page.replace(html.escape(words), "")
    assert not re.search(rf"\bP({other}|{dropped})\b", page)  # ...and nowhere else names who is gone
    assert all(re.search(rf"\bP{p}\b", page) for p in persons) and "Ada" in page
    faces = pd.read_csv(folder / f"{STEM}.faces.csv")
    # the last edit drew the video again: every face's label is the table's person (or its track, when dropped)
    assert set(drawn) == set(range(int(json.loads((original / f"{STEM}.run.json").read_text())["frames_processed"])))
    for frame, rows in faces.groupby("frame"):
        expected = sorted(f"P{p} Ada" if p == keep else f"P{p}" if p >= 1 else f"#{t}"
                          for p, t in zip(rows["person_id"], rows["face_id"]))  # fmt: skip
        shown = sorted(re.match(r"(P\d+ Ada|P\d+|#\d+)", text).group(1) for text in drawn[frame])
        assert shown == expected, f"frame {frame}"


@pytest.mark.slow
def test_a_failure_midway_leaves_the_old_outputs_byte_for_byte(run_copy: Path, monkeypatch) -> None:
    keep, other, _ = _choice(run_copy)
    before = _snapshot(run_copy)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    # the ELAN file comes after the video, the tables, the plot, the gallery and the moments
    monkeypatch.setattr("fervid.report.sink.write_eaf", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        fervid.edit_persons(run_copy, merge=[(keep, other)], names={keep: "Ada"})
    assert _snapshot(run_copy) == before
    assert sorted(p.name for p in run_copy.parent.iterdir()) == [STEM]  # no temporary folder left


@pytest.mark.slow
def test_bad_edits_of_a_real_run_change_nothing(run_copy: Path) -> None:
    keep, other, _ = _choice(run_copy)
    faces = pd.read_csv(run_copy / f"{STEM}.faces.csv")
    frame = faces[faces["person_id"] == keep]["frame"].iloc[0]
    together = int(faces[(faces["frame"] == frame) & (faces["person_id"] >= 1) & (faces["person_id"] != keep)]
                   ["person_id"].iloc[0])  # fmt: skip
    (run_copy / "notes.txt").write_text("my coding notes")
    before = _snapshot(run_copy)
    cases = [
        (["--drop", "P99"], "no person P99 in this run"),
        (["--merge", f"P{keep},P{other}", "--drop", f"P{other}"], f"P{other} is both merged and dropped"),
        (["--merge", f"P{keep},P{together}"], "two faces in one frame cannot be one person"),
    ]
    for args, message in cases:
        code, output = _invoke(["persons", run_copy, *args])
        assert code == 2 and output.startswith("error: ") and message in output, output
        assert "\n" not in output.strip()
    record = json.loads((run_copy / f"{STEM}.run.json").read_text())
    record["events"]["path"] = str(run_copy.parent / "trials.csv")
    (run_copy / f"{STEM}.run.json").write_text(json.dumps(record))
    code, output = _invoke(["persons", run_copy, "--drop", f"P{other}"])
    assert code == 2 and "trials.csv: the run's --events file is gone" in output, output
    record["input"]["path"] = str(run_copy.parent / "moved.mp4")
    (run_copy / f"{STEM}.run.json").write_text(json.dumps(record))
    code, output = _invoke(["persons", run_copy, "--drop", f"P{other}"])
    assert code == 2 and "moved.mp4: the run's input is gone" in output, output
    assert {k: v for k, v in _snapshot(run_copy).items() if not k.endswith(".run.json")} == {
        k: v for k, v in before.items() if not k.endswith(".run.json")
    }
    assert sorted(p.name for p in run_copy.parent.iterdir()) == [STEM]


@pytest.mark.slow
def test_files_that_are_not_fervids_are_carried_over(run_copy: Path) -> None:
    _, other, _ = _choice(run_copy)
    (run_copy / "notes.txt").write_text("my coding notes")
    (run_copy / "coding").mkdir()
    (run_copy / "coding" / "rater1.eaf").write_text("<ANNOTATION_DOCUMENT/>")
    (run_copy / "faces" / "README.txt").write_text("P2 is the singer")  # inside a folder fervid writes
    fervid.edit_persons(run_copy, drop=[other])
    assert (run_copy / "notes.txt").read_text() == "my coding notes"
    assert (run_copy / "coding" / "rater1.eaf").read_text() == "<ANNOTATION_DOCUMENT/>"
    assert not (run_copy / "faces" / "README.txt").exists()  # faces/ is fervid's: written again from scratch
    assert not list((run_copy / "faces").glob(f"P{other}*"))


@pytest.mark.slow
def test_a_gallery_face_names_the_person_in_the_next_run(edited, tmp_path: Path) -> None:
    """``faces/P2.jpg`` seeds ``--people``: the next run of the clip names the same person with it."""
    original, folder, (keep, _, _), _ = edited
    people = tmp_path / "participants"
    people.mkdir()
    shutil.copy(folder / "faces" / f"P{keep}.jpg", people / "Ada.jpg")
    result = fervid.annotate(shared_path(HAMILTON), tmp_path / "next", device="cpu", people=str(people),
                             video=False, report=False, plots=False)  # fmt: skip
    named = result.faces.loc[result.faces["person"] == "Ada", ["frame", "x1", "y1"]].round(0)
    assert len(named), "nobody was named Ada"
    faces = pd.read_csv(original / f"{STEM}.faces.csv")
    seen = faces.loc[faces["person_id"] == keep, ["frame", "x1", "y1"]].round(0)  # the person before the merge
    assert len(seen.merge(named)) >= 0.8 * len(seen) and len(named.merge(seen)) >= 0.8 * len(named)
