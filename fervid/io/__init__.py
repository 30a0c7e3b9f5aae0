"""Media in and out: video/image readers yielding ``Frame``s, probing, the H.264 writer, atomic outputs.

The readers and the writer load PyAV, so they are imported on first use: code that only needs
atomic outputs (training, writing weight files) runs where PyAV is not installed, such as a GPU
machine that trains from a pack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from fervid.io.atomic import atomic_path, clean_partials
from fervid.io.errors import InputError

if TYPE_CHECKING:
    from fervid.io.images import ImageFolderReader, list_images, read_image
    from fervid.io.media_info import MediaInfo
    from fervid.io.probe import probe
    from fervid.io.video import VideoReader
    from fervid.io.video_writer import VideoWriter

#: Names this package offers without importing PyAV until one is used, and the module holding each.
_LAZY = {
    "ImageFolderReader": "images",
    "list_images": "images",
    "read_image": "images",
    "MediaInfo": "media_info",
    "probe": "probe",
    "VideoReader": "video",
    "VideoWriter": "video_writer",
}

__all__ = [
    "ImageFolderReader",
    "InputError",
    "MediaInfo",
    "VideoReader",
    "VideoWriter",
    "atomic_path",
    "clean_partials",
    "list_images",
    "probe",
    "read_image",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"fervid.io.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'fervid.io' has no attribute {name!r}")
