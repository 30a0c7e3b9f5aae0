"""Draw the 68 points fervid computes on one photo or video frame, to look at the landmarks (issue 32).

Why: a shape predictor that is equal to dlib's can still be wrong for a face (a profile, a small or blurred
face), and the behaviour measures inherit it. This draws what a run gives: it runs ``fervid.annotate`` with
``landmarks=True`` (``--landmarks``) on the photo or on the one video frame asked for, reads
``<stem>.landmarks.parquet`` and the faces table, and draws each face's 68 points (jaw, brows, nose, eyes and
mouth in their own colours, joined in the iBUG order), its RetinaFace box, and its ``pose_source`` and ``yaw``.
``--zoom`` crops to the faces (``--face ID``: to that one) and enlarges, for small faces. Prints one line per face.

    python scripts/draw_landmarks.py ../shared/media/face_recognition/short_hamilton_clip.mp4 /tmp/h32.png \
        --frame 32 --zoom

Write the picture outside the checkout (it shows real people; media and crops are never committed).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

import fervid
from fervid.behaviour.outputs import points_of
from fervid.io.errors import InputError
from fervid.io.probe import probe
from fervid.io.video import VideoReader

#: The 68 points' parts (dlib's 0-based numbering), whether each is drawn closed, and its colour (RGB).
PARTS: tuple[tuple[str, range, bool, tuple[int, int, int]], ...] = (
    ("jaw", range(0, 17), False, (255, 200, 0)),
    ("right brow", range(17, 22), False, (255, 80, 80)),
    ("left brow", range(22, 27), False, (255, 80, 80)),
    ("nose bridge", range(27, 31), False, (80, 220, 255)),
    ("nostrils", range(31, 36), False, (80, 220, 255)),
    ("right eye", range(36, 42), True, (80, 255, 80)),
    ("left eye", range(42, 48), True, (80, 255, 80)),
    ("outer lips", range(48, 60), True, (255, 80, 255)),
    ("inner lips", range(60, 68), True, (255, 255, 255)),
)
#: ``--zoom``: the faces' boxes are widened by this share of their size, and the crop enlarged to this side.
ZOOM_MARGIN = 0.35
ZOOM_SIDE = 720
#: A video is run from this many seconds before the frame asked for: faces get an ID after --min-hits frames.
LEAD_S = 0.25


def frame_time(path: Path, index: int) -> float | None:
    """Presentation time of frame ``index`` of a video (as ``annotate`` reads it); None for a photo."""
    media = probe(path)
    if media.kind != "video":
        return None
    with VideoReader(path, info=media) as reader:
        for frame in reader:
            if frame.index == index:
                return frame.time_s
    raise InputError(path, f"has no frame {index}")


def run(path: Path, index: int, work: Path) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """(the frame RGB, its faces-table rows, their (n, 68, 2) points) from one ``annotate --landmarks`` run."""
    time_s = frame_time(path, index)
    # a track needs a few frames before its faces are kept (--min-hits), so the run starts a little earlier
    span = {} if time_s is None else {"start": max(time_s - LEAD_S, 0.0), "end": time_s + 1e-3}
    result = fervid.annotate(path, work, landmarks=True, video=False, report=False, plots=False, identity=False,
                             **span)  # fmt: skip
    faces = result.faces
    if time_s is not None:
        faces = faces[faces["frame"] == index]
    points = pd.read_parquet(next(work.rglob("*.landmarks.parquet")))
    points = points.merge(faces[["frame", "face_id"]], on=["frame", "face_id"])
    faces = faces.set_index(["frame", "face_id"]).loc[list(zip(points["frame"], points["face_id"]))].reset_index()
    if time_s is None:
        from fervid.io.images import read_image

        image = read_image(path)
    else:
        with VideoReader(path, start_s=time_s, end_s=time_s + 1e-3) as reader:
            image = next(f.image for f in reader if f.index == index)
    return np.array(image), faces, points_of(points)


def draw(image: np.ndarray, faces: pd.DataFrame, points: np.ndarray, zoom: bool) -> np.ndarray:
    """The frame with each face's box, 68 points and a caption; with ``zoom``, cropped to the faces and enlarged."""
    offset, scale = np.zeros(2), 1.0
    if zoom and len(faces):
        boxes = faces[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
        margin = ZOOM_MARGIN * (boxes[:, 2:] - boxes[:, :2]).max()
        x1, y1 = np.maximum(boxes[:, :2].min(0) - margin, 0).astype(int)
        x2, y2 = np.minimum(boxes[:, 2:].max(0) + margin, image.shape[1::-1]).astype(int)
        image, offset = image[y1:y2, x1:x2], np.array([x1, y1], np.float64)
        scale = ZOOM_SIDE / max(image.shape[:2])
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    out = np.ascontiguousarray(image)
    width = max(1, round(max(out.shape[:2]) / 400))

    def at(xy: np.ndarray) -> np.ndarray:
        return np.rint((xy - offset) * scale).astype(np.int32)

    for face, pts in zip(faces.itertuples(), points):
        x1, y1 = at(np.array([face.x1, face.y1]))
        x2, y2 = at(np.array([face.x2, face.y2]))
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), (255, 255, 0), width)
        for _name, part, closed, colour in PARTS:
            cv2.polylines(out, [at(pts[list(part)])], closed, colour, width, cv2.LINE_AA)
            for x, y in at(pts[list(part)]):
                cv2.circle(out, (int(x), int(y)), width + 1, colour, -1, cv2.LINE_AA)
        cv2.putText(out, caption(face), (int(x1), max(int(y1) - 6, 14)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * width + 0.1, (255, 255, 0), width, cv2.LINE_AA)  # fmt: skip
    return out


def caption(face: object) -> str:
    """``F<id> 68 yaw -12`` / ``F<id> 5 yaw -71`` / ``F<id> none``."""
    yaw = float(getattr(face, "yaw", math.nan))
    angle = f" yaw {yaw:+.0f}" if math.isfinite(yaw) else ""
    return f"F{int(face.face_id)} {face.pose_source}{angle}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("media", type=Path, help="a photo or a video")
    parser.add_argument("output", type=Path, help="the picture to write (.png or .jpg); keep it outside the checkout")
    parser.add_argument("--frame", type=int, default=0, help="0-based frame index of a video (ignored for a photo)")
    parser.add_argument("--zoom", action="store_true", help="crop to the faces and enlarge")
    parser.add_argument("--face", type=int, help="draw only this face_id (with --zoom: crop to it)")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as work:
            image, faces, points = run(args.media, args.frame, Path(work))
    except (InputError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.face is not None:
        keep = (faces["face_id"] == args.face).to_numpy()
        faces, points = faces[keep].reset_index(drop=True), points[keep]
    picture = draw(image, faces, points, args.zoom)
    if not cv2.imwrite(str(args.output), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        print(f"error: {args.output}: could not write the picture", file=sys.stderr)
        return 2
    for face in faces.itertuples():
        pitch, roll = (f"{float(v):+.0f}" if pd.notna(v) else "–" for v in (face.pitch, face.roll))
        eyes = "–" if pd.isna(face.eye_open_l) else f"{face.eye_open_l:.2f}/{face.eye_open_r:.2f}"
        print(f"{args.media.name} frame {args.frame}: face {int(face.face_id)} box ({face.x1:.0f}, {face.y1:.0f}, "
              f"{face.x2:.0f}, {face.y2:.0f}) pose_source {face.pose_source} yaw "
              f"{face.yaw:+.0f} pitch {pitch} roll {roll} eyes {eyes}")  # fmt: skip
    if faces.empty:
        print(f"{args.media.name} frame {args.frame}: no face found")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
