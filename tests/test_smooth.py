"""Temporal smoothing: time-based kernels, raw columns untouched, stream == table, fewer label flips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _research_runs import SMOOTH_S, wolfgang_smoothed

from fervid.io.tables import trusted
from fervid.smooth import (
    StreamSmoother,
    add_smoothed,
    check_mode,
    kernel_weights,
    smooth_probs,
)
from fervid.types import EMOTIONS, Detections, Frame, FrameResult, Predictions

P_COLS = [f"p_{c}" for c in EMOTIONS]
PS_COLS = [f"ps_{c}" for c in EMOTIONS]


def random_tracks(n_frames: int = 200, seed: int = 0, fps: float = 30.0, drop: float = 0.2) -> pd.DataFrame:
    """Two tracks plus untracked rows, with missing frames (gaps) and jittered (VFR) times."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.5, 1.5, n_frames) / fps)
    rows = [(t, face) for t in times for face in (1, 2, -1) if rng.random() > drop]
    t, ids = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    probs = rng.dirichlet(np.ones(len(EMOTIONS)), size=len(rows)).astype(np.float32)
    frame = pd.DataFrame({"time_s": t, "face_id": ids})
    for j, name in enumerate(P_COLS):
        frame[name] = probs[:, j]
    return frame


def flips(timeline: pd.DataFrame, columns: list[str]) -> int:
    """Frame-to-frame changes of the top label, summed over tracks."""
    total = 0
    for _, track in timeline[timeline["face_id"] >= 1].sort_values("time_s").groupby("face_id"):
        labels = track[columns].to_numpy().argmax(axis=1)
        total += int((labels[1:] != labels[:-1]).sum())
    return total


def as_results(timeline: pd.DataFrame) -> list[FrameResult]:
    out = []
    for index, (t, rows) in enumerate(timeline.groupby("time_s", sort=True)):
        n = len(rows)
        dets = Detections(np.zeros((n, 4)), np.ones(n), np.zeros((n, 5, 2)), rows["face_id"].to_numpy())
        frame = Frame(index, float(t), np.zeros((4, 4, 3), np.uint8))
        out.append(FrameResult(frame, dets, Predictions(rows[P_COLS].to_numpy(), EMOTIONS)))
    return out


# ------------------------------------------------------------------------------------ kernels
@pytest.mark.parametrize(
    ("mode", "dt", "expected"),
    [
        ("centred", [0.0], [1.0]),
        ("centred", [-0.5, 0.5], [np.exp(-2.0)] * 2),  # symmetric; the window's edge is 2 sigma
        ("centred", [-0.51, 0.51], [0.0, 0.0]),
        ("causal", [0.0, -0.5 / 3, -0.5, -0.51, 0.01], [1.0, np.exp(-1.0), np.exp(-3.0), 0.0, 0.0]),
    ],
)
def test_kernel_weights(mode: str, dt: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(kernel_weights(np.array(dt), 0.5, mode), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("given", "canonical"), [("centred", "centred"), ("centered", "centred"), ("causal", "causal")]
)
def test_mode_names(given: str, canonical: str) -> None:
    assert check_mode(given) == canonical


@pytest.mark.parametrize(("window", "mode"), [(-1.0, "centred"), (float("nan"), "causal"), (0.5, "gaussian")])
def test_bad_arguments(window: float, mode: str) -> None:
    with pytest.raises(ValueError, match="window|mode"):
        smooth_probs(np.zeros(1), np.ones(1), np.ones((1, 2)), window, mode)


# ------------------------------------------------------------------------------ table smoother
@pytest.mark.parametrize("mode", ["centred", "causal"])
def test_empty_zero_window_single_rows_and_untracked_are_unchanged(mode: str) -> None:
    assert smooth_probs(np.zeros(0), np.zeros(0), np.zeros((0, 3)), 1.0, mode).shape == (0, 3)
    probs = np.random.default_rng(1).dirichlet(np.ones(3), size=4).astype(np.float32)
    times = np.array([0.0, 0.1, 0.2, 0.3])
    np.testing.assert_array_equal(smooth_probs(times, np.array([1, 1, 1, 1]), probs, 0.0, mode), probs)
    np.testing.assert_array_equal(smooth_probs(times, np.array([1, 2, 3, 4]), probs, 5.0, mode), probs)
    np.testing.assert_array_equal(smooth_probs(times, np.array([-1, -1, 0, -1]), probs, 5.0, mode), probs)


@pytest.mark.parametrize("mode", ["centred", "causal"])
def test_constant_track_stays_constant_and_rows_sum_to_one(mode: str) -> None:
    frame = random_tracks()
    frame.loc[frame["face_id"] == 1, P_COLS] = np.float32(1 / len(P_COLS))
    out = add_smoothed(frame, EMOTIONS, 0.4, mode)
    np.testing.assert_allclose(out.loc[out["face_id"] == 1, PS_COLS], 1 / len(P_COLS), rtol=1e-6)
    np.testing.assert_allclose(out[PS_COLS].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("mode", ["centred", "causal"])
def test_raw_columns_untouched_and_row_order_kept(mode: str) -> None:
    frame = random_tracks(seed=3).sample(frac=1.0, random_state=0)  # rows in any order
    before = frame.copy()
    out = add_smoothed(frame, EMOTIONS, 0.3, mode)
    pd.testing.assert_frame_equal(frame, before)  # input not modified
    pd.testing.assert_frame_equal(out[before.columns], before)  # raw columns identical
    assert list(out.columns) == [*before.columns, *PS_COLS]
    ordered = add_smoothed(frame.sort_values(["face_id", "time_s"]), EMOTIONS, 0.3, mode).loc[frame.index]
    pd.testing.assert_frame_equal(out, ordered)


def test_causal_ignores_the_future_and_centred_does_not() -> None:
    frame = random_tracks(seed=4)
    changed = frame.copy()
    late = changed["time_s"] > changed["time_s"].median()
    changed.loc[late, P_COLS] = changed.loc[late, P_COLS].to_numpy()[:, ::-1]
    early = ~late
    causal = [add_smoothed(f, EMOTIONS, 0.5, "causal").loc[early, PS_COLS] for f in (frame, changed)]
    pd.testing.assert_frame_equal(*causal)
    centred = [add_smoothed(f, EMOTIONS, 0.5, "centred").loc[early, PS_COLS] for f in (frame, changed)]
    assert not np.allclose(*centred)


def test_time_based_window_means_the_same_at_any_frame_step() -> None:
    """A slow sine sampled at 30 fps and at 10 fps smooths to the same curve (not N rows)."""

    def track(fps: float) -> pd.DataFrame:
        t = np.arange(0, 6, 1 / fps)
        happy = 0.5 + 0.4 * np.sin(2 * np.pi * t / 3)
        probs = np.zeros((len(t), len(EMOTIONS)), np.float32)
        probs[:, 3], probs[:, 6] = happy, 1 - happy
        return pd.DataFrame({"time_s": t, "face_id": 1, **{c: probs[:, j] for j, c in enumerate(P_COLS)}})

    fast, slow = (add_smoothed(track(fps), EMOTIONS, 0.6, "centred") for fps in (30.0, 10.0))
    inner = slow[(slow["time_s"] > 0.6) & (slow["time_s"] < 5.4)]  # away from the ends (a one-sided window)
    at = inner["time_s"].to_numpy()
    np.testing.assert_allclose(np.interp(at, fast["time_s"], fast["ps_happy"]), inner["ps_happy"], atol=0.01)


def test_reduces_flips_on_noisy_probabilities() -> None:
    frame = random_tracks(seed=5)
    assert flips(add_smoothed(frame, EMOTIONS, 0.5, "centred"), PS_COLS) < flips(frame, P_COLS) / 3


# ------------------------------------------------------------------------------ stream smoother
@pytest.mark.parametrize("mode", ["centred", "causal"])
@pytest.mark.parametrize("window", [0.0, 0.1, 0.5, 3.0])
def test_stream_matches_table(mode: str, window: float) -> None:
    frame = random_tracks(n_frames=120, seed=7)
    table = add_smoothed(frame, EMOTIONS, window, mode).sort_values(["time_s"], kind="stable")
    results = list(StreamSmoother(window, mode)(as_results(frame)))
    assert [r.frame.time_s for r in results] == sorted(frame["time_s"].unique())
    streamed = np.concatenate([r.shown.probs for r in results])
    expected = pd.concat([g for _, g in table.groupby("time_s", sort=True)])[PS_COLS].to_numpy()
    np.testing.assert_allclose(streamed, expected, rtol=1e-6, atol=1e-7)
    raw = np.concatenate([r.predictions.probs for r in results])
    np.testing.assert_array_equal(raw, pd.concat([g for _, g in frame.groupby("time_s")])[P_COLS].to_numpy())


def test_centred_stream_holds_back_about_one_window_and_memory_is_bounded() -> None:
    results = as_results(random_tracks(n_frames=300, seed=8, drop=0.0))  # ~30 fps
    smoother = StreamSmoother(0.5, "centred")
    held = []
    for r in results:
        smoother.push(r)
        held.append(len(smoother._pending))
        assert sum(len(h) for h in smoother._history.values()) <= 2 * 2 * 40  # two tracks, ~2 windows each
    assert 12 <= max(held) <= 20  # 0.5 s at ~30 fps
    assert len(smoother.flush()) == held[-1]
    frame_bytes = results[0].frame.image.nbytes
    capped = StreamSmoother(0.5, "centred", max_buffer_bytes=5 * frame_bytes)
    for r in results:
        capped.push(r)
        assert len(capped._pending) <= 5


# ------------------------------------------------------------------------------- real video
def test_real_video_smoothing_drives_the_drawn_label_and_reduces_flips() -> None:
    """WolfgangLanger (5 s, every 2nd frame, 0.5 s centred): raw columns stay raw, ps_ added,
    the label drawn on the video is the smoothed one, and the top label flips less often."""
    result, _, drawn = wolfgang_smoothed()
    faces = result.faces
    assert [c for c in faces.columns if c.startswith("ps_")] == PS_COLS
    # raw columns are the classifier's: emotion/confidence still agree with p_, not ps_
    raw = faces[P_COLS].to_numpy()
    assert (np.asarray(EMOTIONS, dtype=object)[raw.argmax(axis=1)] == faces["emotion"].to_numpy()).all()
    np.testing.assert_allclose(raw.max(axis=1), faces["confidence"], rtol=1e-6)
    resmoothed = add_smoothed(faces.drop(columns=PS_COLS), EMOTIONS, SMOOTH_S, "centred")
    pd.testing.assert_frame_equal(resmoothed, faces, check_exact=False, rtol=1e-6)
    # the video shows the smoothed label, frame by frame, of every face it labels (issue 30: a face that is not
    # readable or below --min-p-correct has no smoothed value and is drawn "?"; `shown` keeps its raw output)
    assert len(drawn) == result.frames
    ok = trusted(faces, result.run["options"]["min_p_correct"])
    assert faces.loc[~ok, PS_COLS].isna().all().all() and not faces.loc[ok, PS_COLS].isna().any().any()
    smoothed_labels = np.asarray(EMOTIONS, dtype=object)[np.nan_to_num(faces[PS_COLS].to_numpy(), nan=-1).argmax(1)]
    shown = np.where(ok, smoothed_labels, faces["emotion"].to_numpy())
    by_frame = pd.Series(shown, index=faces["frame"]).groupby(level=0).agg(list)
    drawn_labels = [labels for _, labels in drawn if labels]
    assert drawn_labels == by_frame.tolist()
    raw_flips, smooth_flips = flips(faces[ok], P_COLS), flips(faces[ok], PS_COLS)
    assert smooth_flips <= raw_flips
    if raw_flips >= 3:  # the shipped weights are still training; a calm model may not flip at all
        assert smooth_flips < raw_flips
