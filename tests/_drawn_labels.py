"""Records the labels the annotator draws, per frame the video writer writes: the video as drawn (test helper)."""

from __future__ import annotations

import pytest


class DrawnLabels:
    """Each label drawn, with its colour, per written frame index (``by_frame``); ``texts()`` without colours.

    Drawing a frame's labels and writing it happen in one thread, one after the other, so the labels drawn since
    the last write belong to the frame being written. A redraw writes every frame again, and its labels replace
    the first ones.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from fervid.annotate import FrameAnnotator
        from fervid.io.video_writer import VideoWriter

        self.by_frame: dict[int, list[tuple[str, tuple[int, int, int]]]] = {}
        self._pending: list[tuple[str, tuple[int, int, int]]] = []
        draw_label, write = FrameAnnotator._draw_label, VideoWriter.write

        def spy_label(canvas, rect, text, colour, style):  # noqa: ANN001, ANN202
            self._pending.append((text, tuple(colour)))
            return draw_label(canvas, rect, text, colour, style)

        def spy_write(writer, frame, image):  # noqa: ANN001, ANN202
            self.by_frame[frame.index], self._pending = self._pending, []
            return write(writer, frame, image)

        monkeypatch.setattr(FrameAnnotator, "_draw_label", staticmethod(spy_label))
        monkeypatch.setattr(VideoWriter, "write", spy_write)

    def texts(self) -> dict[int, list[str]]:
        """The labels' texts per frame."""
        return {index: [text for text, _ in labels] for index, labels in self.by_frame.items()}
