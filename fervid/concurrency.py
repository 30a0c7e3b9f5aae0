"""The one way fervid runs work in threads: :class:`BoundedStage`.

Decoding, detection, drawing and encoding overlap with the model work in the calling
thread because FFmpeg, x264, OpenCV and torch release the GIL. Every such thread is a
``BoundedStage``: a small pool that applies one function to the items it is given and hands
the results back **in order**, with at most ``capacity`` items in flight, so memory stays
flat however long the input is. The same four rules hold for every stage:

* **Bounded.** ``put`` blocks on the oldest item once ``capacity`` items are in flight.
* **End marker.** :meth:`finish` waits for everything put so far; nothing is lost.
* **Errors are forwarded.** An exception raised by the function in a worker is raised in
  the caller, at that item's turn (``put``, ``finish`` or iteration), with its traceback.
* **Joined in ``finally``.** :meth:`close` (idempotent, also on error or an early ``break``)
  cancels what has not started and waits for what has, so no thread outlives its stage.

Three shapes are built from it:

* :meth:`BoundedStage.map`: ``map(fn, items)`` by ``workers`` threads, yielded in order
  (the detector, several CPU workers at once);
* :meth:`BoundedStage.put` / :meth:`finish`: a consumer the caller pushes into (drawing,
  encoding);
* :func:`background`: an iterator advanced in a thread of its own, read ahead in chunks
  (decoding).

Thread counts for torch are set once per run by :func:`fervid.engine.plan_threads`, not
inside a stage.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class BoundedStage(Generic[T, R]):
    """Apply ``fn`` to items in ``workers`` threads; results come back in input order.

    ``workers=0`` runs ``fn`` in the calling thread (the plain sequential path, which the
    equivalence tests compare the threaded one with). ``capacity`` (default ``2 * workers``)
    bounds the items submitted and not yet returned.
    """

    def __init__(self, fn: Callable[[T], R], workers: int = 1, capacity: int | None = None, name: str = "fervid"):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self._fn = fn
        self.workers = workers
        self.capacity = max(1, capacity if capacity is not None else 2 * max(1, workers))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) if workers else None
        self._pending: deque[Future[R]] = deque()
        self._closed = False

    def put(self, item: T) -> list[R]:
        """Submit ``item``; return the results that are ready (in order), waiting while the stage is full."""
        if self._closed:
            raise RuntimeError("stage is closed")
        if self._pool is None:
            return [self._fn(item)]
        self._pending.append(self._pool.submit(self._fn, item))
        ready = []
        while self._pending and (len(self._pending) > self.capacity or self._pending[0].done()):
            ready.append(self._pending.popleft().result())
        return ready

    def finish(self) -> list[R]:
        """Wait for every item put so far; their results in order."""
        results = []
        while self._pending:
            results.append(self._pending.popleft().result())
        return results

    def close(self) -> None:
        """Cancel what has not started, wait for what has, and stop the threads (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def map(self, items: Iterable[T]) -> Generator[R, None, None]:
        """``fn`` over ``items``, in order; closing the generator early closes the stage."""
        try:
            for item in items:
                yield from self.put(item)
            yield from self.finish()
        finally:
            self.close()

    def __enter__(self) -> BoundedStage[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int | None = None
) -> Generator[R, None, None]:
    """``map(fn, items)`` computed by ``workers`` threads (0: none), yielded in order, ``ahead`` at most in flight."""
    return BoundedStage(fn, workers, ahead, name="fervid-map").map(items)


def background(items: Iterable[T], capacity: int, name: str, chunk: int = 8) -> Generator[T, None, None]:
    """Iterate ``items`` in a thread of its own, up to about ``capacity`` items ahead of the consumer.

    One worker pulls ``chunk`` items at a time, so the iterator is only ever advanced by one
    thread. The iterator ends the stream when a chunk comes back short. Close the returned
    generator (or finish it) to stop the thread; it stops after at most one more chunk.
    """
    source = iter(items)
    chunk = max(1, min(chunk, capacity))
    stage: BoundedStage[None, list[T]] = BoundedStage(
        lambda _: list(islice(source, chunk)), workers=1, capacity=max(1, capacity // chunk), name=name
    )
    try:
        while True:
            for part in stage.put(None):
                yield from part
                if len(part) < chunk:
                    return
    finally:
        stage.close()
        close = getattr(source, "close", None)
        if close is not None:
            close()  # a generator's own cleanup (closing its file) runs now, in this thread
