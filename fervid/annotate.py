"""Draw tracked faces and their expressions on a frame.

``FrameAnnotator`` follows the supervision annotator shape: style is fixed in
``__init__``, ``annotate(image, detections, predictions)`` draws on a copy and
returns it. Sizes (line width, font) are derived from the image's short side, so
the same annotator is readable on 360p and on 1080p. Colours come from a fixed
palette indexed by person ID (or track ID before identity, or without it), so a person
keeps their colour for the whole video; untracked rows (``track_id < 1``) are grey.

A face whose label cannot be trusted (:func:`fervid.io.tables.trusted`: not readable, or
``p_correct`` below ``--min-p-correct``; the classifier puts both in ``detections.data``) gets
a dashed grey box and a grey tag ``P2 ?``: who it is, no emotion and no bars.
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fervid.defaults import MIN_P_CORRECT
from fervid.io.tables import trusted
from fervid.types import Detections, Predictions

Colour = tuple[int, int, int]
_Rect = tuple[int, int, int, int]  # left, top, right, bottom

#: 19 mutually distinct colours (Sasha Trubetskoy's list without grey, white and
#: black) plus sky blue, in RGB; track ID ``k`` uses ``PALETTE[(k - 1) % 20]``.
PALETTE: tuple[Colour, ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (100, 180, 255),
)
UNTRACKED: Colour = (160, 160, 160)
#: Box and tag of a face whose label cannot be trusted (its tag says ``?``).
UNTRUSTED: Colour = (160, 160, 160)
#: Landmark dot colours: left eye, right eye, nose, left and right mouth corner.
LANDMARK_COLOURS: tuple[Colour, ...] = ((255, 0, 0), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 80, 255))

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_COORD_LIMIT = 1 << 20  # keep coordinates well inside OpenCV's int range


def colour_for(track_id: int) -> Colour:
    """Stable colour of a track ID; grey for untracked rows."""
    return UNTRACKED if track_id < 1 else PALETTE[(int(track_id) - 1) % len(PALETTE)]


def abbreviations(classes: Sequence[str]) -> list[str]:
    """Shortest prefixes (at least one letter) that tell the classes apart.

    Plain initials collide for the expression classes ("sad", "surprise"), so the
    prefix grows until every name is unique or fully spelled out.
    """
    names = [c.capitalize() for c in classes]
    longest = max((len(n) for n in names), default=1)
    for length in range(1, longest + 1):
        short = [n[:length] for n in names]
        if len(set(short)) == len(short):
            return short
    return names


@dataclass(frozen=True)
class _Style:
    """Sizes in pixels derived from one image's size."""

    thickness: int
    font_scale: float
    font_thickness: int
    pad: int

    @property
    def small_scale(self) -> float:
        return max(0.35, self.font_scale * 0.6)


def _text_colour(background: Colour) -> Colour:
    """Black on light colours, white on dark ones (Rec. 601 luma)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _darken(canvas: np.ndarray, x0: int, y0: int, x1: int, y1: int, keep: float = 0.35) -> None:
    """Dim a rectangle in place so text over busy video stays readable (clipped to the image)."""
    h, w = canvas.shape[:2]
    x0, x1 = np.clip([x0, x1], 0, w)
    y0, y1 = np.clip([y0, y1], 0, h)
    if x1 > x0 and y1 > y0:
        roi = canvas[y0:y1, x0:x1]
        roi[:] = (roi * keep).astype(np.uint8)


class FrameAnnotator:
    """Draw boxes, labels, probability bars and landmarks on RGB frames.

    Args:
        show_landmarks: draw the five RetinaFace points as small dots.
        show_bars: when predictions are given, draw one small bar per class beside
            the box (class abbreviation + bar proportional to the probability). The
            panel goes right of the box, else below the label, else left of the box,
            so it never hides the label.
        thickness: box line width in pixels; None derives it from the image size.
        max_faces_for_bars: bars are drawn only in frames with at most this many faces;
            in a crowd they would cover the neighbours' faces and labels.
        min_p_correct: faces below it, or not readable (``detections.data``), are drawn grey with ``?``
            (:func:`fervid.io.tables.trusted`); 0 draws every label. None: the option's default.
    """

    def __init__(
        self,
        show_landmarks: bool = False,
        show_bars: bool = True,
        thickness: int | None = None,
        max_faces_for_bars: int = 3,
        names: Callable[[int], str | None] | None = None,
        min_p_correct: float | None = None,
    ):
        if thickness is not None and thickness < 1:
            raise ValueError(f"thickness must be >= 1 or None (automatic), got {thickness}")
        self.min_p_correct = MIN_P_CORRECT if min_p_correct is None else float(min_p_correct)
        self.show_landmarks = show_landmarks
        self.show_bars = show_bars
        self.thickness = thickness
        self.max_faces_for_bars = max_faces_for_bars
        self.names = names

    def with_names(self, names: Callable[[int], str | None] | None) -> FrameAnnotator:
        """The same style with other person names (identity's final names, after a run)."""
        other = copy.copy(self)
        other.names = names
        return other

    def annotate(self, image: np.ndarray, detections: Detections, predictions: Predictions | None = None) -> np.ndarray:
        """Return a copy of ``image`` (H, W, 3 uint8 RGB) with the detections drawn on it."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        if predictions is not None and len(predictions) != len(detections):
            raise ValueError(f"predictions have {len(predictions)} rows, detections have {len(detections)}")
        canvas = np.ascontiguousarray(image).copy()
        style = self._style(canvas.shape)
        rows = np.flatnonzero(np.isfinite(detections.xyxy).all(axis=1))
        boxes = np.rint(np.clip(np.nan_to_num(detections.xyxy), -_COORD_LIMIT, _COORD_LIMIT)).astype(np.int64)
        who = [self._who(int(t), int(p)) for t, p in zip(detections.track_id, detections.person_id)]
        ok = trusted(detections, self.min_p_correct)
        colours = [colour_for(int(p) if p >= 1 else int(t)) if good else UNTRUSTED
                   for t, p, good in zip(detections.track_id, detections.person_id, ok)]  # fmt: skip
        texts = {int(i): _label_text(who[i], predictions if ok[i] else None, int(i), not ok[i]) for i in rows}
        labels = {i: _label_rect(canvas.shape, boxes[i], text, style) for i, text in texts.items() if text}
        for i in rows:
            x0, y0, x1, y1 = boxes[i].tolist()
            if ok[i]:
                # Axis-aligned on whole pixels: LINE_8 is crisp, LINE_AA would only blur the edge.
                cv2.rectangle(canvas, (x0, y0), (x1, y1), colours[i], style.thickness, cv2.LINE_8)
            else:  # dashed: grey alone could pass for a pale person colour
                _dashed_rectangle(canvas, (x0, y0, x1, y1), colours[i], style.thickness)
        if self.show_landmarks:
            self._draw_landmarks(canvas, detections.landmarks[rows], style)
        if self.show_bars and predictions is not None and len(rows) <= self.max_faces_for_bars:
            short = abbreviations(predictions.classes)
            for i in rows[ok[rows]]:
                label = labels.get(int(i))
                self._draw_bars(canvas, boxes[i], label, predictions.probs[i], short, colours[i], style)
        # Labels last so no other face's box or bars cover them.
        for k, rect in labels.items():
            self._draw_label(canvas, rect, texts[k], colours[k], style)
        return canvas

    def _style(self, shape: tuple[int, ...]) -> _Style:
        """Scale lines and text with the short side: 1 px / 0.5 at 360p, 3 px / 1.5 at 1080p."""
        short = min(shape[:2])
        font_scale = max(0.35, short / 720)
        return _Style(
            thickness=self.thickness or max(1, round(short / 360)),
            font_scale=font_scale,
            font_thickness=max(1, round(font_scale * 1.4)),
            pad=max(1, round(font_scale * 4)),
        )

    def _who(self, track_id: int, person_id: int) -> str:
        """``P2`` (with the name when known) for an identified person, else ``#3`` for the track, else nothing."""
        if person_id >= 1:
            name = self.names(person_id) if self.names is not None else None
            return f"P{person_id} {_ascii(name)}" if name else f"P{person_id}"
        return f"#{track_id}" if track_id >= 1 else ""

    @staticmethod
    def _draw_label(canvas: np.ndarray, rect: _Rect, text: str, colour: Colour, style: _Style) -> None:
        """Filled tag with the text in black or white, whichever reads better on the colour."""
        left, top, right, bottom = rect
        cv2.rectangle(canvas, (left, top), (right, bottom), colour, cv2.FILLED)
        (_, th), baseline = cv2.getTextSize(text, _FONT, style.font_scale, style.font_thickness)
        origin = (left + style.pad, top + style.pad + th)
        cv2.putText(
            canvas, text, origin, _FONT, style.font_scale, _text_colour(colour), style.font_thickness, cv2.LINE_AA
        )

    @staticmethod
    def _draw_bars(
        canvas: np.ndarray,
        box: np.ndarray,
        label: _Rect | None,
        probs: np.ndarray,
        short: list[str],
        colour: Colour,
        style: _Style,
    ) -> None:
        """One row per class (abbreviation + bar) on a dimmed panel placed clear of the label."""
        thick = max(1, style.font_thickness - 1)
        sizes = [cv2.getTextSize(s, _FONT, style.small_scale, thick)[0] for s in short]
        text_w, text_h = max(s[0] for s in sizes), max(s[1] for s in sizes)
        row_h = text_h + style.pad + 1
        bar_len = 6 * row_h
        panel_w = 3 * style.pad + text_w + bar_len
        panel_h = row_h * len(short) + style.pad
        left, top = _place_panel(canvas.shape, box, label, panel_w, panel_h, style.thickness + style.pad)
        _darken(canvas, left, top, left + panel_w, top + panel_h)
        bar_x = left + 2 * style.pad + text_w
        for k, (name, p) in enumerate(zip(short, np.clip(probs, 0.0, 1.0), strict=True)):
            row_top = top + style.pad + k * row_h
            text_y = row_top + text_h
            cv2.putText(
                canvas, name, (left + style.pad, text_y), _FONT, style.small_scale, (255, 255, 255), thick, cv2.LINE_AA
            )
            bar_top, bar_bottom = row_top + 1, row_top + text_h
            cv2.rectangle(canvas, (bar_x, bar_top), (bar_x + bar_len, bar_bottom), (110, 110, 110), 1)
            filled = int(round(float(p) * bar_len))
            if filled > 0:
                cv2.rectangle(canvas, (bar_x, bar_top), (bar_x + filled, bar_bottom), colour, cv2.FILLED)

    @staticmethod
    def _draw_landmarks(canvas: np.ndarray, landmarks: np.ndarray, style: _Style) -> None:
        radius = max(1, style.thickness + 1)
        points = np.rint(np.clip(np.nan_to_num(landmarks, nan=-1e6), -_COORD_LIMIT, _COORD_LIMIT)).astype(int)
        for face in points:
            for (x, y), colour in zip(face.tolist(), LANDMARK_COLOURS, strict=True):
                cv2.circle(canvas, (x, y), radius, colour, cv2.FILLED, cv2.LINE_AA)


def _dashed_rectangle(canvas: np.ndarray, box: _Rect, colour: Colour, thickness: int) -> None:
    """A box of dashes (``4 * thickness + 2`` px on, as much off), starting at the corners' left and top."""
    x0, y0, x1, y1 = box
    h, w = canvas.shape[:2]
    period = 2 * (4 * thickness + 2)
    for a, b, fixed, horizontal in ((x0, x1, y0, True), (x0, x1, y1, True), (y0, y1, x0, False), (y0, y1, x1, False)):
        first = a + max(0, (-period - a) // period) * period  # the first dash that may reach the image
        for start in range(first, min(b, w if horizontal else h) + 1, period):
            end = min(start + period // 2, b)
            ends = ((start, fixed), (end, fixed)) if horizontal else ((fixed, start), (fixed, end))
            cv2.line(canvas, *ends, colour, thickness, cv2.LINE_8)


def _label_rect(shape: tuple[int, ...], box: np.ndarray, text: str, style: _Style) -> _Rect:
    """Where the label goes: on top of the box, inside it when there is no room above, on screen."""
    h, w = shape[:2]
    (tw, th), baseline = cv2.getTextSize(text, _FONT, style.font_scale, style.font_thickness)
    label_w, label_h = tw + 2 * style.pad, th + baseline + 2 * style.pad
    x0, y0 = int(box[0]), int(box[1])
    top = y0 - label_h if y0 - label_h >= 0 else y0
    top = int(np.clip(top, 0, max(0, h - label_h)))
    left = int(np.clip(x0, 0, max(0, w - label_w)))
    return left, top, left + label_w, top + label_h


def _place_panel(
    shape: tuple[int, ...], box: np.ndarray, label: _Rect | None, width: int, height: int, gap: int
) -> tuple[int, int]:
    """Top-left of the bar panel: right of the box, below the label, left of the box, in that order.

    A candidate is taken when it fits the image without shifting sideways and does not
    overlap the label (a label wider than its box, or a panel pushed up by the bottom
    edge, would otherwise cover text); otherwise the first candidate, clamped.
    """
    h, w = shape[:2]
    x0, y0, x1 = int(box[0]), int(box[1]), int(box[2])
    below_label = (label[3] if label is not None else y0) + gap // 2
    candidates = [(x1 + gap, y0), (x1 + gap, below_label), (x0 - gap - width, y0)]
    clamped = []
    for left, top in candidates:
        fits = 0 <= left <= w - width
        left, top = int(np.clip(left, 0, max(0, w - width))), int(np.clip(top, 0, max(0, h - height)))
        clamped.append((left, top))
        if fits and (label is None or not _overlap(label, (left, top, left + width, top + height))):
            return left, top
    return clamped[0]


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only: ``José`` -> ``Jose``, other letters -> ``?``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return plain if plain.strip() else "?"


def _overlap(a: _Rect, b: _Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_text(who: str, predictions: Predictions | None, row: int, untrusted: bool = False) -> str:
    """``#3 happy 0.87`` or ``P2 Ada happy 0.87``; parts that are unknown (no ID, no predictions) are left out.
    An untrusted face: ``P2 ?``."""
    parts = [who] if who else []
    if untrusted:
        parts.append("?")
    elif predictions is not None:
        probs = predictions.probs[row]
        top = int(np.argmax(probs))
        parts.append(f"{predictions.classes[top]} {float(probs[top]):.2f}")
    return " ".join(parts)
