"""The run's Ray actors: started per the plan, checked before any input is sent, restarted when one dies.

Before scheduling, every worker must answer ``ready``: its models loaded, the same fervid
version as the driver, and the output folder reachable (it reads a probe file the driver
wrote there, and writes and reads back one of its own). Any problem is a one-line
:class:`~fervid.cluster.ClusterError`, a usage error, before any input is processed.

A worker whose process or node dies is killed for good measure (so it cannot still be
writing) and restarted by Ray (``max_restarts``), possibly elsewhere; it rejoins the idle
workers once ``ready`` answers again, and is dropped if it cannot come back.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fervid.cluster.errors import ClusterError
from fervid.cluster.plan import Slot
from fervid.cluster.worker import AnnotateWorker
from fervid.errors_text import first_line  # Ray's errors carry tracebacks and advice after it
from fervid.io.atomic import PARTIAL_TAG
from fervid.options import AnnotateOptions
from fervid.version import __version__

#: Times Ray restarts a worker whose process died (a node lost, the OOM killer, a crash).
MAX_RESTARTS = 3
#: A worker that has not loaded its models by then is given up (Ray found no room for it).
START_TIMEOUT_S = 600.0
#: ``process`` runs in one thread of the actor; ``progress`` and ``stop`` answer in the others.
ACTOR_THREADS = 4


class WorkerPool:
    """The workers: idle ones, busy ones (held by the executor), and restarting ones."""

    def __init__(self, ray: Any, output: Path, say: Callable[[str], None]) -> None:
        self.ray = ray
        self.say = say
        self.idle: list[Any] = []
        self.restarting: dict[Any, tuple[Any, int]] = {}  # ready() ref -> (worker, times asked)
        self.all: list[Any] = []
        self.token = secrets.token_hex(16)
        self.probe = Path(os.path.abspath(output)) / f".fervid-reach-{self.token[:8]}{PARTIAL_TAG}{os.getpid()}"

    def start(self, slots: Sequence[Slot], options: AnnotateOptions, overwrite: bool) -> list[dict[str, Any]]:
        """Start one actor per slot and wait until each is ready; returns what each said about itself."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            self.probe.parent.mkdir(parents=True, exist_ok=True)
            self.probe.write_text(self.token)
        except OSError as exc:
            raise ClusterError(f"{self.probe.parent}: cannot write the probe file ({exc.strerror or exc})") from None
        actor = self.ray.remote(AnnotateWorker)
        output = str(self.probe.parent)
        for slot in slots:
            self.all.append(
                actor.options(
                    num_cpus=slot.cpus, num_gpus=slot.gpus, max_restarts=MAX_RESTARTS, max_task_retries=0,
                    max_concurrency=ACTOR_THREADS,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(slot.node_id, soft=True),
                ).remote(options, output, overwrite, slot.cores, sys.argv)
            )  # fmt: skip
        infos = self._wait_ready()
        self.idle = list(self.all)
        return infos

    def _wait_ready(self) -> list[dict[str, Any]]:
        pending = {w.ready.remote(str(self.probe), self.token): w for w in self.all}
        infos: list[dict[str, Any]] = []
        deadline = time.monotonic() + START_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            done, _ = self.ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                pending.pop(ref)
                try:
                    info = self.ray.get(ref)
                except self.ray.exceptions.RayError as exc:
                    raise ClusterError(f"a worker could not start: {first_line(exc)}") from None
                check_worker(info)
                infos.append(info)
        if pending:
            if not infos:
                raise ClusterError(f"no worker started within {START_TIMEOUT_S:.0f} s (no room on the cluster?)")
            self.say(f"{len(pending)} of {len(self.all)} workers did not start in time; going on without them")
            for worker in pending.values():
                self.all.remove(worker)
                self.ray.kill(worker)
        return infos

    def lost(self, worker: Any, error: BaseException) -> None:
        """``worker`` died (``error``): take it back once Ray has restarted it.

        A worker that is only unreachable may still be running its input: it is killed
        (and restarted) first, so it cannot write while the input is retried elsewhere.
        """
        if isinstance(error, self.ray.exceptions.ActorUnavailableError):
            with contextlib.suppress(Exception):
                self.ray.kill(worker, no_restart=False)
        self._ask_ready(worker, tries=0)

    def _ask_ready(self, worker: Any, tries: int) -> None:
        with contextlib.suppress(Exception):
            self.restarting[worker.ready.remote(str(self.probe), self.token)] = (worker, tries)

    def settle(self, ref: Any) -> None:
        """A restarting worker answered: back to work, or dropped when it cannot come back."""
        worker, tries = self.restarting.pop(ref)
        try:
            check_worker(self.ray.get(ref))
        except self.ray.exceptions.RayActorError as exc:
            if tries < MAX_RESTARTS:  # asked while Ray still saw the old process: ask the restarted one
                time.sleep(0.5)
                self._ask_ready(worker, tries + 1)
                return
            self._drop(worker, exc)
            return
        except (self.ray.exceptions.RayError, ClusterError) as exc:
            self._drop(worker, exc)
            return
        self.idle.append(worker)

    def _drop(self, worker: Any, error: BaseException) -> None:
        self.say(f"a worker is gone for good: {first_line(error)}")
        self.all.remove(worker)
        with contextlib.suppress(Exception):
            self.ray.kill(worker)

    def close(self) -> None:
        """Kill every worker and remove the probe file."""
        for worker in self.all:
            with contextlib.suppress(Exception):
                self.ray.kill(worker)
        self.all, self.idle, self.restarting = [], [], {}
        with contextlib.suppress(OSError):
            self.probe.unlink()


def check_worker(info: dict[str, Any]) -> None:
    """ClusterError when a worker cannot work: models not loaded, output unreachable, another fervid."""
    where = f"worker on {info.get('host', '?')} (pid {info.get('pid', '?')})"
    if info.get("error"):
        raise ClusterError(f"{where}: {info['error']}")
    if info.get("version") != __version__:
        raise ClusterError(
            f"{where} runs fervid {info.get('version')}, this machine {__version__}: install the same on every node"
        )
