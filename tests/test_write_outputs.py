"""``write_outputs`` leaves the InputResult it is given as it was and returns the written one (issue 35, item 4).

A synthetic input (no models, no media): its tables, report, ELAN file and events table are written for real.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from fervid.events import event_table, load_events, with_blink_rates
from fervid.input_result import InputResult
from fervid.io.tables import summarize_persons, summarize_tracks
from fervid.options import AnnotateOptions
from fervid.run import write_outputs

CLASSES = ("happy", "sad", "neutral")


def _faces(n: int = 30) -> pd.DataFrame:
    """One person's face for ``n`` frames at 10 fps, happy, readable."""
    table = pd.DataFrame({"frame": np.arange(n), "time_s": np.arange(n) / 10, "face_id": 1, "person_id": 1})
    for name, value in zip(("x1", "y1", "x2", "y2"), (10.0, 10.0, 60.0, 70.0)):
        table[name] = np.float32(value)
    table["det_score"] = np.float32(0.9)
    for k in range(1, 6):
        table[f"lm{k}_x"], table[f"lm{k}_y"] = np.float32(20 + 5 * k), np.float32(30 + 3 * k)
    table["emotion"], table["confidence"] = "happy", np.float32(0.8)
    for c, p in zip(CLASSES, (0.8, 0.1, 0.1)):
        table[f"p_{c}"] = np.float32(p)
    table["readable"], table["p_correct"] = True, np.float32(0.9)
    return table


def _result(tmp_path: Path) -> tuple[InputResult, AnnotateOptions]:
    source = tmp_path / "clip.mp4"  # run.json records its size and hash; nothing decodes it
    source.write_bytes(b"not decoded")
    events = tmp_path / "events.csv"
    events.write_text("onset_s,offset_s,event\n0,1.5,first\n1.5,3,second\n")
    options = AnnotateOptions.from_flat(events=str(events), plots=False)
    faces, threshold = _faces(), options.classification.min_p_correct
    windows = load_events(events).for_input("clip")
    blinks = pd.DataFrame({"face_id": [1], "person_id": [1], "start_s": [0.5], "end_s": [0.6]})
    result = InputResult(
        source=source, kind="video", timeline=faces, summary=summarize_tracks(faces, CLASSES),
        frames=len(faces), seconds=1.0, classes=CLASSES, time_range=(0.0, 2.9), processing_s=0.5,
        run={"options": options.flat()}, persons=summarize_persons(faces, CLASSES, min_p_correct=threshold),
        blinks=blinks, windows=windows,
        events=with_blink_rates(event_table(faces, CLASSES, windows, None, threshold), blinks),  # as the run makes it
    )  # fmt: skip
    return result, options


def test_write_outputs_leaves_the_result_it_is_given_unchanged(tmp_path: Path) -> None:
    result, options = _result(tmp_path)
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    before = copy.deepcopy(fields)
    written = write_outputs(result, tmp_path / "out", "clip", options)
    for name, value in fields.items():
        now = getattr(result, name)
        assert now is value, f"write_outputs replaced result.{name}"
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(now, before[name], obj=f"result.{name}")
        elif name != "windows":  # Events compares by identity; it is checked above to be the same object
            assert now == before[name], f"write_outputs changed result.{name} in place"
    assert written is not result
    assert written.run["outputs"] and (tmp_path / "out" / "clip.run.json") in written.outputs
    assert written.seconds >= result.seconds and written.run["wall_time_s"] == round(written.seconds, 3)
    pd.testing.assert_frame_equal(written.events, pd.read_csv(tmp_path / "out" / "clip.events.csv"),
                                  check_dtype=False)  # fmt: skip
