"""fervid: facial-expression timelines from video, fast and correct."""

__version__ = "0.1.0"
