"""fervid: facial-expression timelines from video, fast and correct.

The notebook API (``fervid.annotate``, ``fervid.stream``, ``fervid.load``, ``fervid.summarize``)
lives in :mod:`fervid.api` and is imported on first use, so ``import fervid`` (and the CLI's
``--help``) does not pay for torch and pandas.

Example::

    import fervid
    result = fervid.annotate("clip.mp4", smooth=0.5)
    result.summary

``fervid.annotate`` is the API function even after the frame-drawing module of the same
name is imported: import that module's names from it (``from fervid.annotate import
FrameAnnotator``), which always works.
"""

from __future__ import annotations

import sys
from types import ModuleType  # not `import types`: the submodule fervid.types would replace it
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AnnotateResult", "annotate", "edit_persons", "load", "stream", "summarize", "__version__"]

if TYPE_CHECKING:
    from fervid.api import AnnotateResult, annotate, edit_persons, load, stream, summarize

_LAZY = frozenset({"AnnotateResult", "annotate", "edit_persons", "load", "stream", "summarize"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from fervid import api

        value = getattr(api, name)
        globals()[name] = value  # cache: later lookups skip this function
        return value
    raise AttributeError(f"module 'fervid' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(ModuleType):
    """Keeps the API names when a submodule of the same name is imported.

    Importing ``fervid.annotate`` (the FrameAnnotator module) makes Python set the
    package attribute ``annotate`` to that module, which would hide ``fervid.annotate()``.
    The submodule stays importable by its full name through ``sys.modules``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
