"""Short real runs shared by the research-output tests (issue 6), each made once per test session.

The CPU is shared and the models are slow there, so every run is a few seconds of video
(``end``, ``every``) and is cached: tests of different files reuse the same outputs.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from conftest import shared_path

WOLFGANG = "media/pyfeat/WolfgangLanger_Pexels.mp4"
HAMILTON = "media/face_recognition/short_hamilton_clip.mp4"
#: Options of the cached CLI-equivalent run (smoothed, both table formats).
SMOOTH_S = 0.5

_ROOT = Path(tempfile.mkdtemp(prefix="fervid-research-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@functools.cache
def wolfgang_smoothed() -> tuple[object, Path, list[tuple[float, list[str]]]]:
    """WolfgangLanger, first 5 s at every 2nd frame, smoothed 0.5 s, video on, tables in CSV and Parquet.

    Returns the AnnotateResult, its output folder, and per frame the labels the annotator
    was asked to draw (recorded by wrapping ``FrameAnnotator.annotate``).
    """
    import fervid.api as api
    from fervid.annotate import FrameAnnotator

    source = shared_path(WOLFGANG)
    drawn: list[tuple[float, list[str]]] = []
    original = FrameAnnotator.annotate

    def spy(self, image, detections, predictions=None):  # type: ignore[no-untyped-def]
        drawn.append((len(drawn), list(predictions.label) if predictions is not None else []))
        return original(self, image, detections, predictions)

    FrameAnnotator.annotate = spy  # type: ignore[method-assign]
    try:
        result = api.annotate(source, _ROOT / "wolfgang", device="cpu", end=5.0, every=2, smooth=SMOOTH_S,
                              format="both", batch_size=8)  # fmt: skip
    finally:
        FrameAnnotator.annotate = original  # type: ignore[method-assign]
    return result, _ROOT / "wolfgang" / source.stem, drawn


@functools.cache
def two_inputs() -> Path:
    """An ``annotate -o`` folder with two short inputs (WolfgangLanger and the Hamilton clip), CSV tables."""
    import fervid

    out = _ROOT / "corpus"
    for relative in (WOLFGANG, HAMILTON):
        fervid.annotate(shared_path(relative), out, device="cpu", end=1.5, every=3, video=False, plots=False)
    return out


@functools.cache
def wolfgang_coded_span() -> Path:
    """WolfgangLanger 7-12.5 s at every 2nd frame, smoothed 0.5 s, ELAN with every run (``elan_min_run=0``, so the
    ELAN file holds exactly the smoothed labels), no video or plot: the input folder (``fervid agree``'s tests)."""
    import fervid

    source = shared_path(WOLFGANG)
    out = _ROOT / "coded"
    fervid.annotate(source, out, device="cpu", start=7.0, end=12.5, every=2, smooth=SMOOTH_S, elan_min_run=0,
                    video=False, plots=False, batch_size=8)  # fmt: skip
    return out / source.stem
