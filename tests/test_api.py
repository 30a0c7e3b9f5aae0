"""The notebook API: fervid.annotate / stream / load, lazy import, same tables as the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _research_runs import WOLFGANG, wolfgang_smoothed
from conftest import shared_path

import fervid
from fervid import api, metadata
from fervid.columns import FACE_COLUMN_NAMES
from fervid.io.tables import timeline_columns
from fervid.smooth import SmoothedResult
from fervid.types import EMOTIONS

PS_COLS = [f"ps_{c}" for c in EMOTIONS]


def test_import_fervid_is_lazy_and_fast() -> None:
    code = "import sys, fervid; print(sorted(m for m in ('torch', 'pandas', 'av', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_annotate_stays_the_api_function_when_the_drawing_module_is_imported() -> None:
    import fervid.annotate  # noqa: F401  (the FrameAnnotator module of the same name)
    from fervid.annotate import FrameAnnotator

    assert fervid.annotate is api.annotate and callable(fervid.annotate)
    assert FrameAnnotator.__module__ == "fervid.annotate"
    assert {"annotate", "stream", "load", "summarize", "AnnotateResult"} <= set(dir(fervid))


def test_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(TypeError, match="unknown option.*colour.*valid:.*smooth"):
        api.options(colour="red")
    opts = api.options(smooth=0.5, start=1, end=2, format="both", video=False, det_size=0)
    assert (opts.classification.smooth, opts.input.start, opts.input.end, opts.output.format) == (0.5, 1, 2, "both")
    assert opts.output.video is False and opts.detection.det_size is None


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory: pytest.TempPathFactory) -> tuple[api.AnnotateResult, Path]:
    """1.5 s of WolfgangLanger at every 3rd frame, nothing written; the working folder is watched."""
    cwd = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        result = fervid.annotate(shared_path(WOLFGANG), device="cpu", end=1.5, every=3, smooth=0.4)
    return result, cwd


def test_in_memory_annotate_writes_nothing_and_returns_the_tables(in_memory: tuple[api.AnnotateResult, Path]) -> None:
    result, cwd = in_memory
    assert list(cwd.iterdir()) == [] and result.outputs == []
    assert list(result.faces.columns) == [
        *timeline_columns(EMOTIONS, with_file=False, with_person=True, data_columns=FACE_COLUMN_NAMES),
        *PS_COLS,
        "valence_s",  # issue 32: the valence of the smoothed probabilities
    ]
    assert result.summary["face_id"].tolist() == result.face_ids
    assert result.frames == 12 and result.classes == EMOTIONS
    assert result.run["options"]["smooth"] == 0.4 and "input" not in result.run  # completed on save


def test_save_then_load_round_trip(in_memory: tuple[api.AnnotateResult, Path], tmp_path: Path) -> None:
    result, _ = in_memory
    written = result.save(tmp_path / "clip")
    stem = result.stem
    top = {p.relative_to(tmp_path / "clip").parts[0] for p in written}
    report = {"faces", f"{stem}.faces.png", f"{stem}.moments.csv", f"{stem}.eaf", f"{stem}.report.html"}
    assert top - {"moments"} == {f"{stem}.faces.csv", f"{stem}.summary.csv", f"{stem}.persons.csv",
                                 f"{stem}.blinks.csv", f"{stem}.timeline.png", f"{stem}.codebook.csv",
                                 f"{stem}.run.json"} | report  # fmt: skip
    assert (tmp_path / "clip" / "faces" / "P1.jpg").stat().st_size > 0  # faces cut while the in-memory run streamed
    assert written[-1].name.endswith(".run.json") and metadata.is_complete(tmp_path / "clip", stem)
    assert result.run["frames_processed"] == 12 and result.run["input"]["width"] == 640
    loaded = fervid.load(tmp_path / "clip")
    pd.testing.assert_frame_equal(loaded.faces, result.faces, check_exact=False, rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(loaded.summary, result.summary, check_exact=False, rtol=1e-5, atol=1e-6)
    assert loaded.classes == EMOTIONS and loaded.frames == result.frames
    with pytest.raises(FileNotFoundError, match="no complete fervid run"):
        fervid.load(tmp_path / "clip", stem="nothing-here")


def test_annotate_with_output_writes_like_the_cli() -> None:
    result, outdir, _ = wolfgang_smoothed()
    names = {p.relative_to(outdir).parts[0] for p in result.outputs}
    stem = result.stem
    assert f"{stem}.annotated.mp4" in names and f"{stem}.faces.parquet" in names and f"{stem}.report.html" in names
    assert names == {p.name for p in outdir.iterdir()}
    assert metadata.is_complete(outdir, stem)


def test_stream_yields_every_frame_with_raw_and_smoothed_predictions(
    in_memory: tuple[api.AnnotateResult, Path],
) -> None:
    result, _ = in_memory
    frames = list(fervid.stream(shared_path(WOLFGANG), device="cpu", end=1.5, every=3, smooth=0.4))
    assert all(isinstance(f, SmoothedResult) for f in frames)
    assert [f.frame.index for f in frames] == list(range(0, 34, 3))
    times = np.concatenate([np.full(len(f.detections), f.frame.time_s) for f in frames])
    raw = np.concatenate([f.predictions.probs for f in frames])
    smoothed = np.concatenate([f.shown.probs for f in frames])
    # the weights may be re-written by training between the two runs: compare structure, and
    # values only against the stream's own table smoothing
    assert len(times) == len(result.faces)
    np.testing.assert_allclose(times, result.faces["time_s"])
    from fervid.smooth import smooth_probs

    ids = np.concatenate([f.detections.track_id for f in frames])
    np.testing.assert_allclose(smoothed, smooth_probs(times, ids, raw, 0.4, "centred"), rtol=1e-6, atol=1e-7)


def test_stream_can_stop_early() -> None:
    stream = fervid.stream(shared_path(WOLFGANG), device="cpu", every=10)
    first = next(stream)
    assert first.frame.index == 0 and first.smoothed is None and first.shown is first.predictions
    stream.close()  # the decode thread is joined; nothing hangs
