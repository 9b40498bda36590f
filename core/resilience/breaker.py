"""Circuit breakers, one per provider and stage, in a registry the health page reads.

A breaker is *closed* while its provider works. ``failure_threshold`` consecutive
failed attempts, one permanent failure (a bad key, an exhausted quota), or a request
the provider could not serve at all within its retries and budget (:meth:`trip`, called
by the fallback chain) *open* it: requests skip the provider for ``open_s``. Tripping on
a lost request is what moves the rest of a call to the next provider within one turn:
a caller cannot wait for a slow provider's threshold to be reached turn after turn. Then it is *half-open*: up to ``half_open_probes``
requests go through as probes; that many successes close it again, one failure opens
it for another ``open_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from core.resilience.errors import ErrorKind

# Failures no retry or wait can fix: the circuit opens on the first one.
PERMANENT_KINDS = frozenset({ErrorKind.AUTH, ErrorKind.QUOTA})


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    """How quickly a breaker opens and how it recovers.

    Attributes:
        failure_threshold: consecutive failures that open the circuit.
        open_s: time the circuit stays open before a probe is let through.
        half_open_probes: successful probes needed to close it again.
    """

    failure_threshold: int = 3
    open_s: float = 30.0
    half_open_probes: int = 1


@dataclass(frozen=True)
class BreakerSnapshot:
    """A breaker's state and counters at one moment (for the health page)."""

    name: str
    state: BreakerState
    consecutive_failures: int
    successes: int
    failures: int
    rejected: int
    opened_count: int
    last_error: str | None
    open_remaining_s: float


class CircuitBreaker:
    """Thread-safe closed/open/half-open breaker for one provider.

    Args:
        name: ``"<stage>:<provider>"``, e.g. ``"llm:openai"``.
        config: thresholds and durations.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(self, name: str, config: BreakerConfig | None = None, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_started = 0.0
        self._probe_successes = 0
        self._successes = 0
        self._failures = 0
        self._rejected = 0
        self._opened_count = 0
        self._last_error: str | None = None

    def _refresh(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.config.open_s:
            self._state = BreakerState.HALF_OPEN
            self._probes_in_flight = 0
            self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._refresh()
            return self._state

    def available(self) -> bool:
        """Whether :meth:`allow` would let a request through now (no probe is taken)."""
        with self._lock:
            self._refresh()
            if self._state is BreakerState.HALF_OPEN:
                return self._probes_in_flight < self.config.half_open_probes or self._probe_is_stale()
            return self._state is BreakerState.CLOSED

    def _probe_is_stale(self) -> bool:
        # A probe whose request never reported back (the call ended mid-request) must
        # not keep the circuit half-open for ever: after ``open_s`` another may go.
        return self._clock() - self._probe_started >= self.config.open_s

    def allow(self) -> bool:
        """Whether a request may go to the provider now (takes a half-open probe)."""
        with self._lock:
            self._refresh()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.HALF_OPEN:
                if self._probes_in_flight >= self.config.half_open_probes and self._probe_is_stale():
                    self._probes_in_flight = 0
                if self._probes_in_flight < self.config.half_open_probes:
                    self._probes_in_flight += 1
                    self._probe_started = self._clock()
                    return True
            self._rejected += 1
            return False

    def release(self) -> None:
        """A request let through by :meth:`allow` ended without an outcome (cancelled)."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN and self._probes_in_flight > 0:
                self._probes_in_flight -= 1

    def record_success(self) -> None:
        with self._lock:
            self._successes += 1
            self._consecutive = 0
            if self._state is BreakerState.HALF_OPEN:
                self._probe_successes += 1
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
                if self._probe_successes >= self.config.half_open_probes:
                    self._state = BreakerState.CLOSED

    def record_failure(self, kind: ErrorKind | None = None, message: str = "") -> None:
        with self._lock:
            self._failures += 1
            self._consecutive += 1
            self._last_error = message or (kind.value if kind else "error")
            self._refresh()
            if (
                self._state is BreakerState.HALF_OPEN
                or kind in PERMANENT_KINDS
                or self._consecutive >= self.config.failure_threshold
            ):
                self._open()

    def _open(self) -> None:
        if self._state is not BreakerState.OPEN:
            self._opened_count += 1
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._probes_in_flight = 0
        self._probe_successes = 0

    def trip(self, message: str = "") -> None:
        """Open the circuit now: the provider could not serve a whole request in its budget."""
        with self._lock:
            self._last_error = message or self._last_error
            self._open()

    def reset(self) -> None:
        """Close the circuit and forget the streak (after a manual check succeeded)."""
        with self._lock:
            self._state = BreakerState.CLOSED
            self._consecutive = 0

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            self._refresh()
            remaining = 0.0
            if self._state is BreakerState.OPEN:
                remaining = max(0.0, self.config.open_s - (self._clock() - self._opened_at))
            return BreakerSnapshot(
                self.name, self._state, self._consecutive, self._successes, self._failures,
                self._rejected, self._opened_count, self._last_error, remaining,
            )


class BreakerRegistry:
    """Named breakers shared by every call in the process (thread-safe)."""

    def __init__(self, config: BreakerConfig | None = None, clock: Callable[[], float] = time.monotonic):
        self.config = config or BreakerConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._active: dict[str, str] = {}

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called ``name``, created closed on first use."""
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = self._breakers[name] = CircuitBreaker(name, self.config, self._clock)
            return breaker

    def snapshot(self) -> dict[str, BreakerSnapshot]:
        """Every breaker's state, by name."""
        with self._lock:
            breakers = list(self._breakers.values())
        return {b.name: b.snapshot() for b in breakers}

    def set_active(self, stage: str, provider: str) -> None:
        """``provider`` served the latest request of ``stage`` (any call)."""
        with self._lock:
            self._active[stage] = provider

    def active(self, stage: str) -> str | None:
        """The provider that served the latest request of ``stage``, None before any."""
        with self._lock:
            return self._active.get(stage)
