"""A bounded pool of decode threads shared by every call in the process, finals first.

Neural decoding is tens to hundreds of milliseconds of native code that releases the
GIL (onnxruntime), so threads decode in parallel with the sessions' audio handling and
with each other. The pool is bounded (one thread per core by default) and ordered:
a final transcript someone is waiting for goes before an early final started in a pause,
which goes before a partial shown while the caller speaks. A partial is only started when
a thread is free (:meth:`DecodePool.idle`), and one still running when a final or early
final finds every thread busy is cancelled (it stops at its next token), so under load
partials thin out first and finals keep their latency.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from core.ops.threads import lower_this_threads_priority

log = logging.getLogger(__name__)

DECODE_NICE = 5  # decode threads' nice value (Linux: per thread); audio handling stays at 0
FINAL = 0
EARLY = 1
PARTIAL = 2


class Job:
    """One decode: ``run(cancelled)`` on a pool thread; waited for, or cancelled."""

    def __init__(self, run: Callable[[Callable[[], bool]], Any], priority: int, key: Any = None):
        self._run = run
        self.priority = priority
        self.key = key  # what the job decodes (e.g. the speech end of an early final)
        self._done = threading.Event()
        self._cancelled = False
        self._callbacks: list[Callable[[Job], None]] = []
        self._lock = threading.Lock()
        self.result: Any = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Stop at the next token (or never start); ``wait`` then returns at once."""
        self._cancelled = True

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._done.wait(timeout_s)

    def on_done(self, callback: Callable[[Job], None]) -> None:
        """Call ``callback(job)`` when it finishes (at once if it has)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def _execute(self) -> None:
        try:
            if not self._cancelled:
                self.result = self._run(lambda: self._cancelled)
        except BaseException as exc:  # handed to the waiter, never lost in the thread
            self.error = exc
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("decode callback failed")


class DecodePool:
    """``workers`` daemon threads taking jobs in priority order (FIFO within one).

    Args:
        workers: threads (None: one per core).
        name: thread name prefix.
    """

    def __init__(self, workers: int | None = None, name: str = "stt-decode"):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._queue: list[tuple[int, int, Job]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._running = 0
        self._partials: list[Job] = []  # partial decodes running now, oldest first
        self._closed = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, run: Callable[[Callable[[], bool]], Any], priority: int, key: Any = None) -> Job:
        job = Job(run, priority, key)
        with self._cond:
            if self._closed:
                job.error = RuntimeError("the decode pool is shut down")
                job._done.set()
                return job
            heapq.heappush(self._queue, (priority, next(self._order), job))
            if priority < PARTIAL and self._running >= self.workers:
                for partial in self._partials:  # make room: a partial is only a preview
                    if not partial.cancelled:
                        partial.cancel()
                        break
            self._cond.notify()
        return job

    def idle(self) -> bool:
        """A thread is free and nothing waits: a partial can start without delaying anyone."""
        with self._cond:
            return not self._queue and self._running < self.workers

    @property
    def load(self) -> tuple[int, int]:
        """(running, queued) jobs."""
        with self._cond:
            return self._running, len(self._queue)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            pending, self._queue = self._queue, []
            self._cond.notify_all()
        for _, _, job in pending:
            job.cancel()
            job._execute()

    def _loop(self) -> None:
        # Below the sessions' audio handling: when the cores are saturated, decodes wait
        # (transcripts come later), audio does not (no call falls behind real time).
        lower_this_threads_priority(DECODE_NICE)
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    return
                _, _, job = heapq.heappop(self._queue)
                self._running += 1
                if job.priority == PARTIAL:
                    self._partials.append(job)
            try:
                job._execute()
            finally:
                with self._cond:
                    self._running -= 1
                    if job.priority == PARTIAL:
                        self._partials.remove(job)
