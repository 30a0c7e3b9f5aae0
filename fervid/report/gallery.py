"""The face gallery: each subject's best face, a few faces spread over time, and a contact sheet.

While frames stream (:class:`GalleryCollector`, fed by the report's frame sink), every track
keeps its best face so far and the best face of each stretch of time, as small JPEG crops
(a few kilobytes each: frames are not kept after the frame loop). A face's score is
:func:`fervid.identity.stage.face_quality` (large, confident, frontal) times a sharpness
factor from :func:`fervid.identity.stage.sharpness`; faces too small for ``face_quality``
still get a tiny score, so a track of small faces has a picture too. Sharpness costs a
fraction of a millisecond, so it is measured only for a face that could beat the current best.

At the end, :func:`pick_gallery` takes each subject's best face over all of its tracks and
up to ``SPREAD`` faces evenly spread over its time on screen; :func:`write_gallery` saves
``faces/<label>.jpg`` (the best), ``faces/<label>-<k>.jpg`` (the spread, in time order) and
the contact sheet ``<stem>.faces.png`` (one row per subject).
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fervid.identity.stage import MIN_CONTRAST, MIN_SHARPNESS, face_quality, sharpness
from fervid.io.atomic import atomic_path
from fervid.report.subjects import Subject
from fervid.types import Detections, Frame

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from PIL.ImageFont import FreeTypeFont, ImageFont

#: Side of a gallery crop in pixels, and the margin around the face box on each side (fraction of its side).
CROP_PX = 160
MARGIN = 0.3
#: A face this sharp (Laplacian variance, see ``sharpness``) counts as fully sharp.
SHARP_FULL = 5 * MIN_SHARPNESS
#: Faces kept per subject besides the best, spread over time.
SPREAD = 4
#: Spread faces start as one per second of a track; past ``2 * SPREAD`` the stretches double.
SAMPLE_STEP_S = 1.0
#: A face replaces the kept one only when its score is this much higher (or it is identifiable and the kept
#: one is not): scores jitter from frame to frame, and each replacement costs a crop and a JPEG.
IMPROVE = 1.1
#: Frames of a video the gallery looks at: one per this many seconds, plus every frame where a track starts.
LOOK_EVERY_S = 0.1
#: Subjects on the contact sheet at most (all of them are in ``faces/`` and the HTML report).
SHEET_ROWS = 200
#: The names of the gallery's files (``remove_stale`` leaves everything else in ``faces/`` alone).
GALLERY_FILE = re.compile(r"^[PF]\d+(-\d+)?\.jpg$")
JPEG_QUALITY = 90
#: A face whose box overlaps another face's box by more than this share is taken as occluded (or a box
#: straddling two faces) and scored ``OCCLUDED_FACTOR`` times lower: a last resort for the gallery.
OCCLUDED_SHARE = 0.1
OCCLUDED_FACTOR = 0.01


@dataclass(frozen=True)
class FaceCrop:
    """One saved face: where it came from and its JPEG bytes."""

    score: float
    time_s: float
    frame: int
    track_id: int
    box: tuple[float, float, float, float]
    jpeg: bytes
    identifiable: bool = False  # large, sharp and bright enough for the identity stage, and not occluded
    file: str | None = None  # the image file it was cut from (None for video)

    @property
    def rank(self) -> tuple[bool, float]:
        """Faces the identity stage could vouch for first, then by score."""
        return (self.identifiable, self.score)


@dataclass
class TrackPictures:
    """What a track keeps while frames stream: its best face, the best of the current stretch, earlier ones."""

    first_s: float
    best: FaceCrop | None = None
    bucket: FaceCrop | None = None
    bucket_index: int = 0
    step_s: float = SAMPLE_STEP_S
    samples: list[FaceCrop] = field(default_factory=list)

    def roll(self, time_s: float) -> None:
        """Close the current stretch when ``time_s`` is past it; thin the samples when there are too many."""
        index = math.floor((time_s - self.first_s) / self.step_s)
        if index == self.bucket_index:
            return
        if self.bucket is not None:
            self.samples.append(self.bucket)
            self.bucket = None
        if len(self.samples) > 2 * SPREAD:
            pairs = zip(self.samples[0::2], [*self.samples[1::2], None])
            self.samples = [a if b is None or a.rank >= b.rank else b for a, b in pairs]
            self.step_s *= 2
        self.bucket_index = math.floor((time_s - self.first_s) / self.step_s)

    def finish(self) -> None:
        if self.bucket is not None:
            self.samples.append(self.bucket)
            self.bucket = None


def face_crop(image: np.ndarray, box: np.ndarray, size: int = CROP_PX, margin: float = MARGIN) -> np.ndarray:
    """A square RGB crop around a face box with ``margin`` on every side, padded dark beyond the image, resized."""
    return resized(padded(*face_region(image, box, margin)), size)


Pads = tuple[int, int, int, int]  # top, bottom, left, right


def face_region(image: np.ndarray, box: np.ndarray, margin: float = MARGIN) -> tuple[np.ndarray, Pads]:
    """The part of the image inside the square around a face box (``margin`` on every side), as a copy, and how
    much of the square lies beyond the image on each side.

    A copy, so the frame can go; :func:`padded` and :func:`resized` make the thumbnail later, only if it is
    still wanted then.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 2.0) * (1 + 2 * margin)
    s = max(2, round(side))
    left, top = round((x0 + x1 - s) / 2), round((y0 + y1 - s) / 2)
    h, w = image.shape[:2]
    x_a, y_a, x_b, y_b = max(left, 0), max(top, 0), min(left + s, w), min(top + s, h)
    if x_b <= x_a or y_b <= y_a:
        return np.full((2, 2, 3), 24, dtype=np.uint8), (0, 0, 0, 0)
    return image[y_a:y_b, x_a:x_b].copy(), (y_a - top, top + s - y_b, x_a - left, left + s - x_b)


def padded(region: np.ndarray, pads: Pads) -> np.ndarray:
    """The square again: the region with dark padding where it lay beyond the image."""
    if not any(pads):
        return region
    return cv2.copyMakeBorder(region, *pads, cv2.BORDER_CONSTANT, value=(24, 24, 24))


def resized(region: np.ndarray, size: int) -> np.ndarray:
    """A square region at ``size``: area-averaged by an integer factor (OpenCV's fast path), bilinear before."""
    side = region.shape[0]
    if side <= size:
        return cv2.resize(region, (size, size), interpolation=cv2.INTER_CUBIC)
    k = side // size
    if k < 2:
        return cv2.resize(region, (size, size), interpolation=cv2.INTER_LINEAR)
    region = cv2.resize(region, (size * k, size * k), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode a face crop as JPEG")
    return data.tobytes()


def base_scores(detections: Detections) -> tuple[np.ndarray, np.ndarray]:
    """Per face: whether it may count as identifiable (``face_quality`` > 0, i.e. at least 40 px, and not
    :func:`occluded`), and its score before sharpness: ``face_quality`` (or, below 40 px, a tiny
    size-and-confidence score) times :func:`alone`, so a crop that shows one face beats a crowded one."""
    height = detections.xyxy[:, 3] - detections.xyxy[:, 1]
    small = 0.01 * detections.score * np.clip(height / 112.0, 0.0, 1.0)
    quality = face_quality(detections)
    return (quality > 0) & ~occluded(detections.xyxy), np.maximum(quality, small) * alone(detections.xyxy)


def crop_boxes(boxes: np.ndarray, margin: float = MARGIN) -> np.ndarray:
    """The square regions :func:`face_crop` cuts around face boxes (n, 4)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None] * (0.5 + margin)
    return np.concatenate([centre - half, centre + half], axis=1)


def _covered(regions: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n, n): area of ``boxes[j]`` inside ``regions[i]`` (the diagonal is 0)."""
    low = np.maximum(regions[:, None, :2], boxes[None, :, :2])
    high = np.minimum(regions[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    np.fill_diagonal(inter, 0.0)
    return inter


def alone(boxes: np.ndarray) -> np.ndarray:
    """In (0, 1]: how much a face's crop shows that face alone.

    ``(1 - c)²``, where ``c`` is the largest share of another face's box inside this face's
    crop (weighted down by how much smaller that face is), times ``OCCLUDED_FACTOR`` when more
    than ``OCCLUDED_SHARE`` of the face's own box
    overlaps another face's box. A face hidden behind a neighbour, or a box straddling two
    faces, mostly shows someone else: the gallery takes such a crop only when the subject has
    nothing better.
    """
    if len(boxes) < 2:
        return np.ones(len(boxes), dtype=np.float32)
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 1e-6, None), axis=1)
    relative = np.minimum(area[None, :] / area[:, None], 1.0)  # a small face far behind a close-up hardly counts
    in_crop = (_covered(crop_boxes(boxes), boxes) / area[None, :] * relative).max(axis=1)
    factor = np.clip(1.0 - in_crop, 0.1, 1.0) ** 2 * np.where(occluded(boxes), OCCLUDED_FACTOR, 1.0)
    return factor.astype(np.float32)


def occluded(boxes: np.ndarray) -> np.ndarray:
    """Whether more than ``OCCLUDED_SHARE`` of each face's box overlaps another face's box."""
    if len(boxes) < 2:
        return np.zeros(len(boxes), dtype=bool)
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 1e-6, None), axis=1)
    return (_covered(boxes, boxes) / area[:, None]).max(axis=1) > OCCLUDED_SHARE


def sharp_factor(image: np.ndarray, box: np.ndarray) -> tuple[float, bool]:
    """In (0, 1]: 1 for a sharp face, less for a blurred one, halved for a dark or flat one; and whether the
    face passes the identity stage's gate (``MIN_SHARPNESS``, ``MIN_CONTRAST``)."""
    laplacian, contrast = sharpness(image, box)
    factor = float(np.clip(laplacian / SHARP_FULL, 0.05, 1.0))
    passes = laplacian >= MIN_SHARPNESS and contrast >= MIN_CONTRAST
    return (factor if contrast >= MIN_CONTRAST else factor / 2), passes


class GalleryCollector:
    """Per track, the best face and the best face of each stretch of time, picked while frames stream.

    Faces are ranked by :attr:`FaceCrop.rank`: one the identity stage could embed (at least 40 px,
    sharp and bright enough) and not hidden behind another face beats any other; then the higher
    score wins. Video is looked
    at ``LOOK_EVERY_S`` apart (faces change little in between), and at every frame with a new track.
    """

    def __init__(self) -> None:
        self.tracks: dict[int, TrackPictures] = {}
        self._next_s = -math.inf

    def add(self, frame: Frame, detections: Detections) -> None:
        if len(detections) == 0:
            return
        t = frame.time_s
        timed = math.isfinite(t)
        if timed and t < self._next_s and all(k in self.tracks for k in detections.track_id.tolist() if k >= 1):
            return
        self._next_s = t + LOOK_EVERY_S if timed else self._next_s
        gates, bounds = base_scores(detections)
        for row, track_id in enumerate(detections.track_id.tolist()):
            if track_id < 1:
                continue
            track = self.tracks.setdefault(track_id, TrackPictures(t))
            if timed:
                track.roll(t)
            bound, gated = float(bounds[row]), bool(gates[row])
            beats_best = _may_beat(track.best, bound, gated)
            beats_bucket = timed and _may_beat(track.bucket, bound, gated)
            if not (beats_best or beats_bucket):
                continue  # sharpness can only lower the score: no need to measure it
            box = detections.xyxy[row]
            factor, passes = sharp_factor(frame.image, box)
            rank = (gated and passes, bound * factor)
            crop: FaceCrop | None = None
            if _beats(rank, track.best):
                crop = self._crop(frame, box, rank, track_id)
                track.best = crop
            if timed and _beats(rank, track.bucket):
                track.bucket = crop or self._crop(frame, box, rank, track_id)

    def finish(self) -> dict[int, TrackPictures]:
        for track in self.tracks.values():
            track.finish()
        return self.tracks

    @staticmethod
    def _crop(frame: Frame, box: np.ndarray, rank: tuple[bool, float], track_id: int) -> FaceCrop:
        jpeg = encode_jpeg(face_crop(frame.image, box))
        x0, y0, x1, y1 = (float(v) for v in box)
        return FaceCrop(rank[1], frame.time_s, frame.index, track_id, (x0, y0, x1, y1), jpeg, rank[0], frame.source)


def _may_beat(current: FaceCrop | None, bound: float, gated: bool) -> bool:
    """Whether a face with this score bound (before sharpness) could replace ``current``."""
    return current is None or bound > IMPROVE * current.score or (gated and not current.identifiable)


def _beats(rank: tuple[bool, float], current: FaceCrop | None) -> bool:
    if current is None or rank[0] != current.identifiable:
        return current is None or rank[0]
    return rank[1] > IMPROVE * current.score


@dataclass(frozen=True)
class GalleryEntry:
    """A subject's faces in the gallery: the best one and up to ``SPREAD`` spread over time."""

    subject: Subject
    best: FaceCrop | None
    spread: tuple[FaceCrop, ...] = ()


def pick_gallery(tracks: dict[int, TrackPictures], subjects: list[Subject]) -> list[GalleryEntry]:
    """Each subject's best face over all of its tracks and faces evenly spread over its time on screen.

    The best face is the best identifiable one (:attr:`FaceCrop.rank`) of any of the subject's
    tracks. When no track has one, it comes from the subject's first track, which gave the
    person its ID: tracks the identity stage grouped without a clear face to compare are the
    ones most likely to be someone else.
    """
    entries = []
    for subject in subjects:
        mine = [tracks[t] for t in subject.tracks if t in tracks]
        bests = [t.best for t in mine if t.best is not None]
        first = min(subject.tracks)
        best = max(bests, key=lambda c: (c.identifiable, c.identifiable or c.track_id == first, c.score), default=None)
        samples = sorted((c for t in mine for c in t.samples), key=lambda c: (c.time_s, c.frame))
        if len(samples) > SPREAD:
            samples = [samples[round(i)] for i in np.linspace(0, len(samples) - 1, SPREAD)]
        entries.append(GalleryEntry(subject, best, tuple(samples)))
    return entries


def gallery_files(entry: GalleryEntry) -> list[tuple[str, FaceCrop]]:
    """(relative path, crop) of the files an entry is saved as: ``faces/P2.jpg``, ``faces/P2-1.jpg`` ..."""
    label = entry.subject.label
    files = [(f"faces/{label}.jpg", entry.best)] if entry.best is not None else []
    return files + [(f"faces/{label}-{k}.jpg", crop) for k, crop in enumerate(entry.spread, start=1)]


def write_gallery(
    entries: list[GalleryEntry], outdir: Path, stem: str, badges: dict[int, str] | None = None
) -> list[Path]:
    """``faces/*.jpg`` (the JPEG bytes as collected) and the contact sheet ``<stem>.faces.png`` (``badges``: a
    mark per subject key, such as never readable)."""
    written = []
    for entry in entries:
        for name, crop in gallery_files(entry):
            path = outdir / name
            with atomic_path(path) as tmp:
                tmp.write_bytes(crop.jpeg)
            written.append(path)
    remove_stale(outdir / "faces", set(written), GALLERY_FILE)
    if entries:
        written.append(write_contact_sheet(entries, outdir / f"{stem}.faces.png", badges))
    return written


def remove_stale(folder: Path, keep: set[Path], pattern: re.Pattern[str]) -> None:
    """Remove this report's files of an earlier run that this run did not write (persons that are gone)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if pattern.match(path.name) and path not in keep:
            path.unlink(missing_ok=True)
    if not any(folder.iterdir()):
        folder.rmdir()


def write_contact_sheet(entries: list[GalleryEntry], path: Path, badges: dict[int, str] | None = None) -> Path:
    """One row per subject: its ID and name, its best face (with its file, for images), then its faces over time
    with their times. A subject with a badge (never readable) has it under its ID, in red, wrapped to the column.

    At most ``SHEET_ROWS`` subjects (in ID order); a last line says how many more are in ``faces/``.
    """
    from PIL import Image, ImageDraw

    more = len(entries) - SHEET_ROWS
    entries = entries[:SHEET_ROWS]
    label_w, small, gap, pad = 150, 120, 8, 24
    row_h = CROP_PX + pad
    width = label_w + CROP_PX + SPREAD * (small + gap) + gap
    sheet = Image.new("RGB", (width, len(entries) * row_h + gap + (30 if more > 0 else 0)), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    if more > 0:
        note = f"... and {more} more in faces/"
        draw.text((gap, len(entries) * row_h + gap), note, fill=(20, 20, 20), font=_font(18))
    font = _font(15)
    for i, entry in enumerate(entries):
        y = gap + i * row_h
        draw.rectangle((gap, y, gap + 6, y + CROP_PX), fill=entry.subject.colour)
        draw.text((gap + 14, y + 4), entry.subject.label, fill=(20, 20, 20), font=_font(22))
        draw.text((gap + 14, y + 34), entry.subject.name[:16], fill=(20, 20, 20), font=font)
        tracks = " ".join(str(t) for t in entry.subject.tracks)
        draw.text((gap + 14, y + 56), f"faces {tracks}"[:18], fill=(90, 90, 90), font=font)
        badge = (badges or {}).get(entry.subject.key)
        if badge:
            lines = textwrap.wrap(badge, 16)
            draw.text((gap + 14, y + 80), "\n".join(lines[:4]), fill=(180, 20, 20), font=font, spacing=2)
        if entry.best is not None:
            sheet.paste(_decoded(entry.best, CROP_PX), (label_w, y))
            if entry.best.file:  # a photo: which one
                draw.text((label_w, y + CROP_PX + 3), _shortened(entry.best.file, 20), fill=(60, 60, 60), font=font)
        for k, crop in enumerate(entry.spread):
            x = label_w + CROP_PX + gap + k * (small + gap)
            sheet.paste(_decoded(crop, small), (x, y))
            if math.isfinite(crop.time_s):
                draw.text((x, y + small + 3), f"{crop.time_s:.2f} s", fill=(60, 60, 60), font=font)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG", compress_level=3)
    return path


def _shortened(text: str, at_most: int) -> str:
    """``a_very_long_...name.jpg``: the start and the end (the extension) of a long name."""
    if len(text) <= at_most:
        return text
    tail = at_most // 2
    return f"{text[: at_most - tail - 3]}...{text[-tail:]}"


def _decoded(crop: FaceCrop, size: int) -> PILImage:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(crop.jpeg)).convert("RGB")
    return image if image.size == (size, size) else image.resize((size, size), Image.Resampling.LANCZOS)


def _font(size: int) -> FreeTypeFont | ImageFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()
