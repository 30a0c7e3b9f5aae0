"""CI smoke test: ``benchmarks/throughput.py`` runs end to end on a few frames and prints its table.

No timing assertions: CI machines are shared and noisy. Only that every stage ran (or,
for the Haar baseline, said why it could not) and that ``--results`` appends a section.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path

from fervid.models.expression_weights import ExpressionConfig, save_weights
from fervid.train.data import FER2013_CLASSES, FERPLUS_CLASSES
from fervid.types import EMOTIONS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"


def test_throughput_script_prints_the_table(tmp_path: Path) -> None:
    video = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    config = ExpressionConfig(classes=EMOTIONS, widths=(24, 48, 96, 192))
    save_weights(tmp_path / "model.pt", config.build().eval(), config)  # the shipped weights may be training
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(video), "--frames", "12", "--repeats", "1", "--device", "cpu",
         "--long", "--long-minutes", "0.1", "--model", str(tmp_path / "model.pt"), "--results", str(results)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    rows = ["(1) decode only", "(2) fervid timeline only", "(3) fervid full annotate", "(4) classic"]
    rows += ["(5) timeline only, clip looped x1", "(6) full annotate (+ H.264), clip looped x1"]
    rows += ["(2)/(1) timeline-only vs decode", "(3)/(1) full annotate vs decode"]
    for row in rows:
        assert row in out, out
    assert "first 12 frames" in out
    text = results.read_text()
    assert text.startswith("# Throughput results")
    assert "| (2) fervid timeline only (--detect-every 1: default) | 12 |" in text
    assert "Machine:" in text and f"torch {torch.__version__}" in text


def test_throughput_without_identity_needs_no_face_recognition_weights(tmp_path: Path) -> None:
    """``--no-identity --no-behaviour`` (for a borrowed GPU machine without dlib's weights: identity's ResNet and the
    behaviour measures' 68-point model come from that package) runs with the package unimportable."""
    video = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    config = ExpressionConfig(classes=EMOTIONS, widths=(24, 48, 96, 192))
    save_weights(tmp_path / "model.pt", config.build().eval(), config)
    blocked = ("import runpy, sys; sys.modules['face_recognition_models'] = None; "
               f"sys.argv = sys.argv[1:]; runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", blocked, str(SCRIPT), str(video), "--frames", "12", "--repeats", "1", "--device", "cpu",
         "--no-baseline", "--no-identity", "--no-behaviour", "--model", str(tmp_path / "model.pt")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no person identity" in done.stdout and "(2) fervid timeline only" in done.stdout
    assert "(2')" not in done.stdout and "Identity cost" not in done.stdout
    assert "(2'')" not in done.stdout and "Behaviour cost" not in done.stdout


def test_long_input_is_a_longer_file(tmp_path: Path) -> None:
    """The ``--long`` input: the clip's packets remuxed with increasing timestamps."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import throughput
    finally:
        sys.path.remove(str(SCRIPT.parent))
    from fervid.io.video import VideoReader

    video = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    looped = tmp_path / "looped.mp4"
    loops = throughput.loop_video(video, looped, 45.0)
    assert loops == 3  # 19.7 s per pass
    with VideoReader(looped) as reader:
        times = [f.time_s for f in reader]
    assert len(times) == 3 * 472
    assert all(b > a for a, b in zip(times, times[1:]))
    assert times[-1] > 45.0


def test_alignment_benchmark_prints_both_framings(tmp_path: Path) -> None:
    """``benchmarks/alignment.py`` on 40 FER+ validation faces: both framings and the dataset's own crops."""
    shared = shared_path("data/ferplus/FER2013Valid.zip").parents[2]
    config = ExpressionConfig(classes=FERPLUS_CLASSES, widths=(8, 8, 16, 16))
    save_weights(tmp_path / "model.pt", config.build().eval(), config)
    done = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "alignment.py"), "--shared", str(shared), "--limit", "40",
         "--model", str(tmp_path / "model.pt"), "--threads", "1"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for row in ("as is", "landmarks", "box", "box, size by head turn", "of 40 faces found", "box template centre"):
        assert row in done.stdout, done.stdout
    fer2013_model = tmp_path / "fer2013.pt"
    config = ExpressionConfig(classes=FER2013_CLASSES, widths=(8, 8, 16, 16))
    save_weights(fer2013_model, config.build().eval(), config)
    done = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "alignment.py"), "--shared", str(shared), "--limit", "5",
         "--model", str(fer2013_model)], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1 and "classes" in done.stderr and "Traceback" not in done.stderr


def test_ensemble_benchmark_scores_each_model_and_their_mean(tmp_path: Path) -> None:
    """``benchmarks/ensemble.py`` on 40 FER+ validation faces; a model of other classes is a one-line error."""
    shared = shared_path("data/ferplus/FER2013Valid.zip").parents[2]
    paths = []
    for seed, classes in ((0, FERPLUS_CLASSES), (1, FERPLUS_CLASSES), (2, FER2013_CLASSES)):
        torch.manual_seed(seed)
        config = ExpressionConfig(classes=classes, widths=(8, 8, 16, 16))
        paths.append(tmp_path / f"model{seed}.pt")
        save_weights(paths[-1], config.build().eval(), config)
    script = [sys.executable, str(SCRIPT.parent / "ensemble.py"), "--shared", str(shared), "--limit", "40"]
    done = subprocess.run([*script, "--models", str(paths[0]), str(paths[1])], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ferplus validation, 40 faces" in done.stdout
    for row in (f"| {paths[0]} |", f"| {paths[1]} |", "| mean of all |", "top-1 agreement"):
        assert row in done.stdout, done.stdout
    done = subprocess.run([*script, "--models", str(paths[0]), str(paths[2])], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 1 and "are not ferplus's" in done.stderr and "Traceback" not in done.stderr
    assert "mean of all" not in done.stdout


def test_box_size_by_turn_follows_the_turned_faces_boxes() -> None:
    """The turn-dependent size is each turn bin's median box size, interpolated between the bins' median turns."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import alignment
    finally:
        sys.path.remove(str(SCRIPT.parent))
    turn = np.array([0.05, 0.05, 0.05, 0.2, 0.2, 0.55, 0.6, 0.75], dtype=np.float32)
    side = np.array([43, 44, 42, 41, 41, 37, 38, 36], dtype=np.float32)
    boxes = np.stack([np.zeros(8), np.zeros(8), side, side], axis=1).astype(np.float32)
    sizes = alignment.box_size_by_turn(boxes, turn)
    # bins' medians: 43 at turn 0.05, 41 at 0.2, 37 at 0.6; 0.55 lies between the last two, 0.75 past the last
    np.testing.assert_allclose(sizes, [43, 43, 43, 41, 41, 37.5, 37, 37], atol=1e-5)


def test_readability_counts_accuracy_on_the_classes_the_model_names() -> None:
    """A seven-class model (fer2013) swept on FER+ validation: its contempt faces are left out, not an error."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import readability
    finally:
        sys.path.remove(str(SCRIPT.parent))

    def one_hot(classes: tuple[str, ...], names: tuple[str, ...]) -> np.ndarray:
        return np.eye(len(classes))[[classes.index(c) for c in names]]

    labels = np.array([FERPLUS_CLASSES.index(c) for c in ("happy", "contempt", "sad", "contempt", "neutral")])
    probs = one_hot(FER2013_CLASSES, ("happy", "angry", "fear", "sad", "neutral"))
    # right on happy and neutral, wrong on sad; the two contempt faces are not counted
    assert readability._accuracy(labels, probs, FER2013_CLASSES, FERPLUS_CLASSES) == 2 / 3
    eight = one_hot(FERPLUS_CLASSES, ("happy", "angry", "sad", "contempt", "happy"))
    assert readability._accuracy(labels, eight, FERPLUS_CLASSES, FERPLUS_CLASSES) == 3 / 5  # every face counted
    assert np.isnan(readability._accuracy(labels[[1, 3]], probs[[1, 3]], FER2013_CLASSES, FERPLUS_CLASSES))


def test_readability_sweep_writes_curves_and_limits(tmp_path: Path) -> None:
    """benchmarks/readability.py on a few FER+ validation faces: every condition swept, limits and a plot."""
    import json

    shared_path("data/ferplus/FER2013Valid.zip")
    script = SCRIPT.parent / "readability.py"
    out = tmp_path / "readability.json"
    done = subprocess.run(
        [sys.executable, str(script), "--shared", str(shared_path("")), "--limit", "40", "--json", str(out),
         "--plot", str(tmp_path / "curves.png"), "--cache", str(tmp_path / "landmarks.npz")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["curves"]) == {"darkness", "blur", "small face", "head turn", "synthetic turn"}
    assert set(result["limits"]) == {"contrast", "brightness", "sharpness", "face_px", "abs_yaw", "abs_yaw_synthetic"}
    blur = result["curves"]["blur"]
    assert blur[0]["accuracy"] >= blur[-1]["accuracy"] and blur[0]["sharpness"] > blur[-1]["sharpness"]
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_reliability_benchmark_judges_each_set_and_writes_the_card_figures(tmp_path: Path) -> None:
    """benchmarks/reliability.py on 12 faces of FER+ test and of the real-footage set: every judged set's figures,
    coverage and accuracy at each --min-p-correct (0 keeps every face), and the risk-coverage plot."""
    import json

    shared_path("data/ferplus/FER2013Test.zip")
    shared_path("reference/sample.jpg")  # the first labelled real faces
    out = tmp_path / "reliability.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "reliability.py"), "--shared", str(shared_path("")), "--limit", "12",
         "--skip", "hamilton", "--cache", str(tmp_path / "landmarks.npz"), "--json", str(out),
         "--plot", str(tmp_path / "curves.png")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert {"real footage", "FER+ test, clean", "FER+ test, conditions"} <= set(result) and "hamilton" not in result
    for name in ("real footage", "FER+ test, clean", "FER+ test, conditions"):
        figures = result[name]
        assert figures["n"] == 12 and 0.0 <= figures["ece_p_correct"] <= 1.0, name
        rows = figures["by_threshold"]
        assert [r["threshold"] for r in rows] == [0.0, 0.5, 0.7, 0.9]
        assert rows[0]["coverage"] == 1.0 and rows[0]["accuracy"] == pytest.approx(figures["accuracy"])
        assert rows[1]["coverage"] == pytest.approx(figures["trusted_share"])
        assert all(a["coverage"] >= b["coverage"] for a, b in zip(rows, rows[1:])), name
    assert "--min-p-correct" in done.stdout and (tmp_path / "curves.png").stat().st_size > 0


def test_reliability_cost_prints_both_runs_and_the_measuring_alone() -> None:
    clip = shared_path("media/pyfeat/single_face.mp4")
    done = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "reliability_cost.py"), str(clip), "--repeats", "1"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for text in ("with measurements, readable and p_correct", "without (baseline)", "the measuring alone"):
        assert text in done.stdout


def test_stage_costs_lists_every_stage_of_the_pipeline(tmp_path: Path) -> None:
    """benchmarks/stage_costs.py (issue 33's "measure first") times every stage a default run has, behaviour and
    identity included, and appends its table with ``--results``."""
    script = SCRIPT.with_name("stage_costs.py")
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(script), str(shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")), "--frames", "8",
         "--repeats", "1", "--results", str(results)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    stages = [line.split(" | ")[0].strip("| *") for line in results.read_text().splitlines() if line.startswith("| ")]
    expected = (
        "decode + RGB",
        "detect, batch 4",
        "track + shot-cut check",
        "identity (",
        "crops (",
        "classifier network",
        "behaviour (68 landmarks",
        "draw (",
        "encode H.264",
        "sum, timeline only",
    )
    for stage in expected:
        assert any(s.startswith(stage) for s in stages), (stage, stages)
