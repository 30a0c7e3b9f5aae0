"""Why each face of a run got its ``pose_source``: counts of the two cases behind ``5`` (issue 32).

Why: ``pose_source`` ``5`` covers a face turned too far for the 68-point fit and a fit that was rejected, and the
faces table does not say which (no column is added for it). This recomputes the reasons from a run made with
``--landmarks``, with fervid's own functions (:func:`fervid.behaviour.pose.fit_pose`, ``nose_side``,
``choose_pose`` and the five-point angles), checks that they give the table's ``pose_source`` on every face, and
prints the counts. See docs/behaviour-measures.md, "Head pose".

    fervid annotate CLIP -o OUT --landmarks --no-video --no-plots --no-report --no-identity
    python scripts/pose_source_reasons.py OUT/<stem>
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fervid.behaviour import pose
from fervid.behaviour.outputs import points_of
from fervid.io.tables import LANDMARK_COLUMNS
from fervid.quality import landmark_measures


def reasons(faces: pd.DataFrame, points: np.ndarray, width: float, height: float) -> pd.DataFrame:
    """Per face: ``pose_source`` as recomputed, ``turned`` and which fit check failed (``failed``: no solution or
    behind the camera; ``beyond``: fit |yaw| over :data:`~fervid.behaviour.pose.MAX_FIT_YAW`; ``miss``:
    reprojection error over :data:`~fervid.behaviour.pose.MAX_REPROJECTION`)."""
    five_points = faces[list(LANDMARK_COLUMNS)].to_numpy(np.float64).reshape(-1, 5, 2)
    boxes = faces[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    fit = pose.fit_pose(points, np.tile([width, height], (len(points), 1)).astype(np.float64))
    five = landmark_measures(five_points)
    side = pose.nose_side(boxes, five_points)
    chosen = pose.choose_pose(fit, five["yaw"], five["roll"], side)
    with np.errstate(invalid="ignore"):
        return pd.DataFrame({
            "pose_source": chosen["pose_source"].astype(str),
            "turned": pose.turned_too_far(five["yaw"], side),
            "failed": ~np.isfinite(fit["yaw"]),
            "beyond": np.abs(fit["yaw"]) > pose.MAX_FIT_YAW,
            "miss": fit["error"] > pose.MAX_REPROJECTION,
        })  # fmt: skip


def summary(found: pd.DataFrame) -> dict[str, int]:
    """The counts the script prints: faces per ``pose_source`` and the ``5`` faces by case."""
    five = found["pose_source"] == "5"
    rejected = five & ~found["turned"]
    return {
        "faces": len(found),
        "68": int((found["pose_source"] == "68").sum()),
        "5": int(five.sum()),
        "none": int((found["pose_source"] == "none").sum()),
        "5 turned too far": int((five & found["turned"]).sum()),
        "5 turned, the fit also unsound": int((five & found["turned"] & (found["failed"] | found["beyond"] |
                                                                          found["miss"])).sum()),
        "5 fit rejected (not turned)": int(rejected.sum()),
        "  no solution or behind the camera": int((rejected & found["failed"]).sum()),
        "  fit |yaw| over 60°": int((rejected & ~found["failed"] & found["beyond"]).sum()),
        "  reprojection over 0.2": int((rejected & ~found["failed"] & ~found["beyond"] & found["miss"]).sum()),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="one input's output folder (OUT/<stem>) of a --landmarks run")
    args = parser.parse_args(argv)
    try:
        (record,) = args.folder.glob("*.run.json")
        size = json.loads(record.read_text())["input"]
        faces = pd.read_csv(next(args.folder.glob("*.faces.csv")))
        points = pd.read_parquet(next(args.folder.glob("*.landmarks.parquet")))
    except (ValueError, StopIteration, OSError, KeyError) as exc:
        print(f"error: {args.folder}: needs a run folder with run.json, the faces table and --landmarks' file "
              f"({type(exc).__name__})", file=sys.stderr)  # fmt: skip
        return 2
    keys = ["frame", "face_id"]
    if "width" not in size or points[keys].values.tolist() != faces[keys].values.tolist():
        print(f"error: {args.folder}: needs a video run whose landmarks file matches its faces table",
              file=sys.stderr)  # fmt: skip
        return 2
    found = reasons(faces, points_of(points), float(size["width"]), float(size["height"]))
    agree = found["pose_source"].to_numpy() == faces["pose_source"].astype(str).to_numpy()
    for name, count in summary(found).items():
        print(f"{name}: {count}")
    print(f"recomputed pose_source equals the table's on {int(agree.sum())} of {len(agree)} faces")
    return 0 if agree.all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
