"""Turning a library's error (or warning) text into one line for a one-line error message, in one place.

fervid never shows a traceback for bad input: it prints one line naming the file and the reason, and the reason
is often a library's own message. Two ways of making that one line are needed, each defined here once:

* :func:`one_line` keeps the whole text and collapses its whitespace. For messages that are short but may wrap
  (PyAV's, Pillow's, a warning's).
* :func:`first_line` keeps only the first non-empty line. For messages that put the reason first and then pages
  of detail (Ray appends tracebacks and advice; torch's ``load_state_dict`` lists every mismatched key).

This module imports nothing from fervid, so any module may use it.
"""

from __future__ import annotations


def one_line(text: object) -> str:
    """``str(text)`` on one line: runs of whitespace, newlines included, become one space; ends trimmed."""
    return " ".join(str(text).split())


def first_line(exc: BaseException, *, with_type: bool = False) -> str:
    """An exception's first non-empty line, trimmed; its type's name when the message is empty.

    ``with_type`` prefixes the type (``RuntimeError: ...``) for errors whose message alone does not say what went
    wrong (a checkpoint loader's ``PytorchStreamReader failed ...``).
    """
    line = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    if not line:
        return type(exc).__name__
    return f"{type(exc).__name__}: {line}" if with_type else line
