"""The engine: loaded models that turn frames into :class:`~fervid.types.FrameResult`s, in order.

``Engine(options)`` loads the detector and the expression classifier once (from
:class:`~fervid.options.AnnotateOptions`), hashes their weights for run.json, and sets the
torch thread count once for its thread plan. :meth:`Engine.results` then runs the stages
on a stream of frames:

1. **detect** batches of frames in ``workers`` threads (:class:`~fervid.concurrency.BoundedStage`),
   results back in frame order; with ``--detect-every N`` > 1, video is searched in full on key
   frames only and faces are followed in windows in between, in step with step 2
   (:mod:`fervid.keyframes`);
2. **number** the faces frame by frame in the calling thread (:mod:`fervid.face_ids`: a
   tracker for video, left-to-right numbering for photos), which may hold a few frames back;
3. **classify** the kept faces of a batch of frames in one forward pass;
4. **behaviour** (unless ``--no-behaviour``): 68 landmarks for the same faces in one predictor call, and
   the measures made from them (:mod:`fervid.behaviour`), after classification so the classifier's
   ``readable`` and ``p_correct`` keep reading the five-point yaw and roll they were fitted on.

What to do with the results (smoothing, tables, video) is the run loop's business
(:mod:`fervid.run`); the engine writes nothing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from fervid.concurrency import BoundedStage
from fervid.devices import resolve_device
from fervid.face_ids import FaceIds, tracked_faces
from fervid.keyframes import KeyframeSchedule
from fervid.models.weights_info import WeightsInfo
from fervid.options import AnnotateOptions, RuntimeOptions
from fervid.types import Detections, Frame, FrameResult, Predictions

#: On CPU the detector gets at most this many frames per forward: small batches keep the
#: activations in cache (at 640x360 a batch of 16 was ~1.3x slower per frame than 2-4).
CPU_DETECT_BATCH = 4
#: At most this many detector threads on CPU (more cores go to each thread's torch ops).
MAX_CPU_WORKERS = 4
T = TypeVar("T")


@dataclass(frozen=True)
class ThreadPlan:
    """Detector threads, and torch intra-op threads for each (None: leave torch's setting alone)."""

    workers: int
    torch_threads: int | None


def plan_threads(device: torch.device, workers: int | None = None, cores: int | None = None) -> ThreadPlan:
    """How to spread the work over this machine's cores.

    CUDA: one thread feeds the GPU, which serialises the work anyway; the thread lets the
    host-side work (tracking, drawing) overlap with it. CPU: up to ``MAX_CPU_WORKERS``
    detector threads, each running torch with ``cores // workers`` threads, so small ops
    (depthwise convs at batch 1-4) run side by side instead of being split across cores,
    where they scale poorly. ``workers`` overrides the count (0: everything in the calling thread).
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type != "cpu":
        return ThreadPlan(1 if workers is None else workers, None)
    if workers is None:
        workers = max(1, min(cores, MAX_CPU_WORKERS))
    return ThreadPlan(workers, max(1, cores // max(1, workers)))


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Engine:
    """The models of a run, loaded once and reused for every input (see the module docstring)."""

    def __init__(self, options: AnnotateOptions, cores: int | None = None) -> None:
        self.options = options
        #: CPU cores this engine may use (None: all this process may run on); a Ray worker passes its share.
        self.cores = cores
        self.device = resolve_device(options.runtime.device)
        self.detector = options.detection.build(self.device)
        self.classifier = options.classification.build(self.device)
        #: (face embedder, known people's descriptors), or None with --no-identity.
        self.identity = options.identity.build(self.device, self.detector)
        #: The behaviour step (68 landmarks and what is measured from them), or None with --no-behaviour.
        self.behaviour = options.behaviour.build()
        # Set once, here, for the whole run: never toggled inside a generator, where the change
        # would leak into the caller's code between two frames of ``fervid.stream``.
        threads = plan_threads(self.device, options.runtime.workers, cores).torch_threads
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        #: The key-frame schedule of the last input run with ``--detect-every`` > 1 (its counts of key frames).
        self.last_schedule: KeyframeSchedule | None = None
        # Each stage keeps its loader's provenance (hashed at the load: training may rewrite weights/ later).
        self.weights: dict[str, WeightsInfo] = {
            "expression": self.classifier.weights,
            "detector": self.detector.weights,
        }
        if self.behaviour is not None:
            self.weights["landmarks"] = self.behaviour.weights
        if self.identity is not None:
            self.weights["identity"] = self.identity[0].weights
        self.models = {role: weights.record() for role, weights in self.weights.items()}  # run.json's "models"
        if self.identity is not None:
            self.models["identity"]["known_people"] = sorted(self.identity[1])

    @property
    def classes(self) -> tuple[str, ...]:
        return self.classifier.classes

    @property
    def data_columns(self) -> tuple[str, ...]:
        """The per-face values every result's ``Detections.data`` holds (faces-table columns), in no set order."""
        behaviour = self.behaviour.data_columns if self.behaviour is not None else ()
        return tuple(dict.fromkeys((*self.classifier.data_columns, *behaviour)))

    def results(
        self, frames: Iterable[Frame], face_ids: FaceIds, runtime: RuntimeOptions
    ) -> Generator[FrameResult, None, None]:
        """Every frame with its kept faces and their expressions, in order (see the module docstring).

        Closing the generator early (an error downstream, ``break``) stops the detector threads at once.
        """
        numbered = self._numbered(frames, face_ids, runtime)
        try:
            for batch in chunks(numbered, runtime.batch_size):
                predictions = self._classify(batch)
                for (frame, dets), preds in zip(batch, predictions):
                    yield FrameResult(frame, dets, preds)
        finally:
            numbered.close()

    def _classify(self, batch: list[tuple[Frame, Detections]]) -> list[Predictions]:
        """Classify the batch's faces, then measure their behaviour (writing into each ``Detections.data``)."""
        images, detections = [f.image for f, _ in batch], [dets for _, dets in batch]
        predictions = self.classifier.classify(_frame_tensors(images), detections)
        if self.behaviour is not None:
            self.behaviour.measure(images, detections, predictions)
        return predictions

    def _numbered(
        self, frames: Iterable[Frame], face_ids: FaceIds, runtime: RuntimeOptions
    ) -> Generator[tuple[Frame, Detections], None, None]:
        plan = plan_threads(self.device, runtime.workers, self.cores)
        size = runtime.batch_size
        if self.device.type == "cpu" and plan.workers > 0:
            size = min(size, CPU_DETECT_BATCH)
        tracked = tracked_faces(face_ids)
        every = self.options.detection.detect_every
        if every > 1 and tracked is not None:  # video: key frames in full, faces followed in between
            self.last_schedule = KeyframeSchedule(self.detector, face_ids, tracked, every, plan.workers)
            followed = self.last_schedule.numbered(frames)
            try:
                yield from followed
                yield from face_ids.flush()
            finally:
                followed.close()
            return
        detected = BoundedStage(self._detect, plan.workers, name="fervid-detect").map(chunks(frames, size))
        try:
            for batch, detections in detected:
                for frame, dets in zip(batch, detections):
                    yield from face_ids.push(frame, dets)
            yield from face_ids.flush()
        finally:
            detected.close()

    def _detect(self, batch: list[Frame]) -> tuple[list[Frame], list[Detections]]:
        return batch, self.detector.detect([f.image for f in batch])


def _frame_tensors(images: list[np.ndarray]) -> list[torch.Tensor]:
    """The frames as (H, W, 3) tensors sharing their memory: the classifier only reads the face regions."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return [torch.as_tensor(np.ascontiguousarray(img)) for img in images]
