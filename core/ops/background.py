"""Models built on a background thread (seconds of work), used once they are ready."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from typing import Any

from core.ops.threads import lower_this_threads_priority

log = logging.getLogger(__name__)
BUILD_JOIN_AT_EXIT_S = 120.0


class BackgroundModel:
    """A model built on a daemon thread (seconds of work) and used once it is ready."""

    def __init__(self, build: Callable[[], Any], name: str):
        self._model: Any = None
        self.error: str | None = None
        self._exiting = threading.Event()
        self._thread = threading.Thread(target=self._build, args=(build,), name=f"build-{name}", daemon=True)
        self._thread.start()
        # Native code (torch, BLAS) aborts the process if the interpreter exits under a
        # running daemon thread: let the build finish first.
        atexit.register(self._thread.join, BUILD_JOIN_AT_EXIT_S)
        atexit.register(self._exiting.set)  # runs first (LIFO): the build ends quietly

    def _build(self, build: Callable[[], Any]) -> None:
        lower_this_threads_priority()
        try:
            self._model = build()
        except Exception as exc:  # shown as "no intent" rather than breaking the page
            self.error = f"{type(exc).__name__}: {exc}"
            if not self._exiting.is_set():
                log.exception("model build failed")

    @property
    def ready(self) -> bool:
        return self._model is not None

    def wait(self, timeout_s: float) -> bool:
        self._thread.join(timeout_s)
        return self.ready

    @property
    def model(self) -> Any:
        """The built model, None until it is ready (or if its build failed)."""
        return self._model

    def predict(self, text: str) -> Any:
        return self._model.predict(text) if self._model is not None else None
