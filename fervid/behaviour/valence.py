"""Valence: how positive a face's expression is, from the expression probabilities.

``valence = p(happy) - max(p(angry), p(disgust), p(fear), p(sad))``, FaceReader's documented definition
(Noldus, FaceReader reference manual): the intensity of the positive expression minus that of the strongest
negative one. It runs from -1 (all negative) to 1 (all happy); neutral, surprise and contempt count for
neither side. A model without some of these classes uses the ones it has (one without ``happy`` or without
any negative class gives NaN: nothing honest can be said).

With ``--smooth``, ``valence_s`` is the same formula on the smoothed probabilities (the ``ps_`` columns), so it
is NaN where they are (faces a conclusion may not rest on). The maximum is not linear, so ``valence_s`` is not
the smoothed ``valence``: it is the valence of the smoothed expression, as the video's smoothed label is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

POSITIVE = "happy"
NEGATIVE: tuple[str, ...] = ("angry", "disgust", "fear", "sad")


def valence(probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """(n,) float32 valence of (n, k) probabilities over ``classes`` (see the module docstring)."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, len(classes))
    negative = [j for j, c in enumerate(classes) if c in NEGATIVE]
    if POSITIVE not in classes or not negative:
        return np.full(len(probs), np.nan, dtype=np.float32)
    return (probs[:, list(classes).index(POSITIVE)] - probs[:, negative].max(axis=1)).astype(np.float32)


def add_smoothed_valence(timeline: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """The timeline with ``valence_s`` from its ``ps_<class>`` columns, after them (unchanged when it has no ``ps_``
    columns or no valence)."""
    columns = [f"ps_{c}" for c in classes]
    if "valence" not in timeline or not all(c in timeline for c in columns):
        return timeline
    out = timeline.drop(columns=[c for c in ("valence_s",) if c in timeline])
    return out.assign(valence_s=valence(out[columns].to_numpy(), classes))
