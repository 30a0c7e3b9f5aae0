"""Interrupt a running ``fervid`` process at the right moment, and check it stopped cleanly."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def interrupt_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout_s: float, what: str) -> tuple[str, str]:
    """Wait until ``ready()`` (the process still running), send SIGINT, and return its (stdout, stderr)."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=120)


def assert_stopped_by_ctrl_c(proc: subprocess.Popen, stdout: str, stderr: str) -> None:
    """Exit 130, no traceback, and the closing table says what was interrupted."""
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert "interrupted" in stdout
