"""HTML pages from the package's Jinja2 templates (``fervid/report/templates``), autoescaped.

Pages are self-contained: the stylesheet is included inline, pictures are ``data:`` URIs,
charts inline SVG, and links are relative, so a report opens from a USB stick, offline, with
nothing fetched. No JavaScript.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

from fervid.io.atomic import atomic_path


@functools.cache
def environment() -> Any:
    """The template environment (made once): autoescape on for every template, undefined names are errors."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("fervid.report", "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def data_uri(data: bytes, mime: str = "image/jpeg") -> str:
    """Bytes as a ``data:`` URI (base64 never holds characters HTML would escape)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def write_html(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
