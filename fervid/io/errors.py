"""The one exception readers raise for media they cannot use.

Bad input is a user mistake, not a bug, so it gets a one-line message that names
the file and the reason ("clip.mp4: no video stream") instead of a PyAV or Pillow
traceback; the CLI prints ``str(exc)`` and exits.
"""

from __future__ import annotations

from pathlib import Path

from fervid.errors_text import one_line


class InputError(Exception):
    """A media file or folder that cannot be read, with a one-line, user-facing message."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = one_line(reason)  # whatever the library said
        super().__init__(f"{path}: {self.reason}")


def library_reason(exc: BaseException) -> str:
    """Short reason from a PyAV/Pillow/OS error, without the C function names PyAV appends."""
    strerror = getattr(exc, "strerror", None)
    text = strerror if isinstance(strerror, str) and strerror else str(exc)
    return one_line(text) or type(exc).__name__


def check_file(path: Path) -> None:
    """Raise InputError for the problems every reader checks first: missing, a folder, empty."""
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a folder, expected a file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(path, f"cannot read ({library_reason(exc)})") from None
    if size == 0:
        raise InputError(path, "file is empty (0 bytes)")
