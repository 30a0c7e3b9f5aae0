"""Media in and out: video/image readers yielding ``Frame``s, probing, the H.264 writer, atomic outputs."""

from fervid.io.atomic import atomic_path, clean_partials
from fervid.io.errors import InputError
from fervid.io.images import ImageFolderReader, list_images, read_image
from fervid.io.probe import MediaInfo, probe
from fervid.io.video import VideoReader
from fervid.io.video_writer import VideoWriter

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
