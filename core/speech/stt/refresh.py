"""Keeping the speech recogniser's domain language model in step with the knowledge base.

The domain model is built from the KB text (:mod:`core.speech.stt.domain_lm`, a few seconds).
When articles change, :class:`SpeechModelRefresher` rebuilds it on its own thread, a short
while after the last change (edits come in bursts), and hands the new engine to
:class:`SwappableEngine`. Utterances already being decoded finish on the model they started
with; the next utterance opens on the new one. The UI only reads :class:`ModelStatus`.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.ops.threads import lower_this_threads_priority
from core.speech.stt import STTEngine, UtteranceStream

log = logging.getLogger(__name__)

REBUILD_DEBOUNCE_S = 2.0  # wait this long after the last KB change before rebuilding
JOIN_AT_EXIT_S = 60.0  # a build in native code must finish before the interpreter exits

ModelState = Literal["ready", "pending", "rebuilding", "failed"]


@dataclass(frozen=True)
class ModelStatus:
    """What the speech model is doing, for the UI.

    Attributes:
        state: ``ready`` (in use), ``pending`` (a change is waiting for the debounce),
            ``rebuilding`` or ``failed`` (the previous model stays in use).
        message: one line for a person.
        builds: models built and swapped in since start.
        updated_at: Unix seconds of the last state change.
    """

    state: ModelState
    message: str
    builds: int = 0
    updated_at: float = 0.0


class SwappableEngine:
    """An :class:`core.speech.stt.STTEngine` whose underlying engine can be replaced during calls.

    Args:
        engine: the engine to start with.
    """

    def __init__(self, engine: STTEngine):
        self._engine = engine
        self._lock = threading.Lock()

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._engine.name

    @property
    def current(self) -> STTEngine:
        """The engine new utterances open on."""
        return self._engine

    def open(self) -> UtteranceStream:
        """A stream on the current engine (kept by the stream even if a swap follows)."""
        with self._lock:
            engine = self._engine
        return engine.open()

    def swap(self, engine: STTEngine) -> STTEngine:
        """Make ``engine`` serve new utterances; returns the engine it replaces."""
        with self._lock:
            old, self._engine = self._engine, engine
        return old

    def __getattr__(self, item: str) -> Any:
        # lm_path, dict_path, decoder_options...: whatever the current engine exposes.
        if item.startswith("_"):
            raise AttributeError(item)
        return getattr(self._engine, item)


class SpeechModelRefresher:
    """Debounced background rebuilds of a model from text, swapped in when built.

    Args:
        build: text → new engine (slow; runs on the refresher's thread).
        apply: installs a built engine (e.g. :meth:`SwappableEngine.swap`); returns the
            engine it replaced, or None.
        debounce_s: quiet time after the last :meth:`schedule` before building.
        discard: called with a replaced engine and its replacement once the swap is done
            (to tidy the old model's files).
    """

    def __init__(
        self,
        build: Callable[[list[str]], Any],
        apply: Callable[[Any], Any],
        debounce_s: float = REBUILD_DEBOUNCE_S,
        discard: Callable[[Any, Any], None] | None = None,
    ):
        self._build = build
        self._apply = apply
        self._discard = discard
        self.debounce_s = debounce_s
        self._cond = threading.Condition()
        self._pending: list[str] | None = None
        self._due = 0.0
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._status = ModelStatus("ready", "speech model ready", 0, time.time())

    def status(self) -> ModelStatus:
        """The current :class:`ModelStatus` (a copy; safe from any thread)."""
        with self._cond:
            return self._status

    def schedule(self, texts: Sequence[str]) -> None:
        """Rebuild from ``texts`` after the debounce; a newer call replaces an older one."""
        with self._cond:
            self._pending = list(texts)
            self._due = time.monotonic() + self.debounce_s
            if not self._busy:
                self._set("pending", "speech model will be rebuilt for the edited knowledge base")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="speech-model-refresh", daemon=True)
                self._thread.start()
                atexit.register(self.close)
            self._cond.notify_all()

    def wait(self, timeout_s: float) -> bool:
        """Block until nothing is pending or building; True if that happened in time."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """Stop the thread (a build under way finishes first, up to ``JOIN_AT_EXIT_S``)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN_AT_EXIT_S)

    def _set(self, state: ModelState, message: str, built: int = 0) -> None:
        self._status = ModelStatus(state, message, self._status.builds + built, time.time())

    def _next(self) -> list[str] | None:
        with self._cond:
            while not self._stopping:
                if self._pending is None:
                    self._cond.wait()
                    continue
                left = self._due - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                texts, self._pending = self._pending, None
                self._busy = True
                self._set("rebuilding", "rebuilding speech model…")
                return texts
            return None

    def _run(self) -> None:
        lower_this_threads_priority()
        while (texts := self._next()) is not None:
            t = time.perf_counter()
            try:
                new = self._build(texts)
                old = self._apply(new)
            except Exception as exc:  # the previous model stays in use
                log.exception("speech model rebuild failed")
                with self._cond:
                    self._set("failed", f"speech model rebuild failed, the previous one stays in use: {exc}")
            else:
                with self._cond:
                    self._set("ready", f"speech model ready (rebuilt in {time.perf_counter() - t:.1f} s)", 1)
                if old is not None and self._discard is not None:
                    self._discard(old, new)
            finally:
                with self._cond:
                    self._busy = False
                    if self._pending is not None and self._status.state != "failed":
                        self._set("pending", "speech model will be rebuilt for the edited knowledge base")
                    self._cond.notify_all()


class ModelFiles:
    """Deletes model files this process built once they are replaced (the cache would grow
    by a few MB per KB edit otherwise); files it found already there are left alone, since
    another process may be using them.

    Args:
        folder: the model cache folder.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._before = self._listing()
        self._lock = threading.Lock()

    def _listing(self) -> set[Path]:
        return set(self.folder.glob("domain-*")) if self.folder.is_dir() else set()

    def discard(self, old: Any, new: Any) -> None:
        """Remove ``old``'s LM and dictionary if this process created them and ``new``
        does not use them (the same text gives the same files)."""
        in_use = {getattr(new, "lm_path", None), getattr(new, "dict_path", None)}
        paths = {getattr(old, "lm_path", None), getattr(old, "dict_path", None)} - in_use
        with self._lock:
            for path in paths:
                if isinstance(path, Path) and path not in self._before and path.parent == self.folder:
                    path.unlink(missing_ok=True)


__all__ = ["ModelFiles", "ModelStatus", "SpeechModelRefresher", "SwappableEngine"]
