"""Annotate options: each defined once, reachable from the CLI and the API, related values kept consistent."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main
from conftest import shared_path
from typer.testing import CliRunner

from fervid import api
from fervid.cli import app
from fervid.cli_options import flag, options_from_cli, parameter_name
from fervid.options import AnnotateOptions, DetectionOptions, TrackingOptions, leaf_fields
from fervid.track import TRACKERS

#: A value for every option, other than the default where the options allow it together (the test fails
#: when an option is added without one). ``ALSO`` changes the options that need identity (or behaviour) on.
CHANGED = {
    "every": 3, "start": 1.5, "end": 4.0, "sequence": True, "fps": 12.5, "det_threshold": 0.3, "min_face": 8.0,
    "det_size": 0, "detector_weights": "x.pth", "tracker": "bytetrack", "track_buffer": 2.0, "match_iou": 0.4,
    "min_hits": 3, "identity": False, "people": None, "identity_threshold": 0.4, "save_embeddings": False,
    "shot_cuts": False, "model": "fer2013", "smooth": 0.5, "smooth_mode": "causal", "min_p_correct": 0.0,
    "behaviour": False, "landmarks": False, "shape_predictor": "x.dat", "video": False, "bars": False,
    "detect_every": 4,
    "plots": False, "format": "both", "report": False, "moment_threshold": 0.7, "elan_min_run": 1.0,
    "events": "trials.eaf", "events_tier": "Trials", "device": "cpu",
    "batch_size": 4, "workers": 0,
}  # fmt: skip


ALSO = {"people": "friends", "save_embeddings": True, "landmarks": True}


def _annotate_command() -> typer.core.TyperCommand:
    return typer.main.get_command(app).commands["annotate"]


def test_every_option_is_defined_once_and_has_a_changed_value_here() -> None:
    names = [f.name for _, f in leaf_fields()]
    assert len(names) == len(set(names)), "two option groups define the same name"
    assert set(names) == set(CHANGED)


def test_every_option_is_a_cli_flag_and_an_api_keyword() -> None:
    flags = {opt for param in _annotate_command().params for opt in param.opts}
    for _, f in leaf_fields():
        assert flag(f) in flags, f.name
    assert api.option_names() == [f.name for _, f in leaf_fields()]
    assert api.options(**CHANGED).flat() == {**CHANGED, "det_size": None, "tracker": "bytetrack"}


@pytest.mark.parametrize("values", [CHANGED, ALSO])
def test_cli_flags_reach_the_same_options_as_the_api_keywords(values: dict) -> None:
    args = []
    for _, f in leaf_fields():
        value = values.get(f.name, f.default)
        if isinstance(value, bool):
            if value != f.default:
                args.append(flag(f))
        elif value is not None:
            args += [flag(f), str(value)]
    ctx = _annotate_command().make_context("annotate", ["clip.mp4", *args])
    cli_values = {parameter_name(f): ctx.params[parameter_name(f)] for _, f in leaf_fields()}
    assert options_from_cli(cli_values) == api.options(**values)


def test_defaults_agree_between_cli_and_api() -> None:
    ctx = _annotate_command().make_context("annotate", ["clip.mp4"])
    cli_values = {parameter_name(f): ctx.params[parameter_name(f)] for _, f in leaf_fields()}
    assert options_from_cli(cli_values) == AnnotateOptions()


@pytest.mark.parametrize("threshold", [0.0, 0.02, 0.05, 0.1, 0.19, 0.3, 0.6, 0.95, 1.0])
def test_tracker_thresholds_follow_the_detection_threshold(threshold: float) -> None:
    """Low detector thresholds move the tracker's thresholds with them: never an error about a hidden parameter."""
    detection = DetectionOptions(det_threshold=threshold)
    tracker = TrackingOptions().build(detection, fps=25.0)
    assert tracker.low_threshold == detection.low_threshold <= threshold
    assert tracker.low_threshold <= tracker.high_threshold == threshold <= tracker.new_track_threshold <= 1.0
    detector_floor = min(0.1, threshold / 2)
    assert detection.low_threshold == pytest.approx(detector_floor)


def test_a_low_detection_threshold_works_on_a_video(tmp_path: Path) -> None:
    clip = shared_path("media/pyfeat/WolfgangLanger_Pexels.mp4")
    args = ["annotate", str(clip), "-o", str(tmp_path), "--det-threshold", "0.05", "--end", "0.5", "--no-video",
            "--no-plots", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "high_threshold" not in result.output
    assert (tmp_path / clip.stem / f"{clip.stem}.run.json").exists()


def test_tracker_is_chosen_by_name_with_a_helpful_error(tmp_path: Path) -> None:
    assert TrackingOptions(tracker="bytetrack").build(DetectionOptions(), 25.0).__class__ is TRACKERS["bytetrack"]
    result = CliRunner().invoke(app, ["annotate", "x.mp4", "-o", str(tmp_path), "--tracker", "sort"])
    assert result.exit_code == 2
    assert "unknown tracker 'sort'; choose one of: bytetrack" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"start": 5.0, "end": 2.0}, "end (2.0s) must be after start (5.0s)"),
        ({"det_threshold": 1.5}, "det_threshold must be in"),
        ({"det_size": 16}, "det_size must be 0"),
        ({"match_iou": 0.0}, "match_iou must be in"),
        ({"smooth_mode": "sideways"}, "unknown smoothing mode"),
        ({"format": "xlsx"}, "unknown table format"),
        ({"moment_threshold": 1.5}, "moment_threshold must be in"),
        ({"elan_min_run": -1.0}, "elan_min_run must be in"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"events_tier": "Trials"}, "--events-tier names a tier of the --events file; give --events too"),
    ],
)
def test_invalid_values_are_refused_with_the_allowed_range(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        api.options(**values)


def test_unknown_api_keyword_lists_the_valid_ones() -> None:
    with pytest.raises(TypeError, match="unknown option.*colour.*valid:.*det_threshold"):
        api.options(colour="red")
