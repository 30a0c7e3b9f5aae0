""":class:`RayExecutor`: the batch's inputs processed by Ray actors across a cluster.

The driver (the ``fervid annotate --ray`` process) only schedules and reports: it connects
(or starts a local Ray instance), starts the workers (:mod:`fervid.cluster.pool`), hands each
idle worker the next input (the longest first, so that no long input starts last and runs
alone) and collects its :class:`~fervid.batch.Outcome`, which the worker wrote straight into
the shared output folder. Paths travel absolute (the workers' working
folder is not the driver's); outcomes come back with the driver's own input, so the closing
table reads as a local run's.

* An input whose worker dies (its process, or its node) is retried once on another worker,
  after the dead attempt's temporary files are removed; when the retry dies too, the input
  fails and every file its attempts wrote is removed.
* Ctrl-C / SIGTERM: no further input is started, the running ones are asked to stop (each
  removes what it wrote, as a local run does) and reported interrupted; the rest are "not started".
* A full or read-only output disk stops the run as locally: nothing new starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from rich.console import Console

from fervid.batch import (
    BatchInput,
    BatchRunner,
    BatchState,
    Interrupted,
    Outcome,
    Status,
    discard_new_files,
    error_reason,
    files_under,
    interrupted,
)
from fervid.checks import plural
from fervid.cluster.errors import ClusterError, require_ray
from fervid.cluster.plan import Slot, check_shares, plan_workers, wants_gpus
from fervid.cluster.pool import WorkerPool
from fervid.cluster.view import ClusterView, Counts
from fervid.errors_text import first_line
from fervid.io.atomic import clean_partials
from fervid.io.probe import expected_frames
from fervid.options import AnnotateOptions

ray = require_ray()


class RayExecutor:
    """Runs ``BatchRunner.process`` in Ray actors, one input per worker at a time (see the module docstring).

    ``address``: None starts a local Ray instance (this machine's GPUs and CPUs), ``auto`` joins
    the cluster this machine belongs to, ``ray://head:10001`` joins one through Ray Client. In a
    process that already called ``ray.init`` (tests), that Ray is used and left running.
    """

    def __init__(
        self, options: AnnotateOptions, address: str | None = None, gpus_per_worker: float = 1.0,
        cpus_per_worker: int = 4, console: Console | None = None, say: Callable[[str], None] | None = None,
    ) -> None:  # fmt: skip
        check_shares(gpus_per_worker, cpus_per_worker)
        self.options = portable_options(options)
        self.address = address
        self.gpus_per_worker, self.cpus_per_worker = gpus_per_worker, cpus_per_worker
        self.console = console
        self.say = say or (lambda message: None)
        self.startup_s: float | None = None  # connecting and loading the models on every worker
        self.scheduled = 0  # inputs handed to workers, retries included

    def run(self, runner: BatchRunner, items: Sequence[BatchInput], state: BatchState) -> None:
        for item in items:
            if item.problem is not None:  # known before processing (an empty folder): no worker needed
                state.finish(Outcome(item, Status.FAILED, runner.output / item.stem, item.problem))
        items = [item for item in items if item.problem is None]
        if not items:
            return  # everything was complete (or hopeless): no cluster needed
        started = time.perf_counter()
        with connect(self.address) as where, signals_seen() as seen:
            pool = WorkerPool(ray, runner.output, self.say)
            try:
                infos = pool.start(self._plan(where, len(items)), self.options, runner.overwrite)
                self.startup_s = time.perf_counter() - started
                self.say(_started_line(infos, where, self.startup_s))
                for note in dict.fromkeys(n for info in infos for n in info.get("notes", [])):
                    self.say(f"warning: {note}")
                _Dispatch(pool, runner, state, self).run(items, seen)
            except KeyboardInterrupt as exc:  # Ray hands a plain one on: say which signal it was (exit 130 / 143)
                raise Interrupted(_signum(exc, seen)) from None
            finally:
                pool.close()

    def _plan(self, where: str, inputs: int) -> list[Slot]:
        try:
            gpu = wants_gpus(self.options.runtime.device, ray.nodes())
        except ValueError as exc:
            raise ClusterError(str(exc)) from None
        slots = plan_workers(ray.nodes(), gpu, self.gpus_per_worker, self.cpus_per_worker, inputs)
        if not slots:
            raise ClusterError(f"the Ray cluster has no room for a worker ({where})")
        return slots


class _Task:
    """One input on its way through the cluster: the driver's copy, its tries, and its live frame count."""

    def __init__(self, item: BatchInput, expected: int | None) -> None:
        self.item = item
        self.expected = expected
        self.attempt = 0
        self.worker: Any = None
        self.before: set[Path] = set()  # files in its output folder before its first try
        self.existed = True  # whether that folder was there before its first try
        self.notes: list[str] = []
        self.frames = 0

    def clean(self, outdir: Path, everything: bool) -> None:
        """Remove a dead attempt's temporary files; with ``everything``, all that its attempts wrote."""
        for folder in (outdir, outdir / "annotated"):
            clean_partials(folder, only_dead=False)  # the dead pid may be another node's: no one else writes here
        if everything:
            discard_new_files(outdir, self.before, created=not self.existed)


class _Dispatch:
    """Hands inputs to idle workers, collects outcomes, retries an input once when its worker dies."""

    def __init__(self, pool: WorkerPool, runner: BatchRunner, state: BatchState, executor: RayExecutor) -> None:
        self.pool, self.runner, self.state, self.executor = pool, runner, state, executor
        self.running: dict[Any, _Task] = {}  # process() ref -> task
        self.polls: dict[Any, _Task] = {}  # progress() ref -> task
        self.queue: deque[_Task] = deque()
        self.stopping = False
        self.counts = Counts()

    def run(self, items: Sequence[BatchInput], seen: list[int]) -> None:
        self.queue.extend(longest_first([_Task(item, expected(item, self.executor.options)) for item in items]))
        with ClusterView(self.executor.console, len(items)) as view:
            try:
                while self.running or (self.queue and not self.stopping):
                    self._fill()
                    if not self.running and not self.pool.restarting:
                        self.state.report.stopped = "stopped: no Ray worker left"
                        self._abandon_queue()
                        break
                    self._step(view)
            except KeyboardInterrupt as exc:
                self._drain(_signum(exc, seen))
                raise
        self._abandon_queue()  # what a full disk left unstarted

    def _fill(self) -> None:
        while self.queue and self.pool.idle and not self.stopping:
            task = self.queue.popleft()
            task.worker = self.pool.idle.pop(0)
            if task.attempt == 0:
                task.before, task.existed = files_under(self._outdir(task)), self._outdir(task).exists()
            task.frames = 0
            self.running[task.worker.process.remote(portable_item(task.item))] = task
            self.executor.scheduled += 1

    def _step(self, view: ClusterView) -> None:
        refs = [*self.running, *self.pool.restarting]
        done, rest = ray.wait(refs, num_returns=1, timeout=0.5)
        if rest:
            done += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        for ref in done:
            if ref in self.running:
                self._collect(ref)
            else:
                self.pool.settle(ref)
        if view.console is not None and view.console.is_terminal:
            self._poll()
            view.update(self._counts())

    def _collect(self, ref: Any) -> None:
        task = self.running[ref]
        try:
            outcome: Outcome | None = ray.get(ref)
            self.pool.idle.append(task.worker)
        except ray.exceptions.RayTaskError as exc:  # the worker's own code raised: not the input's fault
            self.pool.idle.append(task.worker)
            outcome = Outcome(task.item, Status.FAILED, self._outdir(task), error_reason(exc.cause or exc))
        except ray.exceptions.RayError as exc:  # its process or node died
            self.pool.lost(task.worker, exc)
            outcome = self._died(task, exc)
        del self.running[ref]
        if outcome is not None:
            self._finish(task, outcome)

    def _died(self, task: _Task, exc: BaseException) -> Outcome | None:
        """Clean up after a dead attempt; requeue the input once, else its failed outcome."""
        outdir, reason = self._outdir(task), death_reason(exc)
        task.clean(outdir, everything=task.attempt > 0)
        if task.attempt == 0:
            task.attempt = 1
            task.notes.append(f"{reason}; retried on another worker")
            self.queue.appendleft(task)
            return None
        return Outcome(task.item, Status.FAILED, outdir, f"{reason} twice", task.notes)

    def _finish(self, task: _Task, outcome: Outcome) -> None:
        """Report ``outcome`` as the driver's own input's (its paths as the user gave them)."""
        notes = list(dict.fromkeys([*task.notes, *outcome.notes]))
        outcome = dataclasses.replace(outcome, input=task.item, outdir=self._outdir(task), notes=notes)
        self.counts.done += outcome.status in (Status.DONE, Status.PARTIAL)
        self.counts.failed += outcome.status not in (Status.DONE, Status.PARTIAL)
        self.counts.frames += outcome.result.frames if outcome.result is not None else 0
        if not self.state.finish(outcome):
            self.stopping = True

    def _drain(self, signum: int) -> None:
        """After Ctrl-C: stop every running input, wait for each to clean up, report it."""
        self._abandon_queue()
        if self.running:
            running = plural(len(self.running), "running input")
            self.executor.say(f"stopping: waiting for {running} to remove what it wrote")
        for task in self.running.values():
            with contextlib.suppress(Exception):
                task.worker.stop.remote(signum)
        while self.running:
            done, _ = ray.wait(list(self.running), num_returns=1, timeout=1.0)
            for ref in done:
                task = self.running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError:  # died while stopping: clean up here
                    task.clean(self._outdir(task), everything=True)
                    outcome = interrupted(task.item, self.runner.output, signum)
                self._finish(task, outcome)

    def _abandon_queue(self) -> None:
        """Start nothing more; an input waiting for its retry loses what its dead attempt wrote."""
        for task in self.queue:
            if task.attempt:
                task.clean(self._outdir(task), everything=True)
        self.queue.clear()

    def _poll(self) -> None:
        """Collect the frame counts asked for last time, and ask the running workers again."""
        if self.polls:
            done, _ = ray.wait(list(self.polls), num_returns=len(self.polls), timeout=0)
            for ref in done:
                task = self.polls.pop(ref)
                with contextlib.suppress(ray.exceptions.RayError):
                    task.frames, expected = ray.get(ref)
                    task.expected = expected if expected is not None else task.expected
        polled = {id(t) for t in self.polls.values()}
        for task in self.running.values():
            if id(task) not in polled:
                self.polls[task.worker.progress.remote()] = task

    def _counts(self) -> Counts:
        tasks = [*self.running.values(), *self.queue]
        known = [t.expected for t in tasks if t.expected is not None]
        guess = sum(known) / len(known) if known else None
        left = [max((t.expected if t.expected is not None else guess or 0) - t.frames, 0) for t in tasks]
        live = sum(t.frames for t in self.running.values())
        return dataclasses.replace(
            self.counts, running=len(self.running), left=len(self.queue), frames=self.counts.frames + live,
            frames_left=round(sum(left)) if guess is not None else None,
        )  # fmt: skip

    def _outdir(self, task: _Task) -> Path:
        return self.runner.output / task.item.stem


@contextlib.contextmanager
def signals_seen() -> Iterator[list[int]]:
    """Note the SIGINT / SIGTERM that arrive, before their Python handlers run.

    A KeyboardInterrupt raised while Ray waits comes out of Ray as a new, plain one, without
    :class:`~fervid.batch.Interrupted`'s ``signum``: this list still says which signal it was.
    """
    seen: list[int] = []
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            if callable(handler):
                previous[sig] = handler
                signal.signal(sig, functools.partial(_noting, seen, handler))
    try:
        yield seen
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _noting(seen: list[int], handler: Callable[[int, Any], Any], signum: int, frame: Any) -> Any:
    seen.append(signum)
    return handler(signum, frame)


def _signum(exc: BaseException, seen: list[int]) -> int:
    return getattr(exc, "signum", None) or (seen[0] if seen else signal.SIGINT)


@contextlib.contextmanager
def connect(address: str | None) -> Iterator[str]:
    """Ray for this run; yields how it was reached. A Ray started here is shut down at the end.

    No ``address`` (and no ``RAY_ADDRESS`` in the environment): a local instance without dashboard.
    """
    if ray.is_initialized():
        yield "the Ray instance of this process"
        return
    address = address or os.environ.get("RAY_ADDRESS") or None  # as ray.init itself reads it
    local = address is None
    if address is not None:
        check_reachable(address)
    kwargs: dict[str, Any] = {"include_dashboard": False} if local else {"address": address}
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(**kwargs, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError: whatever ray.init says
        where = "start a local Ray instance" if local else f"connect to the Ray cluster at {address}"
        raise ClusterError(f"cannot {where}: {first_line(exc)}") from None
    finally:
        if main:  # ray.init replaces SIGTERM's handler; the batch's own one must stay (clean stop, exit 143)
            signal.signal(signal.SIGTERM, sigterm)
    try:
        yield "a local Ray instance" if local else f"the Ray cluster at {address}"
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ClusterError when a ``HOST:PORT`` or ``ray://HOST[:PORT]`` address does not answer.

    Ray itself would retry for minutes, printing a warning every few seconds.
    """
    if address == "auto":
        return
    client = "://" in address
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not host or not port.isdigit():  # no port given: Ray's defaults
        host, port = address.split("://", 1)[-1].rstrip("/"), "10001" if client else "6379"
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ClusterError(
            f"cannot connect to the Ray cluster at {address}: {host}:{port} does not answer ({reason})"
        ) from None


def portable_options(options: AnnotateOptions) -> AnnotateOptions:
    """``options`` with relative paths (a --model file, --people, --detector-weights) made absolute for the workers."""

    @overload
    def absolute(value: str) -> str: ...
    @overload
    def absolute(value: None) -> None: ...
    def absolute(value: str | None) -> str | None:
        return os.path.abspath(value) if value and not os.path.isabs(value) and os.path.exists(value) else value

    return dataclasses.replace(
        options,
        detection=dataclasses.replace(options.detection, detector_weights=absolute(options.detection.detector_weights)),
        identity=dataclasses.replace(options.identity, people=absolute(options.identity.people)),
        classification=dataclasses.replace(options.classification, model=absolute(options.classification.model)),
    )  # fmt: skip


def portable_item(item: BatchInput) -> BatchInput:
    """``item`` with absolute paths: a worker's working folder is not the driver's."""
    media = item.media and dataclasses.replace(item.media, path=Path(os.path.abspath(item.media.path)))
    images = None if item.images is None else tuple(Path(os.path.abspath(p)) for p in item.images)
    return dataclasses.replace(item, source=Path(os.path.abspath(item.source)), images=images, media=media)


def longest_first(tasks: list[_Task]) -> list[_Task]:
    """The longest inputs first (unknown lengths count as average), so no long one starts last and runs alone."""
    known = [t.expected for t in tasks if t.expected is not None]
    average = sum(known) / len(known) if known else 0
    return sorted(tasks, key=lambda t: -(t.expected if t.expected is not None else average))


def expected(item: BatchInput, options: AnnotateOptions) -> int | None:
    """Frames of an input as far as the driver knows (its probe from discovery), for the ETA."""
    if item.images is not None:
        return len(item.images)
    o = options.input
    return None if item.media is None else expected_frames(item.media, o.start, o.end, o.every)


def death_reason(exc: BaseException) -> str:
    """One line for an attempt whose worker died: where, and what Ray says happened."""
    text = str(exc)
    ip = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("ip:")), None)
    where = f" on {ip}" if ip else ""
    if isinstance(exc, ray.exceptions.ActorUnavailableError):  # what a task sees first when the process dies
        return f"its worker{where} died or became unreachable"
    if isinstance(exc, ray.exceptions.NodeDiedError) or ("node" in text.lower() and "died" in text.lower()):
        return f"its worker's node{where} died"
    if isinstance(exc, ray.exceptions.RayActorError):
        return f"its worker process{where} died"
    return f"its worker failed ({first_line(exc)})"


def _started_line(infos: list[dict[str, Any]], where: str, seconds: float) -> str:
    hosts = {info.get("host") for info in infos}
    devices = ", ".join(sorted({str(info.get("device")) for info in infos}))
    cores = "/".join(str(c) for c in sorted({int(info.get("cores", 0)) for info in infos}))
    return (
        f"ray: {plural(len(infos), 'worker')} on {plural(len(hosts), 'node')} ({where}), {devices}, "
        f"{cores} CPU cores each; ready in {seconds:.1f} s"
    )
