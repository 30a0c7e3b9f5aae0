"""Issue 32 end to end: the behaviour columns and files of a real run, --no-behaviour, --landmarks, a bad .dat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from typer.testing import CliRunner

from fervid.cli import app
from fervid.io.tables import LANDMARK_COLUMNS
from fervid.quality import landmark_measures

SINGLE_FACE = "media/pyfeat/single_face.mp4"  # 2.4 s, one frontal face
PHOTO = "media/pyfeat/single_face.jpg"
QUICK = ["--no-video", "--no-plots", "--no-report"]
BEHAVIOUR_COLUMNS = ["pitch", "pose_source", "eye_open_l", "eye_open_r", "mouth_open", "valence"]


def _invoke(args: list[object]) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, " ".join(result.output.split())


def _run(tmp_path: Path, name: str, *args: object, media: str = SINGLE_FACE) -> Path:
    out = tmp_path / name
    code, output = _invoke(["annotate", shared_path(media), "-o", out, *QUICK, *args])
    assert code == 0, output
    return out / Path(media).stem


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """single_face.mp4 with behaviour (and --landmarks) and with --no-behaviour."""
    tmp = tmp_path_factory.mktemp("behaviour")
    return {"on": _run(tmp, "on", "--landmarks", "--smooth", "0.5"), "off": _run(tmp, "off", "--no-behaviour")}


def _faces(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / f"{folder.name}.faces.csv")


def test_behaviour_columns_and_files(runs: dict[str, Path]) -> None:
    folder = runs["on"]
    faces = _faces(folder)
    assert set(BEHAVIOUR_COLUMNS) | {"yaw", "roll", "valence_s"} <= set(faces.columns)
    assert (faces["pose_source"].astype(str) == "68").mean() > 0.9  # a frontal face: the 68-point fit
    assert faces["yaw"].abs().max() < 30 and faces["roll"].abs().max() < 20
    assert faces["eye_open_l"].between(0.12, 0.5).mean() > 0.8
    assert faces["valence"].between(-1, 1).all()
    blinks = pd.read_csv(folder / f"{folder.name}.blinks.csv")
    assert blinks.columns.tolist() == ["face_id", "person_id", "start_s", "end_s", "duration_s"]
    for table in ("summary", "persons"):
        summary = pd.read_csv(folder / f"{folder.name}.{table}.csv")
        assert summary.columns[-2:].tolist() == ["blinks_per_min", "mean_valence"]
        assert summary["mean_valence"].between(-1, 1).all() and (summary["blinks_per_min"] >= 0).all()


def test_readable_and_p_correct_still_read_the_five_point_angles(runs: dict[str, Path]) -> None:
    """The reliability model was fitted on the five-point yaw and roll: the behaviour step must not change them."""
    on, off = _faces(runs["on"]), _faces(runs["off"])
    assert len(on) == len(off)
    assert on["readable"].tolist() == off["readable"].tolist()
    np.testing.assert_allclose(on["p_correct"], off["p_correct"], rtol=1e-6)


def test_no_behaviour_keeps_the_five_point_angles_and_adds_nothing(runs: dict[str, Path]) -> None:
    folder = runs["off"]
    faces = _faces(folder)
    assert not set(BEHAVIOUR_COLUMNS) & set(faces.columns)
    five = landmark_measures(faces[list(LANDMARK_COLUMNS)].to_numpy(np.float32).reshape(-1, 5, 2))
    np.testing.assert_allclose(faces["yaw"], five["yaw"], atol=0.01)  # the CSV keeps 6 digits of the landmarks
    np.testing.assert_allclose(faces["roll"], five["roll"], atol=0.01)
    assert not list(folder.glob("*.blinks.*")) and not list(folder.glob("*.landmarks.*"))
    summary = pd.read_csv(folder / f"{folder.name}.summary.csv")
    assert "blinks_per_min" not in summary and "mean_valence" not in summary


def test_landmarks_file_has_68_points_per_face(runs: dict[str, Path]) -> None:
    folder = runs["on"]
    faces = _faces(folder)
    points = pd.read_parquet(folder / f"{folder.name}.landmarks.parquet")
    assert points.columns[:3].tolist() == ["frame", "time_s", "face_id"] and points.shape[1] == 3 + 136
    assert points[["frame", "face_id"]].values.tolist() == faces[["frame", "face_id"]].values.tolist()
    xs, ys = points.filter(regex=r"^pt\d+_x$").to_numpy(), points.filter(regex=r"^pt\d+_y$").to_numpy()
    margin = 0.25 * (faces["x2"] - faces["x1"]).to_numpy()[:, None]
    inside = (xs > faces[["x1"]].to_numpy() - margin) & (xs < faces[["x2"]].to_numpy() + margin)
    inside &= (ys > faces[["y1"]].to_numpy() - margin) & (ys < faces[["y2"]].to_numpy() + margin)
    assert inside.mean() > 0.95
    assert not list(folder.glob(".*partial*"))


def test_photos_get_pose_and_valence_but_no_blinks(tmp_path: Path) -> None:
    folder = _run(tmp_path, "photo", media=PHOTO)
    faces = pd.read_csv(next(folder.parent.rglob("*.faces.csv")))
    assert faces["pose_source"].astype(str).tolist() == ["68"]
    assert abs(faces["yaw"].iloc[0]) < 20 and abs(faces["roll"].iloc[0]) < 15
    assert 0.15 < faces["eye_open_l"].iloc[0] < 0.45 and 0.15 < faces["eye_open_r"].iloc[0] < 0.45
    assert not list(folder.parent.rglob("*.blinks.*"))


def test_landmarks_needs_behaviour(tmp_path: Path) -> None:
    code, output = _invoke(["annotate", shared_path(SINGLE_FACE), "-o", tmp_path / "out", "--no-behaviour",
                            "--landmarks"])  # fmt: skip
    assert code == 2 and "--landmarks needs the behaviour stage (drop --no-behaviour)" in output, output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [None, b"not a dlib model\n"])
def test_a_missing_or_corrupt_shape_predictor_is_a_one_line_error(tmp_path: Path, content: bytes | None) -> None:
    dat = tmp_path / "shape.dat"
    if content is not None:
        dat.write_bytes(content)
    code, output = _invoke(["annotate", shared_path(SINGLE_FACE), "-o", tmp_path / "out", *QUICK,
                            "--shape-predictor", dat])  # fmt: skip
    assert code == 2, output
    assert output.startswith("error: ") and str(dat) in output and "Traceback" not in output, output
    assert not (tmp_path / "out").exists()


def test_pose_source_reasons_recompute_the_tables_choice(runs: dict[str, Path], capsys) -> None:
    """scripts/pose_source_reasons.py (the docs' counts of the two cases behind `5`) gives each face the run's own
    pose_source from the landmarks file, and counts every face once."""
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts"
    sys.path.insert(0, str(script))
    try:
        import pose_source_reasons
    finally:
        sys.path.remove(str(script))
    folder = runs["on"]
    assert pose_source_reasons.main([str(folder)]) == 0
    output = capsys.readouterr().out
    printed = dict(line.strip().split(": ", 1) for line in output.splitlines() if ": " in line)
    faces = _faces(folder)
    counts = faces["pose_source"].astype(str).value_counts()
    assert int(printed["faces"]) == len(faces) == sum(int(printed[k]) for k in ("68", "5", "none"))
    assert int(printed["68"]) == counts.get("68", 0) and int(printed["5"]) == counts.get("5", 0)
    assert int(printed["5"]) == int(printed["5 turned too far"]) + int(printed["5 fit rejected (not turned)"])
    assert f"equals the table's on {len(faces)} of {len(faces)} faces" in output
