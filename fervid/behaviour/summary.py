"""The behaviour columns of the summary and persons tables: ``blinks_per_min`` and ``mean_valence``.

``mean_valence`` is the mean ``valence`` over the faces a conclusion may rest on
(:func:`fervid.io.tables.trusted`), like the other means there; NaN when there are none.
``blinks_per_min`` is the number of blinks (:mod:`fervid.behaviour.blinks`) over the minutes of visible face
(``visible_s``); NaN where no blink could be looked for (no time, independent photos, ``--no-behaviour``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fervid.io.tables import trusted

#: The summary and persons tables' behaviour columns, in order (after every other column).
BEHAVIOUR_SUMMARY: tuple[str, ...] = ("blinks_per_min", "mean_valence")


def add_behaviour_summary(
    summary: pd.DataFrame, timeline: pd.DataFrame, blinks: pd.DataFrame | None, by: str = "face_id",
    min_p_correct: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """``summary`` (one row per ``by``: face track or person) with ``blinks_per_min`` and ``mean_valence``
    appended; unchanged when the timeline has no ``valence`` (``--no-behaviour``)."""
    if "valence" not in timeline:
        return summary
    ids = summary[by]
    counted = timeline[trusted(timeline, min_p_correct) & (timeline[by].to_numpy() >= 1)]
    mean_valence = counted.groupby(by)["valence"].mean().reindex(ids).to_numpy(np.float64)
    if blinks is None:
        rate = np.full(len(summary), np.nan)
    else:
        count = blinks.groupby(by).size().reindex(ids, fill_value=0).to_numpy(np.float64)
        minutes = summary["visible_s"].to_numpy(np.float64) / 60.0
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(minutes > 0, count / minutes, np.nan)
    return summary.assign(blinks_per_min=rate, mean_valence=mean_valence)
