"""Resilience as composable wrappers over the provider Protocols.

* :mod:`.retry` — exponential backoff with full jitter inside a per-request budget.
* :mod:`.breaker` — a circuit breaker per stage and provider, in a process-wide registry.
* :mod:`.chain` — providers in order with their breakers and the observability sink.
* :mod:`.reply`, :mod:`.tts`, :mod:`.stt` — :class:`FallbackResponder`,
  :class:`FallbackTTS` and :class:`FallbackSTT`: each is itself a Responder, TTSEngine
  or STTEngine, so the voice agent and the session use them unchanged.
* :mod:`.observe` — ``provider_call`` and ``usage`` store events, one each per request.

Adapters only translate their SDK's errors (:mod:`core.resilience.errors`); whether to
retry, wait, open a circuit or fail over is decided here, once.
"""

from __future__ import annotations

from core.resilience.breaker import (
    BreakerConfig,
    BreakerRegistry,
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
)
from core.resilience.chain import Chain, ChainStatus
from core.resilience.observe import NullSink, ProviderSink, StoreSink, report_usage
from core.resilience.reply import FallbackResponder
from core.resilience.retry import Budget, RetryPolicy
from core.resilience.stt import FallbackSTT
from core.resilience.tts import FallbackTTS

__all__ = [
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "Budget",
    "Chain",
    "ChainStatus",
    "CircuitBreaker",
    "FallbackResponder",
    "FallbackSTT",
    "FallbackTTS",
    "NullSink",
    "ProviderSink",
    "RetryPolicy",
    "StoreSink",
    "report_usage",
]
