"""Write outputs under a temporary name and rename them into place only when complete.

A crash, an error or Ctrl-C in the middle of encoding must never leave a
half-written ``out.mp4`` that looks like a result. The temp file lives in the same
folder (so the rename is atomic on one file system) and keeps the extension (so
encoders and muxers that pick the format from the name still do).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

PARTIAL_TAG = ".partial-"
_PARTIAL_RE = re.compile(r"^\..+\.partial-(\d+)(\.[^.]*)?$")


def partial_path(final: Path) -> Path:
    """Hidden temp name next to ``final``: ``.name.partial-<pid>.ext``."""
    final = Path(final)
    return final.with_name(f".{final.stem}{PARTIAL_TAG}{os.getpid()}{final.suffix}")


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temp path to write; rename it onto ``final`` on success, delete it on any exception.

    BaseException is caught on purpose so KeyboardInterrupt and SystemExit also clean
    up. If the body never created the temp file nothing is renamed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(final)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if tmp.exists():
        os.replace(tmp, final)


def clean_partials(directory: str | Path, only_dead: bool = True) -> list[Path]:
    """Remove leftover ``.*.partial-<pid>.*`` files from a killed run; returns what was removed.

    With ``only_dead`` the files of processes that are still running (another run
    writing into the same folder) are kept.
    """
    removed: list[Path] = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        match = _PARTIAL_RE.match(path.name)
        if not match or not path.is_file():
            continue
        if only_dead and _pid_alive(int(match.group(1))):
            continue
        _remove(path)
        removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def removed_if_left_empty(folder: Path) -> Iterator[None]:
    """Remove ``folder`` on the way out if this block created it and nothing was written into it.

    So an input that failed, a command whose every input failed, or one that stopped on a
    usage error after making its output folder leaves no empty folder behind.
    """
    folder = Path(folder)
    created = not folder.exists()
    try:
        yield
    finally:
        if created and folder.is_dir() and not any(folder.iterdir()):
            with contextlib.suppress(OSError):
                folder.rmdir()
