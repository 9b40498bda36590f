"""Bridge between a media callback (aiortc's thread) and voice sessions.

The first frame of a capture opens a session (so no leading audio is lost while the
UI catches up); ``close`` ends it. Frames that straggle in just after a close are
ignored instead of opening a new call.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from core.pipeline.events import SessionSnapshot
from core.pipeline.session import VoiceSession
from core.store import StoreError

STRAGGLER_WINDOW_S = 1.5
log = logging.getLogger(__name__)


class CaptureBridge:
    def __init__(self, open_session: Callable[[], VoiceSession]):
        self._open_session = open_session
        self._lock = threading.Lock()
        self.session: VoiceSession | None = None
        self.last_call_id: str | None = None
        self.error: str | None = None
        self._closed_at = 0.0

    def on_frame(self, frame: Any) -> None:
        """Media callback: never raises, never blocks for long."""
        session = self.session
        if session is None or not session.running:
            with self._lock:
                if time.monotonic() - self._closed_at < STRAGGLER_WINDOW_S:
                    return
                if self.session is None or not self.session.running:
                    try:
                        self.session = self._open_session()
                    except StoreError as exc:
                        self.error = f"could not start the call: {exc}"
                        self._closed_at = time.monotonic()
                        return
                    self.error = None
                    self.last_call_id = self.session.call_id
                session = self.session
        session.push_frame(frame)

    def close(self, wait: bool = True) -> None:
        """The user pressed Stop: end the current session normally ("ended")."""
        self._end(wait, "ended", None)

    def fail(self, reason: str, wait: bool = False, grace_s: float = 0.0) -> None:
        """The media went away without Stop (connection lost, tab closed, page left,
        worker reset): end the current session as "failed" with ``reason``.

        With ``grace_s``, the session is failed only if it is still open then: a Stop
        pressed at the same moment (the browser closes its connection as it sends Stop)
        arrives as :meth:`close` meanwhile and the call is "ended".
        """
        if grace_s <= 0:
            self._end(wait, "failed", reason)
            return
        session = self.session
        if session is None:
            return
        timer = threading.Timer(grace_s, self._end, args=(True, "failed", reason, session))
        timer.daemon = True
        timer.start()

    def _end(
        self, wait: bool, status: Literal["ended", "failed"], error: str | None, only: VoiceSession | None = None
    ) -> None:
        with self._lock:
            if only is not None and self.session is not only:
                return  # closed (or replaced) meanwhile
            session, self.session = self.session, None
            self._closed_at = time.monotonic()
        if session is None:
            return
        log.info("capture ended", extra={"call_id": session.call_id, "status": status, "reason": error})
        stop = functools.partial(session.stop, status=status, error=error)
        if wait:
            stop()
        else:
            threading.Thread(target=stop, name="session-stop", daemon=True).start()

    def snapshot(self) -> SessionSnapshot | None:
        session = self.session
        return session.snapshot() if session is not None else None
