"""Person identity: one person_id per real person across cuts and exits, names from --people, never two in one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _identity_media import a_b_a_clip
from conftest import SHARED, shared_path
from PIL import Image
from typer.testing import CliRunner

import fervid
from fervid.cli import app
from fervid.geometry import box_iou_np
from fervid.identity.persons import Person, PersonRegistry, TrackFaces, cluster_persons
from fervid.identity.stage import MIN_FACE_PX

HAMILTON = "media/face_recognition/short_hamilton_clip.mp4"
LABELS = Path(__file__).parent / "data" / "hamilton_persons.csv"


# ------------------------------------------------------------------------------ grouping rules
def _track(track_id: int, first: int, last: int, *descriptors: list[float]) -> TrackFaces:
    return TrackFaces(track_id, first, last, float(first), [np.array(d, dtype=np.float32) for d in descriptors])


def test_tracks_on_screen_together_are_never_one_person() -> None:
    registry = PersonRegistry(threshold=0.5)
    a = registry.assign(_track(1, 0, 10, [0.0, 0.0]))
    b = registry.assign(_track(2, 5, 15, [0.0, 0.0]))  # identical face, same frames: a twin, not a repeat
    assert a.person_id != b.person_id
    c = registry.assign(_track(3, 20, 30, [0.1, 0.0]))  # after both ended: joins the nearest
    assert c.person_id == a.person_id


def test_complete_linkage_does_not_chain_look_alikes() -> None:
    """A near B near C, A far from C: never one person (single linkage would merge all three)."""
    persons = [Person(i + 1, [_track(i + 1, 10 * i, 10 * i + 5, [0.4 * i, 0.0])]) for i in range(3)]
    merged = cluster_persons(persons, threshold=0.5)
    groups = sorted(sorted(t.track_id for t in p.tracks) for p in merged)
    assert groups in ([[1, 2], [3]], [[1], [2, 3]])


def test_tracks_without_descriptors_stay_alone_and_unnamed() -> None:
    registry = PersonRegistry(threshold=0.5, known={"ada": np.zeros(2, dtype=np.float32)})
    blurred = registry.assign(_track(1, 0, 5))
    sharp = registry.assign(_track(2, 10, 15, [0.0, 0.0]))
    assert blurred.person_id != sharp.person_id and blurred.name is None and sharp.name == "ada"
    assert len(cluster_persons(registry.persons, 0.5)) == 2


def test_a_name_goes_to_one_of_the_people_on_screen_together() -> None:
    registry = PersonRegistry(threshold=0.5, known={"ada": np.zeros(2, dtype=np.float32)})
    first = registry.assign(_track(1, 0, 10, [0.1, 0.0]))
    second = registry.assign(_track(2, 0, 10, [0.2, 0.0]))
    assert (first.name, second.name) == ("ada", None)


# ------------------------------------------------------------------------------ real media
def test_a_b_a_clip_gives_two_persons_and_the_first_comes_back(tmp_path: Path) -> None:
    shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    clip = a_b_a_clip(SHARED, tmp_path / "aba.mp4")
    result = fervid.annotate(clip, device="cpu", video=False, plots=False)
    faces = result.faces
    segment = np.select([faces["frame"] < 150, faces["frame"] < 222], [1, 2], 3)
    persons = {s: set(faces.loc[segment == s, "person_id"]) for s in (1, 2, 3)}
    assert all(len(p) == 1 for p in persons.values()), persons
    assert persons[1] == persons[3] != persons[2]
    assert faces["person_id"].nunique() == 2 and len(result.persons) == 2
    assert faces["face_id"].nunique() == 3  # three tracks (the cuts end them), two persons


def _labelled_tracks(faces: pd.DataFrame) -> pd.DataFrame:
    """Each track of the run with the person a human gave it (tests/data/hamilton_persons.csv), by first box."""
    labels = pd.read_csv(LABELS)
    rows = []
    for face_id, track in faces.groupby("face_id"):
        first = track.sort_values("frame").iloc[0]
        near = labels[(labels["first_frame"] - first["frame"]).abs() <= 2]
        person = None
        if len(near):
            iou = box_iou_np(near[["x1", "y1", "x2", "y2"]].to_numpy(), first[["x1", "y1", "x2", "y2"]].to_numpy(float))
            if iou.max() > 0.5:
                person = near.iloc[int(iou[:, 0].argmax())]["person"]
        height = float((track["y2"] - track["y1"]).median())
        rows.append((face_id, int(track["person_id"].iloc[0]), person, height))
    return pd.DataFrame(rows, columns=["face_id", "person_id", "label", "height"])


@pytest.fixture(scope="module")
def hamilton() -> pd.DataFrame:
    result = fervid.annotate(shared_path(HAMILTON), device="cpu", video=False, plots=False)
    return _labelled_tracks(result.faces)


def test_hamilton_each_person_across_shots_is_one_person_id(hamilton: pd.DataFrame) -> None:
    """The singer (wide shot, then close-up) and the pianist (two close profiles) keep one ID each.

    Faces under MIN_FACE_PX (the pianist in the wide shot, 32 px) cannot be compared and stay alone.
    """
    comparable = hamilton[hamilton["height"] >= MIN_FACE_PX]
    for name in ("singer", "pianist"):
        ids = set(comparable.loc[comparable["label"] == name, "person_id"])
        tracks = comparable.loc[comparable["label"] == name, "face_id"].tolist()
        assert len(tracks) >= 2 and len(ids) == 1, (name, tracks, ids)


def test_hamilton_no_person_id_covers_two_real_persons(hamilton: pd.DataFrame) -> None:
    known = hamilton[hamilton["label"].notna() & (hamilton["label"] != "?")]
    assert known["label"].nunique() >= 9
    for person_id, group in known.groupby("person_id"):
        assert group["label"].nunique() == 1, (person_id, group["label"].tolist())


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """--people photos of Obama and Biden, each cut from two_people.jpg (Obama left, Biden right)."""
    photo = Image.open(shared_path("media/face_recognition/two_people.jpg"))
    folder = tmp_path_factory.mktemp("people")
    half = photo.width // 2
    photo.crop((0, 0, half, photo.height)).save(folder / "obama.jpg")
    (folder / "biden").mkdir()  # a subfolder of photos works too
    photo.crop((half, 0, photo.width, photo.height)).save(folder / "biden" / "1.jpg")
    return folder


def test_people_name_both_in_another_photo(people: Path, tmp_path: Path) -> None:
    photo = shared_path("media/face_recognition/obama_and_biden.jpg")
    args = ["annotate", str(photo), "-o", str(tmp_path), "--people", str(people), "--no-video"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    faces = pd.read_csv(tmp_path / photo.stem / f"{photo.stem}.faces.csv", keep_default_na=False)
    big = faces.assign(height=faces["y2"] - faces["y1"]).nlargest(2, "height").sort_values("x1")
    assert big["person"].tolist() == ["biden", "obama"]  # Biden stands left in this photo
    assert set(faces["person"]) - {"biden", "obama"} <= {""}  # everyone else (a child) stays unnamed
    persons = pd.read_csv(tmp_path / photo.stem / f"{photo.stem}.persons.csv", keep_default_na=False)
    assert {"biden", "obama"} <= set(persons["person"])


def test_people_folder_without_faces_is_a_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "people"
    folder.mkdir()
    Image.new("RGB", (200, 200), (90, 120, 150)).save(folder / "nobody.jpg")
    clip = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    result = CliRunner().invoke(app, ["annotate", str(clip), "-o", str(tmp_path / "out"), "--people", str(folder)])
    assert result.exit_code == 2
    assert "no usable face in any photo" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / clip.stem).exists()


def test_no_identity_leaves_the_old_tables(tmp_path: Path) -> None:
    clip = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    result = fervid.annotate(clip, tmp_path, device="cpu", end=1.0, identity=False, video=False, plots=False)
    assert "person_id" not in result.faces and result.persons is None
    assert not (tmp_path / clip.stem / f"{clip.stem}.persons.csv").exists()
    assert "identity" not in result.run and "identity" not in result.run["models"]


def test_embeddings_are_written_only_when_asked(tmp_path: Path) -> None:
    clip = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    plain = fervid.annotate(clip, tmp_path / "a", device="cpu", end=2.0, video=False, plots=False)
    assert not any(p.suffix == ".npz" for p in plain.outputs)
    saved = fervid.annotate(clip, tmp_path / "b", device="cpu", end=2.0, video=False, plots=False,
                            save_embeddings=True)  # fmt: skip
    with np.load(tmp_path / "b" / clip.stem / f"{clip.stem}.embeddings.npz") as npz:
        assert npz["descriptors"].shape[1] == 128 and npz["face_id"].tolist() == [1]
        assert npz["descriptors"].shape[0] == npz["descriptor_count"].sum() >= 1
    assert saved.run["identity"]["threshold"] == 0.5 and len(saved.run["models"]["identity"]["sha256"]) == 64


def test_the_identity_docstring_states_the_threshold_in_use() -> None:
    """The package docstring once said 0.6 (dlib's threshold) while the default was 0.5."""
    import fervid.identity
    from fervid.options import IdentityOptions

    default = IdentityOptions().identity_threshold
    assert f"default {default:g}," in " ".join((fervid.identity.__doc__ or "").split())
