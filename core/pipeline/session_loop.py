"""One event loop, on one thread, shared by many transcription sessions.

A :class:`~core.pipeline.session.VoiceSession` normally runs its own thread and asyncio loop.
That costs little for a few calls, but every 20 ms frame then wakes another thread,
and at a hundred calls the process spends a third of its CPU in the kernel switching
between ~400 threads (docs/performance.md). Sessions given ``host=SessionLoop`` run as
coroutines on this loop instead: a frame from any call wakes the loop at most once per
batch (:meth:`SessionLoop.wake`), and what may wait (the recogniser's final, store
writes) runs on the loop's small thread pool so one call never stalls the others.

Only sessions without a voice agent are hosted: the agent's reply and speech tasks run
on their session's loop and assume it is the call's own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

BLOCKING_WORKERS = 32  # concurrent waits (finals, store writes) across all hosted calls


class Hosted(Protocol):
    """What the loop needs of a hosted session (a :class:`~core.pipeline.session.VoiceSession`)."""

    def _take_inbox(self) -> None: ...


class SessionLoop:
    """A daemon thread running an asyncio loop for hosted sessions."""

    def __init__(self, name: str = "voice-sessions", blocking_workers: int = BLOCKING_WORKERS):
        self._ready = threading.Event()
        self._waiting: deque[Hosted] = deque()
        self._wake_pending = False
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=blocking_workers, thread_name_prefix=f"{name}-blocking"
        )
        self.loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def wake(self, session: Hosted) -> None:
        """From any thread: ``session`` has frames in its inbox. The loop is woken once
        for every session that has frames waiting by then."""
        self._waiting.append(session)
        if not self._wake_pending:
            self._wake_pending = True
            self.loop.call_soon_threadsafe(self._take_inboxes)

    def _take_inboxes(self) -> None:
        self._wake_pending = False  # before draining: a later wake() schedules another run
        waiting = self._waiting
        while waiting:
            waiting.popleft()._take_inbox()

    async def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the thread pool; the loop goes on with other calls."""
        return await self.loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Stop the loop (hosted sessions should have ended) and its thread pool."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.loop.close()
