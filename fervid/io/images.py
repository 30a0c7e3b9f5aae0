"""Read still images (one file, a list, or a folder) as ``Frame``s.

Photos arrive in every shape a camera or editor can produce: EXIF-rotated phone
JPEGs, CMYK print JPEGs, 16-bit PNGs, palette GIFs, RGBA screenshots, grayscale
scans. ``read_image`` turns each into upright uint8 RGB so the detector sees what
a person would see. Folders are sniffed by opening files (not by extension) and
sorted naturally (img2 before img10), like a file browser.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fervid.concurrency import background
from fervid.io.errors import InputError, check_file, library_reason
from fervid.types import Frame

#: Largest image accepted (~200 MP: a 16k x 12k panorama); Pillow's default stops at ~179 MP.
MAX_PIXELS = 200_000_000
# Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; we check MAX_PIXELS
# ourselves with a clear message, so only ever raise Pillow's limit, never lower it.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS

#: Formats Pillow identifies but cannot decode (it only reads their headers).
_HEADER_ONLY_FORMATS = frozenset({"MPEG"})
#: EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112

#: Called with (path, reason) for every file that is skipped.
OnSkip = Callable[[Path, str], None]

_DIGITS = re.compile(r"(\d+)")


def natural_key(path: Path) -> tuple[list[str | int], str]:
    """Sort key that orders digit runs by value: img2 < img10, case-insensitive."""
    parts: list[str | int] = [int(p) if p.isdigit() else p.casefold() for p in _DIGITS.split(path.name)]
    return parts, path.name


def open_image(path: Path) -> Image.Image:
    """Open ``path`` lazily (header only) with Pillow, or raise InputError saying why not."""
    check_file(path)
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(path, f"image too large ({library_reason(exc)})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(path, f"not a readable image ({library_reason(exc)})") from None
    if image.format in _HEADER_ONLY_FORMATS:
        image.close()
        raise InputError(path, f"{image.format} is not a still image format")
    pixels = image.width * image.height
    if pixels > MAX_PIXELS:
        image.close()
        raise InputError(path, f"image too large ({pixels / 1e6:.0f} MP > {MAX_PIXELS / 1e6:.0f} MP limit)")
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as displayed, i.e. after EXIF orientation, from the header only."""
    with open_image(path) as image:
        width, height = image.size
        if image.getexif().get(_EXIF_ORIENTATION) in _SWAPPING_ORIENTATIONS:
            width, height = height, width
    return width, height


def is_animated(path: Path) -> bool:
    """True for multi-frame files (animated GIF/PNG/WebP): those are read as video when possible."""
    with open_image(path) as image:
        return bool(getattr(image, "is_animated", False))


def list_images(folder: str | Path, on_skip: OnSkip | None = None) -> list[Path]:
    """Image files directly inside ``folder`` (not subfolders), in natural sort order.

    Every file is sniffed by opening its header, so a JPEG named ``.dat`` counts and a
    text file named ``.jpg`` does not. Skipped files are passed to ``on_skip(path,
    reason)``; without a callback one warning lists them. Hidden files (``.name``)
    and subfolders are ignored silently.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such folder" if not folder.exists() else "not a folder")
    images: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in sorted(folder.iterdir(), key=natural_key):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            open_image(path).close()
        except InputError as exc:
            skipped.append((path, exc.reason))
            continue
        images.append(path)
    _report_skipped(folder, skipped, on_skip)
    return images


def _report_skipped(folder: Path, skipped: list[tuple[Path, str]], on_skip: OnSkip | None) -> None:
    if on_skip is not None:
        for path, reason in skipped:
            on_skip(path, reason)
    elif skipped:
        names = ", ".join(p.name for p, _ in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        warnings.warn(f"{folder}: skipped {len(skipped)} non-image file(s): {names}", stacklevel=3)


def read_image(path: str | Path) -> np.ndarray:
    """Decode one image file to an upright (H, W, 3) uint8 RGB array, or raise InputError."""
    path = Path(path)
    with open_image(path) as image:
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            return to_rgb(upright)
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(path, f"cannot decode image ({library_reason(exc)})") from None


def to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to uint8 RGB, scaling high bit depths and flattening alpha on black."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        gray = _to_uint8(np.asarray(image), mode)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        return _composite_on_black(image)
    if image.mode != "RGB":
        image = image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """Scale 16-bit or float samples to 0..255 (65535 -> 255), not clip them (which whitens the image)."""
    data = array.astype(np.float64)
    if mode == "F":
        peak = 1.0 if data.size and np.nanmax(data) <= 1.0 else 255.0
    elif mode == "I" and data.size and data.max() <= 255:
        peak = 255.0  # 8-bit values stored in a 32-bit mode
    else:
        peak = 65535.0
    return np.clip(np.rint(np.nan_to_num(data) * (255.0 / peak)), 0, 255).astype(np.uint8)


def _composite_on_black(image: Image.Image) -> np.ndarray:
    """Premultiply by alpha: transparent areas become black instead of the hidden colour under them."""
    if image.mode in ("La", "RGBa"):
        image = image.convert(image.mode.upper())  # un-premultiply first
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
    rgb = (rgba[:, :, :3] * rgba[:, :, 3:4] + 127) // 255
    return np.ascontiguousarray(rgb.astype(np.uint8))


def resolve_images(source: str | Path | Sequence[str | Path], on_skip: OnSkip | None = None) -> list[Path]:
    """The image files named by a folder, a single file or a list of files (list order kept)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            paths = list_images(path, on_skip)
            if not paths:
                raise InputError(path, "no images found in folder")
            return paths
        open_image(path).close()  # a single file must be an image: say why not
        return [path]
    paths = [Path(p) for p in source]
    if not paths:
        raise ValueError("no image files given")
    return paths


class ImageFolderReader:
    """Iterate images as ``Frame``s, decoding ahead in a background thread.

    ``Frame.index`` is the position in the (natural) order. ``time_s`` is ``index / fps``
    for a sequence of frames (``fps`` given), and NaN for independent photos (``fps=None``):
    a photo has no place on a timeline, and an invented one would be read as a real time.
    A file that fails to decode is skipped (its index is left as a gap),
    recorded in ``skipped`` and passed to ``on_skip``.
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        fps: float | None = 1.0,
        queue_size: int = 8,
        on_skip: OnSkip | None = None,
    ) -> None:
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.paths = resolve_images(source, on_skip)
        self.fps = fps
        self.skipped: list[tuple[Path, str]] = []
        self._on_skip = on_skip
        self._queue_size = queue_size
        self._frames: Generator[Frame, None, None] | None = None

    @property
    def frame_count(self) -> int:
        return len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __enter__(self) -> ImageFolderReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        if self._frames is None:
            self._frames = background(self._produce(), self._queue_size, name="read-images", chunk=1)
        return self._frames

    def close(self) -> None:
        """Stop and join the prefetch thread; safe to call twice."""
        if self._frames is not None:
            self._frames.close()  # a generator: joins its thread

    def _produce(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            try:
                image = read_image(path)
            except InputError as exc:
                self._skip(path, exc.reason)
                continue
            time_s = index / self.fps if self.fps else float("nan")
            yield Frame(index=index, time_s=time_s, image=image, source=path.name)

    def _skip(self, path: Path, reason: str) -> None:
        """Record an image that failed to decode; runs in the prefetch thread."""
        self.skipped.append((path, reason))
        if self._on_skip is not None:
            self._on_skip(path, reason)
        else:
            warnings.warn(f"{path}: skipped ({reason})", stacklevel=2)
