"""The part every fallback chain shares: providers in order, their breakers, the records.

A stage wrapper (:mod:`.reply`, :mod:`.tts`, :mod:`.stt`) asks :meth:`Chain.candidates`
which providers may serve a request now — those whose breaker would let the request
through (:meth:`Chain.admit` takes the slot just before a provider is tried), and always
the last one (the offline provider is the floor: it is tried even with its
circuit open) — and reports each outcome back, which updates the breaker and writes the
observability events.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.resilience.breaker import BreakerRegistry, BreakerSnapshot, BreakerState, CircuitBreaker
from core.resilience.errors import ErrorKind, ProviderError
from core.resilience.observe import NullSink, ProviderSink, Stage
from core.resilience.retry import RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")


def provider_name(engine: Any) -> str:
    """An engine's ``name`` attribute, else its class name without the role
    (``EmbeddedResponder`` → ``"embedded"``)."""
    name = getattr(engine, "name", None)
    if name:
        return str(name)
    return re.sub(r"(Responder|Engine|TTS|STT)$", "", type(engine).__name__).lower() or type(engine).__name__


def error_kind(error: BaseException) -> ErrorKind | None:
    """The vocabulary kind of a failure (None for errors outside it)."""
    return error.kind if isinstance(error, ProviderError) else None


@dataclass(frozen=True)
class ChainStatus:
    """What the UI shows about one stage: who serves it and how healthy each provider is.

    Attributes:
        stage: ``"stt"``, ``"llm"`` or ``"tts"``.
        providers: the chain, primary first, offline last.
        active: the provider that served the latest request (the primary before any).
        degraded: a provider other than the primary is serving, or the primary's
            circuit is not closed.
        breakers: each provider's breaker, in chain order.
    """

    stage: Stage
    providers: tuple[str, ...]
    active: str
    degraded: bool
    breakers: tuple[BreakerSnapshot, ...]


class Chain(Generic[T]):
    """Providers of one stage, primary first, with shared breakers and a sink.

    Args:
        stage: which stage this chain serves (names its breakers and events).
        engines: the providers, primary first; the last is the offline floor.
        registry: where the breakers live (shared by every call in the process).
        policy: retry timing for each provider.
        budget_s: a request's latency budget.
        sink: where events go (:class:`~.observe.NullSink` by default).
    """

    def __init__(
        self,
        stage: Stage,
        engines: Sequence[T],
        registry: BreakerRegistry,
        policy: RetryPolicy | None = None,
        budget_s: float = 4.0,
        sink: ProviderSink | None = None,
    ):
        if not engines:
            raise ValueError("a fallback chain needs at least one provider")
        self.stage = stage
        self.engines = tuple(engines)
        self.names = tuple(provider_name(e) for e in self.engines)
        self.registry = registry
        self.policy = policy or RetryPolicy()
        self.budget_s = budget_s
        self.sink: ProviderSink = sink or NullSink()

    def with_sink(self, sink: ProviderSink) -> Chain[T]:
        """The same providers and breakers, reporting to ``sink`` (one per call)."""
        return Chain(self.stage, self.engines, self.registry, self.policy, self.budget_s, sink)

    def breaker(self, index: int) -> CircuitBreaker:
        return self.registry.get(f"{self.stage}:{self.names[index]}")

    def candidates(self) -> list[int]:
        """Indices of the providers that may serve now, in order (no probe is taken yet)."""
        last = len(self.engines) - 1
        return [i for i in range(len(self.engines)) if i == last or self.breaker(i).available()]

    def admit(self, index: int) -> bool:
        """Take ``engines[index]``'s slot right before trying it (a half-open probe)."""
        return index == len(self.engines) - 1 or self.breaker(index).allow()

    def release(self, index: int) -> None:
        """A request admitted to ``engines[index]`` ended without an outcome (cancelled)."""
        self.breaker(index).release()

    def succeeded(self, index: int, started: float, usage: dict[str, float] | None = None) -> None:
        """``engines[index]`` served the request that began at ``started`` (monotonic)."""
        self.breaker(index).record_success()
        self.registry.set_active(self.stage, self.names[index])
        name = self.names[index]
        self.sink.provider_call(self.stage, name, True, None, (time.monotonic() - started) * 1000.0, None)
        if usage:
            self.sink.usage(self.stage, name, usage)

    def attempt_failed(self, index: int, error: BaseException) -> None:
        """One attempt on ``engines[index]`` failed (feeds its breaker)."""
        kind = error_kind(error)
        self.breaker(index).record_failure(kind, str(error)[:200])

    def gave_up(self, index: int, error: BaseException, started: float, next_index: int | None) -> None:
        """``engines[index]`` is abandoned for this request; ``next_index`` serves next.

        Its circuit opens (see :mod:`.breaker`): the rest of the call goes to the next
        provider until a half-open probe finds it working again.
        """
        kind = error_kind(error)
        self.breaker(index).trip(str(error)[:200])
        fallback = self.names[next_index] if next_index is not None else None
        log.warning(
            "provider failed",
            extra={"stage": self.stage, "provider": self.names[index], "kind": kind.value if kind else None,
                   "fallback_to": fallback, "error": str(error)[:200]},
        )
        self.sink.provider_call(
            self.stage, self.names[index], False, kind.value if kind else "error",
            (time.monotonic() - started) * 1000.0, fallback,
        )

    def status(self) -> ChainStatus:
        active = self.registry.active(self.stage) or self.names[0]
        breakers = tuple(self.breaker(i).snapshot() for i in range(len(self.engines)))
        primary_closed = breakers[0].state is BreakerState.CLOSED
        return ChainStatus(
            self.stage, self.names, active, active != self.names[0] or not primary_closed, breakers
        )

    @property
    def degraded(self) -> bool:
        return self.status().degraded


class ChainFront:
    """What every stage wrapper exposes about its chain (the UI's degraded mode)."""

    chain: Chain[Any]

    def __init__(self, chain: Chain[Any]):
        self.chain = chain
        self.name = "+".join(chain.names)

    def status(self) -> ChainStatus:
        return self.chain.status()

    @property
    def degraded(self) -> bool:
        """A provider other than the primary serves, or the primary's circuit is not closed."""
        return self.chain.degraded
