"""Bridge between a media callback (aiortc's thread) and voice sessions.

The first frame of a capture opens a session (so no leading audio is lost while the
UI catches up); ``close`` ends it. Frames that straggle in just after a close are
ignored instead of opening a new call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from core.session import SessionSnapshot, VoiceSession
from core.store import StoreError

STRAGGLER_WINDOW_S = 1.5


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
        """End the current session (Stop pressed, tab closed, track ended)."""
        with self._lock:
            session, self.session = self.session, None
            self._closed_at = time.monotonic()
        if session is None:
            return
        if wait:
            session.stop()
        else:
            threading.Thread(target=session.stop, name="session-stop", daemon=True).start()

    def snapshot(self) -> SessionSnapshot | None:
        session = self.session
        return session.snapshot() if session is not None else None
