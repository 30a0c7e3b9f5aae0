"""fervid.errors_text: the two ways a library's message becomes one line, on a small table of cases."""

from __future__ import annotations

import pytest

from fervid.errors_text import first_line, one_line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("  wrapped\n  over\tlines \n", "wrapped over lines"),
        ("", ""),
        (ValueError("a\nb"), "a b"),
    ],
)
def test_one_line_collapses_whitespace(text: object, expected: str) -> None:
    assert one_line(text) == expected


@pytest.mark.parametrize(
    ("exc", "expected", "typed"),
    [
        (RuntimeError("worker died\nTraceback ...\n  more"), "worker died", "RuntimeError: worker died"),
        (RuntimeError("\n\n  first real line  \nrest"), "first real line", "RuntimeError: first real line"),
        (KeyError(), "KeyError", "KeyError"),
        (OSError("   \n "), "OSError", "OSError"),
    ],
)
def test_first_line_keeps_the_first_non_empty_line(exc: BaseException, expected: str, typed: str) -> None:
    assert first_line(exc) == expected
    assert first_line(exc, with_type=True) == typed
