"""Facial behaviour beside the expression labels, from the 68 landmarks: head pose, eyes, mouth, blinks, valence.

* :mod:`fervid.behaviour.pose`: yaw, pitch and roll from the 68 points and a 3-D mean face (OpenCV solvePnP),
  with the five-point angles as the fallback where the 68-point fit cannot be trusted;
* :mod:`fervid.behaviour.eyes`: eye opening (eye aspect ratio) and mouth opening;
* :mod:`fervid.behaviour.blinks`: blinks per face track, from the eye opening over time;
* :mod:`fervid.behaviour.valence`: FaceReader's valence from the expression probabilities;
* :mod:`fervid.behaviour.stage`: the engine's step that fills ``Detections.data`` for a batch of frames;
* :mod:`fervid.behaviour.summary`: ``blinks_per_min`` and ``mean_valence`` per track and per person.

docs/behaviour-measures.md says what each number means, its sign convention and its limits.
"""
