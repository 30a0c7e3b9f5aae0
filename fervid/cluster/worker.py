"""The Ray actor: a Pipeline loaded once, whole inputs processed straight into the shared output folder.

:class:`AnnotateWorker` is a plain class; :mod:`fervid.cluster.pool` makes it a threaded Ray
actor, so that ``progress`` and ``stop`` answer while ``process`` runs. Each input goes
through the worker's own :class:`~fervid.batch.BatchRunner`, exactly as in a local run:
outputs under temporary names renamed when complete, what a failed or stopped attempt wrote
removed, run.json last. A stop request makes the next frame raise
:class:`~fervid.batch.Interrupted` inside the pipeline, which cleans up as for Ctrl-C.

For the tests, ``FERVID_TEST_WORKER_EXIT`` may name a marker file holding a frame count: the
first worker to reach that many frames of an input removes the file and exits on the spot
(``os._exit``), as a worker whose process or node dies would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fervid.batch import BatchInput, BatchRunner, Interrupted, Outcome, error_reason, interrupted
from fervid.errors_text import one_line
from fervid.io.atomic import PARTIAL_TAG
from fervid.options import AnnotateOptions
from fervid.version import __version__

FAULT_ENV = "FERVID_TEST_WORKER_EXIT"


class AnnotateWorker:
    """One worker: its models, its runner, and the frame count of the input it is on."""

    def __init__(
        self, options: AnnotateOptions, output: str, overwrite: bool, cores: int, argv: Sequence[str] = ()
    ) -> None:
        from fervid.pipeline import Pipeline

        if argv:  # run.json records the command the user typed, not this Ray worker's command line
            sys.argv = list(argv)
        self.cores = cores
        self.error: str | None = None  # why the models did not load (reported by ready(), not raised)
        self.notes: list[str] = []
        self.frames = 0
        self.expected: int | None = None
        self._stop: int | None = None  # the signal the driver stopped on
        self.runner: BatchRunner | None = None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pipeline = Pipeline(options, cores=cores)
            self.notes = list(dict.fromkeys(one_line(w.message) for w in caught))
            self.runner = BatchRunner(pipeline, Path(output), overwrite)
        except Exception as exc:
            self.error = error_reason(exc)

    def ready(self, probe: str, token: str) -> dict[str, Any]:
        """Who this worker is and whether it can work: models loaded, the driver's probe file readable."""
        import torch

        info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "version": __version__}
        info.update(error=self.error, notes=self.notes, cores=self.cores, threads=torch.get_num_threads())
        if self.runner is not None:
            assert self.runner.pipeline is not None
            info["device"] = str(self.runner.pipeline.engine.device)
            info["error"] = reach_problem(Path(probe), token)
        return info

    def process(self, item: BatchInput) -> Outcome:
        """One whole input, as ``BatchRunner.process`` does it locally; a stop request returns it interrupted."""
        assert self.runner is not None, self.error
        self.frames, self.expected = 0, None
        if self._stop is not None:
            return interrupted(item, self.runner.output, self._stop)
        item = self.runner.probed(item)
        self.expected = self.runner.expected_frames(item)
        try:
            return self.runner.process(item, self._advance)
        except KeyboardInterrupt as exc:  # a stop request (or a signal to this process): cleaned up already
            return interrupted(item, self.runner.output, getattr(exc, "signum", signal.SIGINT))

    def progress(self) -> tuple[int, int | None]:
        """Frames done of the current input, and how many it has (None: unknown)."""
        return self.frames, self.expected

    def stop(self, signum: int = signal.SIGINT) -> None:
        """Stop the current input at its next frame (its outputs removed) and start no other."""
        self._stop = signum

    def _advance(self, n: int) -> None:
        self.frames += n
        if os.environ.get(FAULT_ENV):
            _injected_fault(Path(os.environ[FAULT_ENV]), self.frames)
        if self._stop is not None:
            raise Interrupted(self._stop)


def reach_problem(probe: Path, token: str) -> str | None:
    """None when this machine sees the driver's probe file in the output folder and can write beside it."""
    host = socket.gethostname()
    where = f"output folder {probe.parent}"
    try:
        seen = probe.read_text()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return f"{where} is not reachable from {host} ({reason}): use a drive every node mounts at the same path"
    if seen != token:
        return f"{where} on {host} is not the driver's folder (another run's probe file): use a shared drive"
    mine = probe.with_name(f".fervid-reach-{host}{PARTIAL_TAG}{os.getpid()}")
    try:
        mine.write_text(token)
        if mine.read_text() != token:
            return f"{where} does not read back what {host} wrote"
    except OSError as exc:
        return f"{where} is not writable from {host} ({exc.strerror or exc})"
    finally:
        with contextlib.suppress(OSError):
            mine.unlink()
    return None


def _injected_fault(marker: Path, frames: int) -> None:
    """Exit this process at once (a crash) if the marker's frame count is reached and this worker claims it."""
    try:
        after = int(marker.read_text().strip() or 0)
    except (OSError, ValueError):
        return
    if frames < after:
        return
    try:
        marker.unlink()  # only one worker wins, once
    except OSError:
        return
    os._exit(70)
