"""readable and p_correct through annotate: the columns, the shipped reliability file, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_path
from typer.testing import CliRunner

import fervid
from fervid.cli import app
from fervid.models.expression_weights import MANIFEST, load_expression_model, resolve_model, sha256_file
from fervid.options import ClassificationOptions
from fervid.reliability import load_reliability, reliability_path

SINGLE_FACE = "media/pyfeat/single_face.mp4"
STILL = "media/pyfeat/single_face.jpg"
#: The two networks ``ferplus-rule`` mixes, each usable alone (issue 31).
SINGLE_NETWORKS = ("ferplus", "fer2013")
QUICK = ["--no-video", "--no-plots", "--no-report", "--det-size", "320", "--end", "0.5"]


def _invoke(args: list) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, " ".join(result.output.split())


def test_the_default_model_ships_its_reliability_fitted_for_it() -> None:
    path = resolve_model(ClassificationOptions().model)
    reliability = load_reliability(path, sha256_file(path))
    assert set(reliability.minimum) >= {"face_px", "sharpness", "brightness", "contrast"}
    assert reliability.default_threshold == ClassificationOptions().min_p_correct
    assert reliability.info["fitted_on"]["realfaces"] > 250


def test_evaluate_judges_the_default_models_reliability_on_dataset_crops() -> None:
    """``fervid evaluate``'s figures for the reliability file on crops alone (pooled features from its own pass)."""
    import numpy as np

    from fervid.train.reliability_data import dataset_reliability, probs_and_embedding

    model = ClassificationOptions().model
    images = np.random.default_rng(0).integers(0, 256, (12, 48, 48), dtype=np.uint8)
    probs, _ = probs_and_embedding(model, images)
    correct = np.arange(12) % 3 > 0
    result = dataset_reliability(model, images, probs, correct)
    assert result is not None and result["n"] == 12 and 0.0 <= result["ece_p_correct"] <= 1.0


def test_annotate_gives_every_face_its_measurements_readable_and_p_correct() -> None:
    faces = fervid.annotate(shared_path(SINGLE_FACE), end=0.5, det_size=320).faces
    for column in ("readable", "p_correct", "face_px", "sharpness", "brightness", "contrast", "yaw", "roll"):
        assert column in faces and faces[column].notna().all(), column
    assert faces["readable"].dtype == bool and ((faces["p_correct"] >= 0) & (faces["p_correct"] <= 1)).all()
    assert faces["readable"].all()  # a large, lit, frontal face in focus
    assert (faces["face_px"] > 40).all() and (faces["yaw"].abs() < 30).all()


@pytest.mark.parametrize("value", ["1.5", "-0.1", "often"])
def test_a_threshold_outside_zero_to_one_is_a_usage_error(tmp_path: Path, value: str) -> None:
    code, output = _invoke(["annotate", shared_path(SINGLE_FACE), "-o", tmp_path / "out", "--min-p-correct", value])
    assert code == 2 and "min-p-correct" in output
    assert not (tmp_path / "out").exists()


def test_a_model_without_a_reliability_file_is_a_one_line_error_unless_the_filter_is_off(tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "mine.pt"  # a network with no reliability file beside it (every shipped one has its own)
    shutil.copy(resolve_model("fer2013"), model)
    code, output = _invoke(["annotate", shared_path(SINGLE_FACE), "-o", tmp_path / "out", "--model", model,
                            *QUICK])  # fmt: skip
    assert code == 2 and "mine.pt: no reliability model" in output and "--min-p-correct 0" in output
    assert "Traceback" not in output and not (tmp_path / "out").exists()
    code, _ = _invoke(["annotate", shared_path(SINGLE_FACE), "-o", tmp_path / "out", "--model", model,
                       "--min-p-correct", "0", *QUICK])  # fmt: skip
    assert code == 0


@pytest.mark.parametrize("name", SINGLE_NETWORKS)
def test_each_single_network_ships_its_reliability_fitted_for_it(name: str) -> None:
    """Issue 31's ``--model ferplus`` and ``--model fer2013`` work out of the box: each network's own file."""
    path = resolve_model(name)
    reliability = load_reliability(path, sha256_file(path))  # a WeightsError when missing or for another model
    assert reliability.model_sha256 == sha256_file(path)
    assert reliability.classes == load_expression_model(name, verify=False).config.classes
    assert set(reliability.minimum) >= {"face_px", "sharpness", "brightness", "contrast"}
    assert reliability.default_threshold == ClassificationOptions().min_p_correct
    assert reliability.info["fitted_on"]["realfaces"] > 250
    manifest = (path.parent / MANIFEST).read_text()
    assert f"{sha256_file(reliability_path(path))}  {reliability_path(path).name}\n" in manifest


@pytest.mark.parametrize("name", SINGLE_NETWORKS)
def test_each_single_network_annotates_a_still_with_the_default_threshold(tmp_path: Path, name: str) -> None:
    import pandas as pd

    code, output = _invoke(["annotate", shared_path(STILL), "-o", tmp_path / "out", "--model", name, "--no-video",
                            "--no-plots", "--no-report"])  # fmt: skip
    assert code == 0, output
    faces = pd.read_csv(tmp_path / "out" / "single_face" / "single_face.faces.csv")
    assert len(faces) >= 1 and faces["readable"].dtype == bool and faces["p_correct"].notna().all()
    assert ((faces["p_correct"] >= 0) & (faces["p_correct"] <= 1)).all()


def test_a_reliability_file_for_another_model_is_refused(tmp_path: Path) -> None:
    import shutil

    weights = resolve_model("ferplus")
    model = tmp_path / "mine.pt"
    shutil.copy(weights, model)
    shutil.copy(
        resolve_model("ferplus-rule").with_name("ferplus-rule.reliability.json"), tmp_path / "mine.reliability.json"
    )
    code, output = _invoke(["annotate", shared_path(SINGLE_FACE), "-o", tmp_path / "out", "--model", model, *QUICK])
    assert code == 2 and "fitted for another model" in output


@pytest.mark.slow
def test_hamilton_blurred_audience_is_not_trusted_and_the_clear_faces_are_readable() -> None:
    """Issue 30's Hamilton targets, by the benchmark's own matching of tracks to tests/data/hamilton_persons.csv:
    shot 2's blurred audience and the glass unreadable or below the threshold in at least 80 % of their frames;
    the singer and the four clear audience members of the last shot readable in at least 80 % of theirs."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from reliability import hamilton

    rows = hamilton(shared_path("").resolve(), ClassificationOptions().model, ClassificationOptions().min_p_correct)
    assert len(rows) == 11
    for row in rows:
        assert row["face_id"] is not None, row
        if row["should_be"] == "trusted":
            assert row["readable_share"] >= 0.8, row
        else:
            assert row["trusted_share"] <= 0.2, row
