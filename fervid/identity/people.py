"""Known people (``--people FOLDER``): one face descriptor per name, from photos of the participants.

The folder holds ``<name>.jpg`` (one photo) or ``<name>/*.jpg`` (several photos of one
person; their descriptors are averaged), in any image format Pillow reads. In each photo
the largest face is that person's. A photo without a usable face is skipped with a warning;
a folder without any usable face is an error, since every person would stay unnamed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fervid.io.errors import InputError
from fervid.io.images import list_images, natural_key, read_image
from fervid.types import Detections

if TYPE_CHECKING:
    from fervid.identity.stage import Embedder  # the stage's embedder is what embeds the photos too

Detect = Callable[[list[np.ndarray]], list[Detections]]


class PeopleError(ValueError):
    """The --people folder cannot name anyone; one line, naming the folder."""


def photos_by_name(folder: Path) -> dict[str, list[Path]]:
    """``{name: [photo, ...]}`` from ``<name>.jpg`` files and ``<name>/`` subfolders."""
    if not folder.is_dir():
        raise PeopleError(f"{folder}: --people must be a folder of <name>.jpg or <name>/*.jpg photos")
    people: dict[str, list[Path]] = {}
    for photo in list_images(folder, on_skip=lambda path, why: None):
        people.setdefault(photo.stem, []).append(photo)
    for sub in sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_key):
        photos = list_images(sub, on_skip=lambda path, why: None)
        if photos:
            people.setdefault(sub.name, []).extend(photos)
    return people


def known_people(folder: Path, detect: Detect, embed: Embedder) -> dict[str, np.ndarray]:
    """The mean descriptor of each named person's largest face over their photos."""
    folder = Path(folder)
    known: dict[str, np.ndarray] = {}
    for name, photos in photos_by_name(folder).items():
        descriptors = []
        for photo in photos:
            try:
                image = read_image(photo)
            except InputError as exc:
                warnings.warn(f"--people: {photo}: skipped ({exc.reason})", stacklevel=2)
                continue
            (faces,) = detect([image])
            if len(faces) == 0:
                warnings.warn(f"--people: {photo}: skipped (no face found)", stacklevel=2)
                continue
            largest = int(np.argmax(faces.area))
            descriptors.append(embed([image], faces.landmarks[largest : largest + 1])[0])
        if descriptors:
            known[name] = np.mean(descriptors, axis=0)
    if not known:
        raise PeopleError(f"{folder}: no usable face in any photo (need <name>.jpg or <name>/*.jpg with a clear face)")
    return known
