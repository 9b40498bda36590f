"""What provider calls cost and how they went, recorded as store events.

Contract (the metrics page reads it): one ``provider_call`` event per provider per
request — ``{stage, provider, ok, kind, ms, fallback_to}`` where ``stage`` is ``"stt"``,
``"llm"`` or ``"tts"``, ``kind`` the :class:`~core.resilience.errors.ErrorKind` value of
the failure (``null`` on success, ``"error"`` for a failure outside the vocabulary),
``ms`` the time spent on that provider including retries and ``fallback_to`` the
provider tried next (``null`` when none was) — and one ``usage`` event per successful
request — ``{stage, provider}`` plus ``stt_seconds``, ``tts_chars`` or
``llm_input_tokens``/``llm_output_tokens``.

Wrappers write through a :class:`ProviderSink`; :class:`StoreSink` ties one to a call.
Adapters report what only they know (token counts) with :func:`report_usage`, which
lands in the usage of the request being served on the current thread or task.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol

from core.store import Store, StoreError

log = logging.getLogger(__name__)

Stage = Literal["stt", "llm", "tts"]
PROVIDER_CALL_EVENT = "provider_call"
USAGE_EVENT = "usage"


class ProviderSink(Protocol):
    """Where a resilient wrapper reports each request's outcome and usage."""

    def provider_call(
        self, stage: Stage, provider: str, ok: bool, kind: str | None, ms: float, fallback_to: str | None
    ) -> None: ...

    def usage(self, stage: Stage, provider: str, figures: dict[str, float]) -> None: ...


class NullSink:
    """Records nothing (no call to attach events to)."""

    def provider_call(
        self, stage: Stage, provider: str, ok: bool, kind: str | None, ms: float, fallback_to: str | None
    ) -> None:
        return None

    def usage(self, stage: Stage, provider: str, figures: dict[str, float]) -> None:
        return None


class StoreSink:
    """Writes the events of one call to the store.

    Args:
        store: where events go.
        call_id: returns the call's id, or None while the call has not started (the
            session creates it on start, after the wrappers are built).
    """

    def __init__(self, store: Store, call_id: Callable[[], str | None]):
        self._store = store
        self._call_id = call_id

    def _add(self, type_: str, payload: dict[str, Any]) -> None:
        call_id = self._call_id()
        if not call_id:
            return
        try:
            self._store.add_event(call_id, type_, payload)
        except StoreError as exc:  # metrics must never break a call
            log.warning("could not record provider event", extra={"call_id": call_id, "error": str(exc)})

    def provider_call(
        self, stage: Stage, provider: str, ok: bool, kind: str | None, ms: float, fallback_to: str | None
    ) -> None:
        self._add(PROVIDER_CALL_EVENT, {
            "stage": stage, "provider": provider, "ok": ok, "kind": kind,
            "ms": round(ms, 1), "fallback_to": fallback_to,
        })

    def usage(self, stage: Stage, provider: str, figures: dict[str, float]) -> None:
        if figures:
            self._add(USAGE_EVENT, {"stage": stage, "provider": provider, **figures})


class Usage:
    """Figures collected while one provider serves one request."""

    def __init__(self) -> None:
        self.figures: dict[str, float] = {}

    def add(self, **figures: float) -> None:
        for key, value in figures.items():
            self.figures[key] = self.figures.get(key, 0.0) + value


_current: contextvars.ContextVar[Usage | None] = contextvars.ContextVar("vc_provider_usage", default=None)


def begin_usage() -> Usage:
    """Start collecting usage for the request served on this thread or task."""
    usage = Usage()
    _current.set(usage)
    return usage


def report_usage(**figures: float) -> None:
    """Add figures (``llm_input_tokens=12`` ...) to the request being served, if any."""
    usage = _current.get()
    if usage is not None:
        usage.add(**figures)


def with_call_events(engine: Any, store: Store, call_id: Callable[[], str | None]) -> Any:
    """``engine`` reporting its provider events against one call, if it is a fallback chain."""
    with_sink = getattr(engine, "with_sink", None)
    return with_sink(StoreSink(store, call_id)) if with_sink is not None else engine
