"""A producer thread feeding a bounded queue, shared by the video and image readers.

Decoding releases the GIL inside FFmpeg/Pillow, so doing it in a background thread
overlaps it with detection in the main thread. The queue is bounded so a slow
consumer caps memory; a sentinel ends the stream; an exception in the producer is
re-raised in the consumer; ``close()`` stops and joins the thread even when the
consumer stops early (``break`` out of the loop, an error downstream).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

#: Producer signature: call ``emit(item)`` per item; it returns False once the consumer closed.
Produce = Callable[[Callable[[T], bool]], None]

_POLL_S = 0.1


def bounded_queue_size(requested: int, item_bytes: int, budget_bytes: int = 128 * 2**20) -> int:
    """Shrink a queue length so queued frames stay within a memory budget (64 4K frames are 1.6 GB).

    128 MiB holds 64 frames up to 720p and 21 at 1080p: decoding runs far ahead of the
    models, so a deeper queue only absorbs jitter, while at 1080p the earlier 512 MiB budget
    made a short clip's run peak at 1.8 GB.
    """
    return max(1, min(requested, budget_bytes // max(1, item_bytes)))


class _End:
    """Sentinel: the producer finished normally."""


class _Failure:
    """The producer raised; carries the exception to the consumer."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetcher(Generic[T]):
    """Run ``produce(emit)`` in a daemon thread and iterate what it emits, in order."""

    def __init__(self, produce: Produce[T], maxsize: int, name: str) -> None:
        if maxsize < 1:
            raise ValueError(f"queue size must be >= 1, got {maxsize}")
        self._produce = produce
        self._queue: queue.Queue[object] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        """Blocking put that gives up once the consumer has closed (so the thread can exit)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            self._produce(self._put)
        except BaseException as exc:  # forwarded, so the consumer sees it with its traceback
            self._put(_Failure(exc))
        else:
            self._put(_End())

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, _End):
            self._finish()
            raise StopIteration
        if isinstance(item, _Failure):
            self._finish()
            raise item.exc
        return item  # type: ignore[return-value]

    def _finish(self) -> None:
        self._done = True
        self._thread.join()

    def close(self) -> None:
        """Stop the producer (it notices at its next emit) and join it; idempotent."""
        self._done = True
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(timeout=_POLL_S)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
