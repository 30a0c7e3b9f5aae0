"""Small shared helpers for messages: argument checks with the allowed range, and counted nouns."""

from __future__ import annotations


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise ``ValueError("name must be in [low, high], got value")`` unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 subfolder``, ``2 subfolders`` (``many`` for irregular plurals)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
