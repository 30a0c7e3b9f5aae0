"""Per-face measurements that say how well a face can be read: its size, pose, sharpness and light.

Researchers compare faces across conditions, and a label from a face the model could not
read is a guess. These numbers come for (nearly) free from what the pipeline already has:

* **From the five landmarks** (:func:`landmark_measures`): ``face_px``, the eye distance in
  source pixels; ``roll``, the tilt of the eye line; ``yaw``, the head turn, from the
  nose's offset to the eyes' midpoint (below). Pitch is not measured: five points do not
  pin it down (the nose moves along the face's midline with pitch and with face shape alike).
* **From the classifier's own crop** (:func:`crop_measures`), the grey picture the model
  reads (``input_size`` square, before its photometric normalisation), so the numbers
  describe what the model saw whatever the face's size in the frame: ``sharpness``, the
  variance of its Laplacian; ``brightness``, its mean grey level; ``contrast``, its grey
  standard deviation (all on the 0-255 scale).

**Yaw.** In a weak-perspective view of a head turned by ``yaw`` about the vertical axis, the
eye centres (``±a`` across, in one plane) appear ``2a·cos(yaw)`` apart and the nose tip
(``c`` in front of that plane) ``c·sin(yaw)`` off their midpoint, so
``offset / eye distance = (c / 2a)·tan(yaw)``. ``NOSE_DEPTH`` is ``c / 2a`` of a mean adult
face (pupils 63 mm apart, nose tip about 27 mm in front of them, as in the 3-D model commonly
used with OpenCV's solvePnP). The offset is measured along the eye line, so roll does not
leak into yaw.

**Sign conventions** (image coordinates, x to the right, y down): ``roll`` is positive when
the eye line runs down to the right on the image (the face is turned clockwise as seen);
``yaw`` is positive when the nose points to the image's right (the person turns to their
left). Both are 0 for an upright frontal face.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: Nose-tip depth in front of the eye centres, over the distance between them, of a mean face (see above).
NOSE_DEPTH = 27.0 / 63.0
#: The discrete Laplacian (4-neighbour), as OpenCV's ``Laplacian`` with ``ksize=1``.
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).reshape(1, 1, 3, 3)


def landmark_measures(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """``face_px``, ``roll`` and ``yaw`` (degrees) of (n, 5, 2) five-point landmarks (see the module docstring).

    Points: left eye, right eye, nose, left and right mouth corner, as seen in the image.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    eyes = points[:, 1] - points[:, 0]
    eye_px = np.linalg.norm(eyes, axis=1)
    roll = np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0]))
    along = eyes / np.maximum(eye_px, 1e-6)[:, None]  # unit vector of the eye line
    nose = points[:, 2] - (points[:, 0] + points[:, 1]) / 2
    offset = np.einsum("ij,ij->i", nose, along) / np.maximum(eye_px, 1e-6)
    yaw = np.degrees(np.arctan(offset / NOSE_DEPTH))
    return {
        "face_px": eye_px.astype(np.float32),
        "roll": roll.astype(np.float32),
        "yaw": yaw.astype(np.float32),
    }


def crop_measures(crops: torch.Tensor) -> dict[str, np.ndarray]:
    """``sharpness``, ``brightness`` and ``contrast`` of (n, 1, S, S) grey crops on the 0-255 scale.

    Sharpness is the variance of the Laplacian over the crop's interior (the one-pixel border,
    where the crop may meet the frame's edge, is left out): a 48-px crop of an in-focus face
    scores in the hundreds, a blurred one a few tens or less.
    """
    if crops.ndim != 4 or crops.shape[1] != 1:
        raise ValueError(f"crops must be (n, 1, S, S), got {tuple(crops.shape)}")
    grey = crops.float()
    if len(grey) == 0:
        empty = np.zeros(0, dtype=np.float32)
        return {"sharpness": empty, "brightness": empty.copy(), "contrast": empty.copy()}
    laplacian = F.conv2d(grey, _LAPLACIAN.to(grey.device, grey.dtype))
    flat = grey.flatten(1)
    return {
        "sharpness": laplacian.flatten(1).var(dim=1, unbiased=False).cpu().numpy().astype(np.float32),
        "brightness": flat.mean(dim=1).cpu().numpy().astype(np.float32),
        "contrast": flat.std(dim=1, unbiased=False).cpu().numpy().astype(np.float32),
    }
