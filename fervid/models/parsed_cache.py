"""A per-user cache of model files already parsed into numpy arrays, keyed by the file's sha256.

dlib's 68-point shape predictor is 33 million serialised integers: parsing it takes about 4.5 s on
two cores (:func:`fervid.models.dlib_format.integer_stream`), which every ``fervid annotate`` paid
at start-up. Its arrays (about 70 MB) read back from an ``.npz`` in a fraction of a second. The
key is the sha256 of the model file's bytes, so a changed file never meets a stale entry, and the
entry holds only what the parser returned: the loader still builds and checks the model from it.

Where: ``$FERVID_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fervid``, else ``~/.cache/fervid``.
Set ``FERVID_CACHE_DIR`` to an empty string to turn the cache off. A cache that cannot be
written (read-only home, full disk) or an entry that cannot be read (truncated by a crash of
another program) is never an error: the file is parsed as before, and a bad entry is replaced.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fervid.io.atomic import atomic_path

CACHE_ENV = "FERVID_CACHE_DIR"


def cache_dir() -> Path | None:
    """The folder of fervid's cache, or None when ``FERVID_CACHE_DIR`` is set to an empty string."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return Path(chosen).expanduser() if chosen.strip() else None
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "fervid"


def parsed_arrays(kind: str, sha256: str, parse: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``parse()``'s arrays, read from the cache entry ``<kind>/<sha256>.npz`` when there is a good one.

    After a parse the arrays are stored for next time (best effort; see the module docstring).
    """
    folder = cache_dir()
    entry = folder / kind / f"{sha256}.npz" if folder is not None else None
    if entry is not None and entry.is_file():
        try:
            with np.load(entry, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # unreadable: parse again and replace it below
    arrays = parse()
    if entry is not None:
        try:
            with atomic_path(entry) as partial, partial.open("wb") as out:
                np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy's stub mixes **arrays up with allow_pickle
        except OSError:
            pass  # an unwritable cache only costs the parse next time
    return arrays


__all__ = ["CACHE_ENV", "cache_dir", "parsed_arrays"]
