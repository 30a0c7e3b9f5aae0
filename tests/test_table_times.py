"""Times in CSV tables keep frame precision however long the recording (6 significant digits do not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fervid.io.tables import write_table


def test_times_are_written_to_the_microsecond_and_empty_when_unknown(tmp_path: Path) -> None:
    # Two frames 1/30 s apart, three hours in: with "%.6g" both would read 10800.5.
    frame = pd.DataFrame({"time_s": [10800.5, 10800.533333, np.nan], "p_happy": [0.123456789, 0.5, 1.0],
                          "frame": [324015, 324016, 0]})  # fmt: skip
    path = tmp_path / "faces.csv"
    write_table(frame, path)
    lines = path.read_text().splitlines()
    assert lines[1:] == ["10800.5,0.123457,324015", "10800.533333,0.5,324016", ",1,0"]
    back = pd.read_csv(path)
    assert back["time_s"].iloc[1] - back["time_s"].iloc[0] == np.float64(10800.533333) - 10800.5
    assert np.isnan(back["time_s"].iloc[2])
