"""Batch runs: input discovery, per-input outcomes, resume, clean interruption, damaged and awkward media.

The unit tests use a fake pipeline (no models) and tiny synthetic media; the end-to-end
tests run the real ``fervid annotate`` on a corpus built from ../shared/media.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from _batch_corpus import PHOTO_NAMES, build_corpus, encode, flip_packet, real_frames
from _interrupt import assert_stopped_by_ctrl_c, interrupt_when
from _io_media import make_clip
from PIL import Image
from typer.testing import CliRunner

from fervid import metadata
from fervid.batch import (
    BatchInput,
    BatchRunner,
    Interrupted,
    OutputDirError,
    Status,
    assign_stems,
    check_output_dir,
    discover_inputs,
    run_batch,
    stop_on_signals,
    unique_stems,
)
from fervid.cli import app
from fervid.io.errors import InputError
from fervid.io.video import VideoReader
from fervid.options import AnnotateOptions

# ------------------------------------------------------------------------------ stems


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], []),
        (["a.mp4", "b.mp4"], ["a", "b"]),
        (["a.mp4", "a.mov", "a.mkv"], ["a", "a-2", "a-3"]),
        (["Clip.mp4", "clip.mov"], ["Clip", "clip-2"]),  # one folder on case-insensitive disks
        (["a.mp4", "a.mov", "a-2.mp4"], ["a", "a-2", "a-2-2"]),  # a real "a-2" is not overwritten
    ],
)
def test_unique_stems(names: list[str], expected: list[str], tmp_path: Path) -> None:
    assert unique_stems([tmp_path / n for n in names]) == expected


def test_stems_do_not_depend_on_argument_order(tmp_path: Path) -> None:
    a, b = tmp_path / "x" / "clip.mp4", tmp_path / "y" / "clip.mp4"
    forward = assign_stems([BatchInput(a, "file", "a"), BatchInput(b, "file", "b")])
    backward = assign_stems([BatchInput(b, "file", "b"), BatchInput(a, "file", "a")])
    assert {i.source: i.stem for i in forward} == {i.source: i.stem for i in backward} == {a: "clip", b: "clip-2"}


# -------------------------------------------------------------------------- discovery


def _image(path: Path) -> Path:
    Image.new("RGB", (32, 24), (120, 60, 30)).save(path)
    return path


def _labels(items: Sequence[BatchInput]) -> list[str]:
    return [i.label for i in items]


def test_image_folder_stays_one_input(tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    _image(folder / "b.png")
    _image(folder / "a.jpg")
    (folder / "junk.jpg").write_text("not an image")  # skipped later, by the image reader
    items = discover_inputs([folder])
    assert [(i.label, i.kind, i.images, i.stem) for i in items] == [("shots/", "images", None, "shots")]


def test_folder_with_videos_is_a_batch(tmp_path: Path) -> None:
    folder = tmp_path / "day1"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    make_clip(folder / "clip10.mp4", [0, 0.04])
    make_clip(folder / "clip2.mp4", [0, 0.04]).rename(folder / "clip2.dat")  # a video by content, not name
    _image(folder / "still.png")
    (folder / "notes.mp4").write_text("text")  # neither: its own input, which will fail
    (folder / "empty.mov").write_bytes(b"")
    make_clip(folder / ".trash.mp4", [0])  # hidden: ignored
    make_clip(folder / "sub" / "deep.mp4", [0])
    make_clip(folder / ".hidden" / "x.mp4", [0])

    items = discover_inputs([folder])
    assert _labels(items) == [
        "day1/clip2.dat", "day1/clip10.mp4", "day1/empty.mov", "day1/notes.mp4", "day1/ (images)",
    ]  # fmt: skip
    loose = items[-1]
    assert loose.kind == "images" and loose.images == (folder / "still.png",) and loose.stem == "day1"
    assert _labels(discover_inputs([folder], recursive=True))[-1] == "day1/sub/deep.mp4"


def test_recursive_skips_the_output_folder_and_duplicates(tmp_path: Path) -> None:
    make_clip(tmp_path / "a.mp4", [0])
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    make_clip(out / "a" / "a.annotated.mp4", [0])
    items = discover_inputs([tmp_path, tmp_path / "a.mp4"], recursive=True, exclude=[out])
    assert [i.source for i in items] == [tmp_path / "a.mp4"]


@pytest.mark.parametrize(("recursive", "hint"), [(False, "add --recursive"), (True, "")])
def test_folder_with_nothing_usable_fails_with_a_hint(tmp_path: Path, recursive: bool, hint: str) -> None:
    (tmp_path / "top" / "empty-sub").mkdir(parents=True)
    [item] = discover_inputs([tmp_path / "top"], recursive=recursive)
    assert item.problem is not None and item.problem.startswith("no media files found")
    assert hint in item.problem


# -------------------------------------------------------------------------- output dir


def test_output_dir_is_created_and_probe_removed(tmp_path: Path) -> None:
    check_output_dir(tmp_path / "a" / "b")
    assert list((tmp_path / "a" / "b").iterdir()) == []


@pytest.mark.parametrize("kind", ["file", "under_file"])
def test_output_dir_problems_are_clear(tmp_path: Path, kind: str) -> None:
    (tmp_path / "f").write_text("x")
    target = tmp_path / "f" if kind == "file" else tmp_path / "f" / "out"
    with pytest.raises(OutputDirError, match="f"):
        check_output_dir(target)


def test_output_dir_low_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(OutputDirError, match="MiB free"):
        check_output_dir(tmp_path)


def test_cli_output_dir_problem_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    result = CliRunner().invoke(app, ["annotate", str(tmp_path), "-o", str(tmp_path / "taken")])
    assert result.exit_code == 2
    assert "exists and is not a folder" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------- runner (fake pipeline)


@dataclass
class _Result:
    frames: int = 1
    seconds: float = 0.1
    faces: int = 0
    warning: str | None = None


class FakePipeline:
    """Writes one output and a run record like the real one; ``behaviour`` maps a file name to a failure."""

    def __init__(self, behaviour: dict[str, BaseException | str] | None = None) -> None:
        self.options = AnnotateOptions()
        self.behaviour = behaviour or {}
        self.calls: list[str] = []

    def run(
        self,
        source: Path,
        outdir: Path,
        stem: str,
        progress: object = None,
        images: object = None,
        media: object = None,
    ) -> _Result:
        self.calls.append(source.name)
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / f"{stem}.faces.csv").write_text("frame\n")
        what = self.behaviour.get(source.name)
        if isinstance(what, BaseException):
            raise what
        record = {"input": metadata.input_facts(source), "outputs": [f"{stem}.faces.csv"], "warning": what}
        metadata.write_run(outdir, stem, record)
        return _Result(warning=what)


def _inputs(tmp_path: Path, names: Sequence[str]) -> list[BatchInput]:
    paths = []
    for name in names:
        (tmp_path / name).write_bytes(b"x" * 10)
        paths.append(tmp_path / name)
    return assign_stems([BatchInput(p, "file", p.name) for p in paths])


def test_one_failure_does_not_stop_the_others(tmp_path: Path) -> None:
    out = tmp_path / "out"
    items = _inputs(tmp_path, ["a.mp4", "b.mp4", "c.mp4"])
    pipeline = FakePipeline({"b.mp4": InputError(tmp_path / "b.mp4", "no video stream (audio only)")})
    report = run_batch(BatchRunner(pipeline, out), items)
    assert [o.status for o in report.outcomes] == [Status.DONE, Status.FAILED, Status.DONE]
    assert report.outcomes[1].reason == "no video stream (audio only)"
    assert report.exit_code == 1
    assert not (out / "b").exists(), "a failed input leaves nothing behind"


def test_resume_skips_complete_redoes_crashed_and_changed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    items = _inputs(tmp_path, ["a.mp4", "b.mp4", "c.mp4", "d.mp4"])
    run_batch(BatchRunner(FakePipeline({"d.mp4": "file ended at 1.0 s"}), out), items)
    (out / "b" / "b.run.json").unlink()  # crashed after its outputs, before the record
    (tmp_path / "c.mp4").write_bytes(b"y" * 20)  # replaced by a different file since
    pipeline = FakePipeline()
    report = run_batch(BatchRunner(pipeline, out), items)
    assert pipeline.calls == ["b.mp4", "c.mp4"]
    assert [o.status for o in report.outcomes] == [Status.SKIPPED, Status.DONE, Status.DONE, Status.SKIPPED]
    assert "partial: file ended at 1.0 s" in (report.outcomes[3].reason or "")
    assert any("changed" in n for n in report.outcomes[2].notes)
    assert report.exit_code == 0

    pipeline = FakePipeline()
    run_batch(BatchRunner(pipeline, out, overwrite=True), items)
    assert pipeline.calls == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]


def test_same_stem_from_another_folder_is_redone_with_a_note(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    first = _inputs(tmp_path / "x", ["clip.mp4"])
    second = _inputs(tmp_path / "y", ["clip.mp4"])
    run_batch(BatchRunner(FakePipeline(), out), first)
    report = run_batch(BatchRunner(FakePipeline(), out), second)
    assert report.outcomes[0].status is Status.DONE
    assert any("another input" in n for n in report.outcomes[0].notes)


def test_failure_removes_only_what_this_attempt_wrote(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "mine.txt").write_text("the user's own file")
    (out / "a" / ".a.faces.partial-999999999.csv").write_text("left by a killed run")
    items = _inputs(tmp_path, ["a.mp4"])
    report = run_batch(BatchRunner(FakePipeline({"a.mp4": RuntimeError("CUDA error: out of memory")}), out), items)
    assert report.outcomes[0].reason == "RuntimeError: CUDA error: out of memory"
    assert sorted(p.name for p in (out / "a").iterdir()) == ["mine.txt"]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_reports_current_and_not_started(tmp_path: Path, signum: int, code: int) -> None:
    out = tmp_path / "out"
    items = _inputs(tmp_path, ["a.mp4", "b.mp4", "c.mp4"])
    report = run_batch(BatchRunner(FakePipeline({"b.mp4": Interrupted(signum)}), out), items)
    assert [o.status for o in report.outcomes] == [Status.DONE, Status.INTERRUPTED]
    assert [i.source.name for i in report.not_started] == ["c.mp4"]
    assert report.exit_code == code
    assert not (out / "b").exists()
    assert metadata.is_complete(out / "a", "a")


def test_full_disk_stops_the_batch(tmp_path: Path) -> None:
    items = _inputs(tmp_path, ["a.mp4", "b.mp4"])
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "out/a/a.faces.csv"))
    report = run_batch(BatchRunner(FakePipeline({"a.mp4": full}), tmp_path / "out"), items)
    assert report.outcomes[0].status is Status.FAILED and report.outcomes[0].fatal
    assert [i.source.name for i in report.not_started] == ["b.mp4"] and report.exit_code == 1


def test_signal_handler_raises_once_and_restores(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    said: list[str] = []
    with pytest.raises(Interrupted) as caught, stop_on_signals(say=said.append):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert caught.value.signum == signal.SIGTERM and isinstance(caught.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is before


# -------------------------------------------------------------------- damaged video


@pytest.mark.parametrize("threads", ["AUTO", "NONE"])
def test_damage_in_one_place_does_not_lose_the_rest(tmp_path: Path, threads: str) -> None:
    """FFmpeg's decoder can get stuck after bad data; the reader starts a new one at the next keyframe."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(12)]
    clip = encode(tmp_path / "noise.mp4", frames, gop=4)
    flip_packet(clip, tmp_path / "bad.mp4", 2)
    with VideoReader(tmp_path / "bad.mp4", threads=threads) as reader:
        times = [round(f.time_s, 3) for f in reader]
    assert reader.decode_error is not None and "at 0.067 s" in reader.decode_error
    assert times[:2] == [0.0, 0.033] and times[-4:] == [0.267, 0.3, 0.333, 0.367], "frames after the damage"


def test_concealed_corruption_is_reported(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(8)]
    clip = encode(tmp_path / "noise.mp4", frames, gop=4)
    flip_packet(clip, tmp_path / "bad.mp4", 4)  # a keyframe: decodes, but concealed
    with VideoReader(tmp_path / "bad.mp4") as reader:
        assert len(list(reader)) == 8
    assert reader.decode_error is not None and reader.decode_error.startswith("corrupt data at 0.133 s")
    with VideoReader(clip) as reader:
        list(reader)
    assert reader.decode_error is None


# ------------------------------------------------------------------ end to end: corpus


def _run_cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def _leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if ".partial-" in p.name]


def _error_labels(output: str) -> set[str]:
    return {line.split(": ")[1] for line in output.splitlines() if line.startswith("error: ")}


def _frame_size(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.width, stream.height, sum(1 for _ in container.decode(stream))


def _upright(faces: pd.DataFrame) -> bool:
    """Eyes above the mouth corners in every row (image y grows downwards)."""
    eyes = faces[["lm1_y", "lm2_y"]].max(axis=1)
    mouth = faces[["lm4_y", "lm5_y"]].min(axis=1)
    return bool(len(faces)) and bool((eyes < mouth).all())


def test_corpus_batch_end_to_end(tmp_path: Path, shared: type) -> None:
    media = shared("media")
    corpus = build_corpus(tmp_path / "corpus", media)
    out = tmp_path / "out"
    args = ["annotate", str(corpus.root), "--recursive", "-o", str(out), "--end", "0.5", "--det-size", "320"]
    code, output = _run_cli(args)

    assert code == 1, output
    assert "Traceback" not in output
    assert _leftovers(out, corpus.root) == []
    assert _error_labels(output) == corpus.failed, output  # a missing path is a usage error: test_cli_errors.py
    stems = {i.label: i for i in discover_inputs([corpus.root], recursive=True)}
    for label in corpus.failed:
        assert not (out / stems[label].stem).exists(), label
    for label in corpus.done | corpus.partial:
        stem = stems[label].stem
        assert metadata.is_complete(out / stem, stem), label
        warning = metadata.read_run(out / stem, stem)["warning"]
        assert bool(warning) == (label in corpus.partial), (label, warning)
        assert f"warning: {label}: " in output if label in corpus.partial else True

    # damaged video: the frames before the damage, and the place it happened, are reported
    assert metadata.read_run(out / "cut-2", "cut-2")["frames_processed"] == 2
    assert "corrupt data at" in metadata.read_run(out / "flipped", "flipped")["warning"]
    # rotation: upright faces, output at the displayed size
    assert _upright(pd.read_csv(out / "rotated" / "rotated.faces.csv"))
    assert _frame_size(out / "rotated" / "rotated.annotated.mp4")[:2] == (320, 180)
    # odd size: padded by the encoder, and the user is told
    assert _frame_size(out / "odd" / "odd.annotated.mp4")[:2] == (320, 180)
    assert "319x179 is odd; padding to 320x180" in output
    # variable frame rate: the timeline keeps each frame's own time
    times = set(pd.read_csv(out / "vfr" / "vfr.faces.csv")["time_s"].round(6))
    assert len(times) >= 4 and times <= {t for t in corpus.vfr_times if t <= 0.5}
    # no faces: header-only CSV, and the video is still written
    noface = pd.read_csv(out / "noface" / "noface.faces.csv")
    assert len(noface) == 0 and "face_id" in noface.columns
    assert _frame_size(out / "noface" / "noface.annotated.mp4")[2] == 4
    # raw elementary stream: no timestamps, times from the frame rate
    raw = metadata.read_run(out / "raw", "raw")
    assert raw["frames_processed"] > 1
    assert raw["time_range_s"] == pytest.approx([0, (raw["frames_processed"] - 1) / 25])
    # images: every awkward format decodes to a face; EXIF rotation applied; the broken file named
    photos = pd.read_csv(out / "photos" / "photos.faces.csv")
    assert set(photos["file"]) == set(PHOTO_NAMES)
    assert _upright(photos[photos["file"] == "exif6.jpg"])
    assert "broken.jpg" in metadata.read_run(out / "photos", "photos")["warning"]
    assert (out / "photos" / "annotated" / "wide.jpg").exists()

    # resume: finished (and partial) inputs are skipped, failed ones are tried again
    finished = {p: p.stat().st_mtime_ns for p in out.rglob("*.run.json")}
    code, again = _run_cli(args)
    assert code == 1 and _error_labels(again) == _error_labels(output)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.run.json")} == finished
    assert "skipped" in again and "Traceback" not in again


# -------------------------------------------------------------- end to end: Ctrl-C


def _fervid(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from fervid.cli import app; app()", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sigint_mid_run_then_resume(tmp_path: Path, shared: type) -> None:
    face = real_frames(shared("media/pyfeat/single_face.mp4"), 72)
    folder = tmp_path / "in"
    folder.mkdir()
    encode(folder / "a.mp4", face[:4])
    encode(folder / "b.mp4", face)  # long enough to be caught mid-way
    encode(folder / "c.mp4", face[:4])
    out = tmp_path / "out"
    args = ["annotate", str(folder), "-o", str(out), "--det-size", "320", "--every", "2"]

    proc = _fervid(args)
    stdout, stderr = interrupt_when(
        proc, lambda: metadata.is_complete(out / "a", "a") and bool(list((out / "b").glob(".*.partial-*"))), 120,
        "b never started",
    )  # fmt: skip
    assert_stopped_by_ctrl_c(proc, stdout, stderr)
    assert _leftovers(out) == []
    assert not (out / "b").exists() and not (out / "c").exists()
    record = metadata.read_run(out / "a", "a")

    proc = _fervid(args)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout + stderr
    assert metadata.read_run(out / "a", "a") == record, "a was skipped, not redone"
    for stem in ("b", "c"):
        assert metadata.is_complete(out / stem, stem)
    assert json.loads((out / "b" / "b.run.json").read_text())["frames_processed"] == 36
    assert _leftovers(out) == []
    assert np.isfinite(pd.read_csv(out / "b" / "b.faces.csv")["time_s"]).all()


@pytest.mark.parametrize(("count", "text"), [(1, "1 subfolder;"), (2, "2 subfolders;")])
def test_the_subfolder_hint_counts_in_words(tmp_path: Path, count: int, text: str) -> None:
    for i in range(count):
        (tmp_path / f"sub{i}").mkdir()
    (item,) = discover_inputs([tmp_path])
    assert item.problem == f"no media files found in folder ({text} add --recursive to look inside)"
