"""Head pose (yaw, pitch, roll in degrees) from the 68 landmarks, by OpenCV's solvePnP against a 3-D mean face.

**Model.** :data:`MEAN_FACE` holds 13 points of the face that move little with expression (eye corners, nose,
mouth corners, chin) in millimetres, from adult anthropometric means (eye corners 90 mm and 32 mm apart, nose
tip 40 mm below the eye line and 30 mm in front of the inner eye corners, mouth corners 50 mm apart, chin
106 mm below the eyes). The brows, the lips' middle and the jaw line are left out: they move with expression
or slide along the silhouette as the head turns. Model axes are the camera's for a frontal upright face:
x to the image's right, y down, z away from the camera.

**Camera.** Focal length = the frame's longer side in pixels (a horizontal field of view of about 53° for a
landscape frame, typical of webcams and phones), principal point at the frame's centre, no lens distortion.
Pose angles depend on this only weakly: a wrong focal length mostly changes the distance, not the rotation.

**Angles.** The fitted rotation is split as ``R = R_y(yaw) · R_x(pitch) · R_z(roll)`` (image axes): yaw turns
the head about the image's vertical axis, pitch about the horizontal one, roll about the face's own front
axis. Signs follow the five-point measures (:mod:`fervid.quality`): ``yaw`` positive when the nose points to
the image's right (the person turns to their left); ``pitch`` positive when the face looks up (the nose points
to the top of the image); ``roll`` positive when the eye line runs down to the right on the image. All three
are 0 for an upright face looking into the camera.

**Which estimate** (:func:`choose_pose`, measured on the 63 by-eye labelled faces of tests/data/behaviour,
yaw bins |yaw| < 20° frontal, 20-60° three-quarter, above 60° profile):

* *Near profile* the shape predictor (trained up to about a three-quarter view) folds its points onto the
  visible half or keeps a near-frontal shape half off the face (docs/behaviour.md, "Looked at"), and the fit
  reads far too little turn (-13 to -30° for the Hamilton clip's curly-haired man in
  profile), while the five-point yaw reads the right size but can take the wrong side (+88° for him; the
  detector guesses the hidden eye). What tells the side reliably there is where the nose tip sits in the
  detector's box: ``side`` = (nose x - box centre x) / box width, about ±0.5 in profile (0.38-0.55 on the
  labels), under 0.15 for most frontal faces. So a face is treated as turned too far for the fit when the
  five-point |yaw| exceeds :data:`MAX_FIVE_POINT_YAW` or |side| exceeds :data:`PROFILE_SIDE` (or the fit
  failed, landed behind the camera, reads beyond :data:`MAX_FIT_YAW` or misses by more than
  :data:`MAX_REPROJECTION` of the face's size); it gets ``pose_source`` "5": the side from ``side``, the size
  the larger of the five-point |yaw| and ``asin(|side| / 0.5)``, no pitch, and the five-point roll only when
  the fit was rejected on a face not turned too far: on a turned face the detector guesses the hidden eye, and
  the line through the eyes reads any roll (+109°, -36°, +76° for the upright Hamilton profile).
* *Otherwise* (``pose_source`` "68") pitch and roll are the fit's and yaw is the mean of the fit's and the
  five-point yaw: alone, the fit put 79 % of the labelled faces in the right bin and the five-point yaw 86 %,
  the mean 86 % with smaller errors on each side of the 20° edge.
* ``pose_source`` "none": no angle at all: the five-point yaw, roll or ``side`` is not a number (five landmarks
  or a box that are not finite, or a box of no width; RetinaFace's faces always have both).
"""

from __future__ import annotations

import numpy as np

#: dlib 68-point index -> (x, y, z) in mm of a mean adult face (see the module docstring for the axes).
MEAN_FACE: dict[int, tuple[float, float, float]] = {
    36: (-45.0, 0.0, 40.0),  # outer corner of the image-left eye
    39: (-16.0, 0.0, 30.0),  # its inner corner
    42: (16.0, 0.0, 30.0),  # inner corner of the image-right eye
    45: (45.0, 0.0, 40.0),  # its outer corner
    27: (0.0, -2.0, 22.0),  # top of the nose, between the eyes
    30: (0.0, 40.0, 0.0),  # nose tip
    31: (-13.0, 48.0, 17.0),  # nostril wings
    35: (13.0, 48.0, 17.0),
    33: (0.0, 51.0, 14.0),  # base of the nose
    48: (-25.0, 70.0, 28.0),  # mouth corners
    54: (25.0, 70.0, 28.0),
    8: (0.0, 106.0, 20.0),  # chin
    57: (0.0, 78.0, 20.0),  # middle of the lower lip, outer edge
}
MODEL_INDEX = np.array(sorted(MEAN_FACE), dtype=np.int64)
MODEL_POINTS = np.array([MEAN_FACE[i] for i in MODEL_INDEX], dtype=np.float64)
#: The 68-point pose is not used past this head turn (degrees) by its own estimate...
MAX_FIT_YAW = 60.0
#: ...nor past this one by the five-point estimate, which does not fold at large turns (see the module docstring)...
MAX_FIVE_POINT_YAW = 45.0
#: ...nor when the nose tip sits this far (share of the box's width) from the box's centre: a profile.
PROFILE_SIDE = 0.4
#: ...nor when the RMS reprojection error exceeds this share of the face's size (the RMS spread of its 68 points;
#: 0.04-0.15 on upright faces of ../shared/media).
MAX_REPROJECTION = 0.2
#: ``pose_source`` values.
SOURCES: tuple[str, ...] = ("68", "5", "none")


def camera_matrix(width: float, height: float) -> np.ndarray:
    """The assumed pinhole camera of a frame (see the module docstring)."""
    f = float(max(width, height))
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def angles_of(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a 3x3 head rotation in image axes (x right, y down, z away)."""
    nose = -rotation[:, 2]  # where the face points: (0, 0, -1), toward the camera, for a frontal face
    yaw = np.arctan2(nose[0], -nose[2])
    pitch = np.arctan2(-nose[1], np.hypot(nose[0], nose[2]))
    turn = rotation_y(-yaw) @ rotation_x(-pitch)  # takes (0, 0, -1) to ``nose``
    spin = turn.T @ rotation
    roll = np.arctan2(spin[1, 0], spin[0, 0])
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))


def rotation_of(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The head rotation with these angles (degrees): the inverse of :func:`angles_of`."""
    y, p, r = np.radians([yaw, pitch, roll])
    return rotation_y(-y) @ rotation_x(-p) @ rotation_z(r)


def rotation_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def fit_pose(points: np.ndarray, sizes: np.ndarray) -> dict[str, np.ndarray]:
    """yaw, pitch, roll (degrees) and ``error`` (RMS reprojection error over the face's size) per face.

    ``points`` (n, 68, 2) in frame pixels, ``sizes`` (n, 2) each face's frame (width, height). A face
    solvePnP cannot fit, or fits behind the camera, gets NaN.
    """
    import cv2

    points = np.asarray(points, dtype=np.float64).reshape(-1, 68, 2)
    n = len(points)
    out = {key: np.full(n, np.nan) for key in ("yaw", "pitch", "roll", "error")}
    for row in range(n):
        image_points = points[row, MODEL_INDEX]
        camera = camera_matrix(*sizes[row])
        ok, rvec, tvec = cv2.solvePnP(MODEL_POINTS, image_points, camera, None, flags=cv2.SOLVEPNP_EPNP)
        if ok:
            ok, rvec, tvec = cv2.solvePnP(MODEL_POINTS, image_points, camera, None, rvec, tvec, True,
                                          flags=cv2.SOLVEPNP_ITERATIVE)  # fmt: skip
        if not ok or not np.all(np.isfinite(tvec)) or tvec[2, 0] <= 0:
            continue
        projected, _ = cv2.projectPoints(MODEL_POINTS, rvec, tvec, camera, None)
        spread = np.sqrt(((points[row] - points[row].mean(axis=0)) ** 2).sum(axis=1).mean())
        error = np.sqrt(((projected.reshape(-1, 2) - image_points) ** 2).sum(axis=1).mean())
        rotation, _ = cv2.Rodrigues(rvec)
        out["yaw"][row], out["pitch"][row], out["roll"][row] = angles_of(rotation)
        out["error"][row] = error / max(spread, 1e-6)
    return out


def nose_side(xyxy: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
    """(n,) where the nose tip sits across the face's box: (nose x - box centre x) / box width (-0.5..0.5)."""
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    nose_x = np.asarray(landmarks5, dtype=np.float64).reshape(-1, 5, 2)[:, 2, 0]
    width = boxes[:, 2] - boxes[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(width > 0, (nose_x - (boxes[:, 0] + boxes[:, 2]) / 2) / width, np.nan)


def turned_too_far(yaw5: np.ndarray, side: np.ndarray) -> np.ndarray:
    """(n,) bool: faces turned too far for the 68-point fit, by the five-point yaw or the nose's place in the box
    (:data:`MAX_FIVE_POINT_YAW`, :data:`PROFILE_SIDE`; see the module docstring). NaN compares False."""
    with np.errstate(invalid="ignore"):
        return (np.abs(np.asarray(yaw5, np.float64)) > MAX_FIVE_POINT_YAW) | (
            np.abs(np.asarray(side, np.float64)) > PROFILE_SIDE
        )


def choose_pose(
    fit: dict[str, np.ndarray], yaw5: np.ndarray, roll5: np.ndarray, side: np.ndarray
) -> dict[str, np.ndarray]:
    """``yaw``, ``pitch``, ``roll`` and ``pose_source`` per face from the 68-point ``fit``, the five-point angles
    and :func:`nose_side` (see the module docstring)."""
    yaw5, roll5 = np.asarray(yaw5, dtype=np.float64), np.asarray(roll5, dtype=np.float64)
    side = np.asarray(side, dtype=np.float64)
    turned = turned_too_far(yaw5, side)
    with np.errstate(invalid="ignore"):
        good = (
            np.isfinite(fit["yaw"]) & (fit["error"] <= MAX_REPROJECTION) & (np.abs(fit["yaw"]) <= MAX_FIT_YAW)
            & np.isfinite(yaw5) & ~turned
        )  # fmt: skip
        five = ~good & np.isfinite(yaw5) & np.isfinite(roll5) & np.isfinite(side)
        size = np.maximum(np.abs(yaw5), np.degrees(np.arcsin(np.clip(np.abs(side) / 0.5, 0.0, 1.0))))
        profile_yaw = np.where(side < 0, -size, size)
    source = np.where(good, "68", np.where(five, "5", "none")).astype(object)
    return {
        "yaw": np.where(good, (fit["yaw"] + yaw5) / 2, np.where(five, profile_yaw, np.nan)).astype(np.float32),
        "pitch": np.where(good, fit["pitch"], np.nan).astype(np.float32),
        # a turned face's five-point roll runs through an eye the detector guesses (+109 and -36 degrees on the
        # upright Hamilton profile): no roll then; a rejected fit on a face not turned far keeps the five-point one
        "roll": np.where(good, fit["roll"], np.where(five & ~turned, roll5, np.nan)).astype(np.float32),
        "pose_source": source,
    }
