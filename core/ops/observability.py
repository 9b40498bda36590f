"""Error reporting and stage timings to Sentry, with PII scrubbed before anything leaves.

Off unless ``SENTRY_DSN`` is set. Then, once per process, :func:`init_error_reporting`
starts the SDK with:

* a scrubber that runs :mod:`core.privacy.pii` over every string of an event (message, exception
  values, stack-frame variables, breadcrumbs, extra, contexts, span descriptions), so a card
  number a caller spoke never reaches Sentry;
* ``call_id`` / ``session_id`` tags taken from the structured-log fields (``extra=``) every
  call-related log line already carries, so an error is findable by call;
* :func:`stage_span`: a span per pipeline stage (endpointing, STT, reply, TTS); a stage
  with no enclosing span starts its own transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.config import ConfigError, Settings
from core.privacy.pii import redact

log = logging.getLogger(__name__)

TAG_FIELDS = ("call_id", "session_id")
# Identifiers and SDK bookkeeping: never PII, and redaction would corrupt them.
_KEEP_KEYS = frozenset({
    "event_id", "trace_id", "span_id", "parent_span_id", "timestamp", "start_timestamp",
    "release", "environment", "platform", "sdk", "modules", "level", "logger", "type",
    "module", "filename", "abs_path", "function", "lineno", "in_app", "op", "status",
    *TAG_FIELDS,
})
MAX_SCRUB_DEPTH = 12

_lock = threading.Lock()
_active_dsn: str | None = None


def scrub(value: Any, depth: int = 0) -> Any:
    """``value`` with every string passed through PII redaction (containers copied)."""
    if depth > MAX_SCRUB_DEPTH:
        return value
    if isinstance(value, str):
        return redact(value)[0]
    if isinstance(value, dict):
        return {k: v if k in _KEEP_KEYS else scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub(v, depth + 1) for v in value)
    return value


def _tag_and_scrub(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """``before_send``: promote call/session ids to tags, then redact the whole event."""
    tags = event.setdefault("tags", {})
    extra = event.get("extra") or {}
    for name in TAG_FIELDS:
        if extra.get(name) and name not in tags:
            tags[name] = str(extra[name])
    return scrub(event)


def _scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    return scrub(crumb)


def init_error_reporting(settings: Settings) -> bool:
    """Start Sentry if ``SENTRY_DSN`` is set; safe to call many times (once per process).

    Returns:
        Whether error reporting is on.

    Raises:
        ConfigError: a DSN is set but the sentry-sdk package is missing or rejects it.
    """
    global _active_dsn
    if not settings.sentry_dsn:
        return False
    with _lock:
        if _active_dsn is not None:
            return True
        try:
            import sentry_sdk
        except ImportError as exc:
            raise ConfigError(
                "SENTRY_DSN is set but the sentry-sdk package is missing: "
                "pip install 'sentry-sdk>=2.75', or unset SENTRY_DSN"
            ) from exc
        try:
            sentry_sdk.init(
                dsn=settings.sentry_dsn,
                send_default_pii=False,
                before_send=_tag_and_scrub,
                before_send_transaction=_tag_and_scrub,
                before_breadcrumb=_scrub_breadcrumb,
                traces_sample_rate=settings.sentry_traces_sample_rate,
            )
        except Exception as exc:  # the SDK raises BadDsn and friends
            raise ConfigError(f"SENTRY_DSN is not a valid Sentry DSN: {exc}") from exc
        _active_dsn = settings.sentry_dsn
    log.info("error reporting to Sentry is on")
    return True


def error_reporting_active() -> bool:
    return _active_dsn is not None


@contextmanager
def stage_span(stage: str, call_id: str | None = None, **data: Any) -> Iterator[None]:
    """Time one pipeline stage (``endpointing``, ``stt``, ``reply``, ``tts``...) in Sentry.

    Nested inside another stage it is a child span; on its own it is a transaction.
    Exceptions raised inside are tagged with ``call_id``. Costs nothing when Sentry is off.
    """
    if _active_dsn is None:
        yield
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        # the parent is looked up, and the span opened, inside the new scope so that
        # nested stages find this one
        parent = scope.span
        opener = (
            parent.start_child(op=f"voice.{stage}", name=stage)
            if parent is not None
            else sentry_sdk.start_transaction(op=f"voice.{stage}", name=f"voice {stage}")
        )
        with opener as span:
            if call_id:
                scope.set_tag("call_id", call_id)
                span.set_tag("call_id", call_id)
            for key, value in data.items():
                span.set_data(key, value)
            yield
