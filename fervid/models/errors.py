"""The one error type for model weights that are missing, unreadable or do not fit (every model's loader)."""

from __future__ import annotations


class WeightsError(ValueError):
    """A weight file is missing, corrupt or not the model it should be; the message names the file, in one line."""
