"""Debian's headless Chromium, through Playwright, for the report tests: open a page 1280 px wide, measure, shoot.

Skips with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
#: How far the numbers table reaches past its box (0: it fits; a scroll bar otherwise).
NUMBERS_OVERFLOW = "(() => { const d = document.querySelector('.numbers'); return d.scrollWidth - d.clientWidth; })()"


def measure(page_path: Path, scratch: Path, expressions: dict[str, str], width: int = 1280) -> dict[str, object]:
    """Open ``page_path`` at ``width`` px, evaluate each JavaScript expression, screenshot the whole page to
    ``scratch/page.png`` (to look at when a test fails)."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    with playwright.sync_playwright() as p, tempfile.TemporaryDirectory(dir=scratch) as profile:
        browser = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": width, "height": 900},
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.goto(page_path.as_uri(), wait_until="load")
            found = {name: page.evaluate(js) for name, js in expressions.items()}
            page.screenshot(path=str(scratch / "page.png"), full_page=True)
        finally:
            browser.close()
    return found
