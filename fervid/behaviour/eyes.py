"""Eye and mouth opening from the 68 landmarks.

**Eye opening** is the eye aspect ratio of Soukupová and Čech (2016, "Real-time eye blink detection using
facial landmarks"): with an eye's six points p1..p6 (p1, p4 the corners; p2, p3 on the upper lid; p6, p5
below them), ``EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)``. About 0.25-0.35 for an open eye, near 0.1 or
less when closed; it does not change with the face's size or with roll. ``eye_open_l`` is the eye on the
**image's** left (dlib points 36-41: the person's right eye), ``eye_open_r`` the one on the image's right
(points 42-47), as the five landmarks ``lm1``/``lm2`` are numbered as seen in the image.

**Mouth opening** is the mean gap between the inner lips (points 61-67, 62-66, 63-65) over the distance
between the two eyes' centres (the mean of each eye's six points): 0 with the lips together, about 0.1-0.3
when talking, 0.5 and more for a wide-open mouth (singing, yawning, surprise).
"""

from __future__ import annotations

import numpy as np

#: dlib 68-point indices of each eye, in the paper's order p1..p6.
EYE_L = np.array([36, 37, 38, 39, 40, 41])
EYE_R = np.array([42, 43, 44, 45, 46, 47])
#: Inner-lip pairs (upper, lower) of the 68 points.
INNER_LIPS = np.array([[61, 67], [62, 66], [63, 65]])


def eye_aspect_ratio(eye: np.ndarray) -> np.ndarray:
    """(n,) EAR of (n, 6, 2) eye points p1..p6 (NaN where the corners coincide)."""
    eye = np.asarray(eye, dtype=np.float64)
    vertical = np.linalg.norm(eye[:, 1] - eye[:, 5], axis=1) + np.linalg.norm(eye[:, 2] - eye[:, 4], axis=1)
    width = np.linalg.norm(eye[:, 0] - eye[:, 3], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(width > 0, vertical / (2 * width), np.nan)


def eye_and_mouth(points: np.ndarray) -> dict[str, np.ndarray]:
    """``eye_open_l``, ``eye_open_r`` and ``mouth_open`` (float32) of (n, 68, 2) landmarks (see the module)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 68, 2)
    eye_distance = np.linalg.norm(points[:, EYE_R].mean(axis=1) - points[:, EYE_L].mean(axis=1), axis=1)
    gap = np.linalg.norm(points[:, INNER_LIPS[:, 0]] - points[:, INNER_LIPS[:, 1]], axis=2).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mouth = np.where(eye_distance > 0, gap / eye_distance, np.nan)
    return {
        "eye_open_l": eye_aspect_ratio(points[:, EYE_L]).astype(np.float32),
        "eye_open_r": eye_aspect_ratio(points[:, EYE_R]).astype(np.float32),
        "mouth_open": mouth.astype(np.float32),
    }
