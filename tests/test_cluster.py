"""``fervid annotate --ray``: a batch on a Ray cluster gives the local run's results.

The cluster is a local Ray instance with 2 CPUs (``ray.init(num_cpus=2)``, which the CLI
joins instead of starting its own); the inputs are short pieces of real clips from
../shared/media, cut into a tmp folder. Identity stays on (its persons tables are compared
too). Each test skips with the reason when Ray or ../shared is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _batch_corpus import encode, real_frames
from _interrupt import assert_stopped_by_ctrl_c, interrupt_when
from typer.testing import CliRunner

from fervid import metadata
from fervid.batch import BatchRunner, discover_inputs, run_batch
from fervid.cli import app
from fervid.cluster.worker import FAULT_ENV
from fervid.options import AnnotateOptions

CLIPS = {
    "single": "media/pyfeat/single_face.mp4",
    "wolfgang": "media/pyfeat/WolfgangLanger_Pexels.mp4",
    "hamilton": "media/face_recognition/short_hamilton_clip.mp4",
}
FAST = ["--no-video", "--no-plots", "--det-size", "320"]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local 2-CPU Ray for the module; yields the fault marker its workers watch (absent: no fault)."""
    ray = pytest.importorskip("ray", reason="needs Ray: pip install 'fervid[ray]' (the test extra brings it)")
    marker = tmp_path_factory.mktemp("fault") / "exit-after-frames"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FAULT_ENV, str(marker))  # the workers inherit it from the raylet started here
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        try:
            yield marker
        finally:
            ray.shutdown()


def _corpus(folder: Path, shared: type, frames: int, names: tuple[str, ...] = tuple(CLIPS)) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        encode(folder / f"{name}.mp4", real_frames(shared(CLIPS[name]), frames))
    return folder


def _run_cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def _error_labels(output: str) -> set[str]:
    return {line.split(": ")[1] for line in output.splitlines() if line.startswith("error: ")}


def _rows(output: str, out: Path) -> list[list[str]]:
    """The closing table's rows: input, status, frames, faces, output / reason (times and speeds differ)."""
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 7 and cells[0] != "input":
            rows.append([*cells[:4], cells[6].replace(str(out), "OUT")])
    return rows


def _leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if ".partial-" in p.name]


def test_cluster_run_matches_local_run(tmp_path: Path, shared: type, ray_cluster: Path) -> None:
    corpus = _corpus(tmp_path / "corpus", shared, frames=12)
    (corpus / "notes.mp4").write_text("meeting notes, not a video\n" * 20)
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    local_code, local_out = _run_cli(["annotate", str(corpus), "-o", str(local), *FAST])
    code, output = _run_cli(["annotate", str(corpus), "-o", str(cluster), *FAST, "--ray"])

    assert code == local_code == 1, output
    assert "Traceback" not in output
    assert "ray: 1 worker on 1 node" in output  # 2 CPUs, 4 per worker asked: one worker with both
    assert _error_labels(output) == _error_labels(local_out) == {"corpus/notes.mp4"}
    assert _rows(output, cluster) == _rows(local_out, local) and len(_rows(output, cluster)) == 4
    for stem in CLIPS:
        for table in ("faces", "summary", "persons"):
            expected = pd.read_csv(local / stem / f"{stem}.{table}.csv")
            got = pd.read_csv(cluster / stem / f"{stem}.{table}.csv")
            pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-4, atol=1e-5)
        record, reference = metadata.read_run(cluster / stem, stem), metadata.read_run(local / stem, stem)
        assert record["options"] == reference["options"] and record["input"] == reference["input"]
        assert record["environment"]["argv"] == reference["environment"]["argv"], "the driver's command, not Ray's"
    assert not (cluster / "notes").exists()
    assert _leftovers(cluster) == [] and not list(cluster.glob(".fervid-reach*"))

    # resume: complete inputs are skipped before anything is scheduled (no Ray workers even start)
    (corpus / "notes.mp4").unlink()
    finished = {p: p.stat().st_mtime_ns for p in cluster.rglob("*.run.json")}
    code, again = _run_cli(["annotate", str(corpus), "-o", str(cluster), *FAST, "--ray"])
    assert code == 0, again
    assert "ray:" not in again and again.count("skipped") >= 3
    assert {p: p.stat().st_mtime_ns for p in cluster.rglob("*.run.json")} == finished

    from fervid.cluster.executor import RayExecutor

    executor = RayExecutor(AnnotateOptions.from_flat(video=False, plots=False, det_size=320))
    report = run_batch(BatchRunner(None, cluster), discover_inputs([corpus]), executor=executor)
    assert executor.scheduled == 0 and [o.status.value for o in report.outcomes] == ["skipped"] * 3


def test_killed_worker_mid_input_is_retried(tmp_path: Path, shared: type, ray_cluster: Path) -> None:
    corpus = _corpus(tmp_path / "corpus", shared, frames=40, names=("single", "wolfgang"))
    out = tmp_path / "out"
    ray_cluster.write_text("12")  # the first worker to reach frame 12 of an input exits on the spot
    args = ["annotate", str(corpus), "-o", str(out), "--no-plots", "--det-size", "320", "--every", "2"]
    code, output = _run_cli([*args, "--ray", "--ray-cpus-per-worker", "1"])

    assert code == 0, output
    assert not ray_cluster.exists(), "the fault was never injected"
    assert "ray: 2 workers on 1 node" in output
    assert output.count("retried on another worker") == 1, output
    for stem in ("single", "wolfgang"):
        assert metadata.is_complete(out / stem, stem)
        assert json.loads((out / stem / f"{stem}.run.json").read_text())["frames_processed"] == 20
        assert (out / stem / f"{stem}.annotated.mp4").exists()
    assert _leftovers(out) == [], "the dead attempt's temporary files were removed"


def test_ctrl_c_stops_the_cluster_run_cleanly(tmp_path: Path, shared: type, ray_cluster: Path) -> None:
    """SIGINT to a driver that started its own local Ray: running inputs clean up, exit 130, resume redoes them.

    The clip is the real one played five times (360 frames): the stop reaches the worker through the driver's
    Ray calls, and a 72-frame input could finish in that time and be reported done (seen once in a full run).
    """
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    encode(corpus / "single.mp4", real_frames(shared(CLIPS["single"]), 72) * 5)
    out = tmp_path / "out"
    args = ["annotate", str(corpus), "-o", str(out), "--no-plots", "--det-size", "320", "--ray"]
    env = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, "RAY_ADDRESS")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from fervid.cli import app; app()", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    started = lambda: bool(list((out / "single").glob(".*.partial-*")))  # noqa: E731
    stdout, stderr = interrupt_when(proc, started, 150, "the input never started")
    assert_stopped_by_ctrl_c(proc, stdout, stderr)
    assert _leftovers(out) == [] and not (out / "single").exists()
