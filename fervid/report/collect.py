"""The report's frame sink: picks gallery faces and moment thumbnails while frames stream.

Frames are not kept after the frame loop, so whatever the report shows of them is cut here,
per track (person IDs are final only at the end). :class:`ReportCollector` writes no file:
``collected`` hands a :class:`ReportMaterial` to :class:`fervid.input_result.InputResult`
(``result.collected["report"]``), where :class:`fervid.report.sink.ReportSink` finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fervid.options import AnnotateOptions
from fervid.report.gallery import GalleryCollector, TrackPictures
from fervid.report.moments import Peak, PeakCollector, Smoothing, report_smoothing
from fervid.smooth import SmoothedResult

#: The key of the report's material in ``InputResult.collected``.
KEY = "report"


@dataclass
class ReportMaterial:
    """What the frame loop collected for the report: faces per track, moment peaks per (track, class)."""

    tracks: dict[int, TrackPictures]
    peaks: dict[tuple[int, str], Peak]
    smoothing: Smoothing


class ReportCollector:
    """A frame sink (``add``, ``close``, ``abort``) that writes nothing and collects for the report."""

    def __init__(self, options: AnnotateOptions) -> None:
        self.smoothing = report_smoothing(options)
        self._gallery = GalleryCollector()
        self._peaks = PeakCollector(
            self.smoothing, options.output.moment_threshold, min_p_correct=options.classification.min_p_correct
        )
        self._material: ReportMaterial | None = None

    def add(self, result: SmoothedResult) -> None:
        self._gallery.add(result.frame, result.detections)
        self._peaks.add(result.frame, result.detections, result.predictions)

    def close(self) -> list[Path]:
        self._material = ReportMaterial(self._gallery.finish(), self._peaks.finish(), self.smoothing)
        return []

    def abort(self) -> None:
        self._material = None

    @property
    def collected(self) -> dict[str, ReportMaterial]:
        return {KEY: self._material} if self._material is not None else {}
