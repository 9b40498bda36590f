"""Retry timing: exponential backoff with full jitter, bounded by a latency budget.

A request (one caller turn's reply, one utterance's transcript, one piece of speech) has
a budget: the time the caller can wait. A retryable failure is tried again after
``uniform(0, min(max_delay, base * 2**attempt))`` (full jitter spreads the retries of
many calls hitting the same outage), or after the vendor's ``Retry-After`` when it sent
one. A wait that would end past the budget is not taken: the provider is given up with
its last error and the next provider in the chain serves instead.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.resilience.errors import ProviderError


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one provider is retried within one request.

    Attributes:
        max_attempts: tries per provider per request (1 = no retry).
        base_delay_s: first backoff ceiling; doubles per attempt.
        max_delay_s: backoff ceiling.
    """

    max_attempts: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff_s(self, attempt: int) -> float:
        """Full-jitter wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return self.rng.uniform(0.0, ceiling)

    def delay_before_retry(self, error: BaseException, attempt: int, budget: Budget) -> float | None:
        """Seconds to wait before trying again, or None to give this provider up.

        Args:
            error: what the failed attempt raised.
            attempt: how many attempts have been made (1-based).
            budget: the request's remaining time; a wait never ends past it.
        """
        if not isinstance(error, ProviderError) or not error.retryable or attempt >= self.max_attempts:
            return None
        delay = error.retry_after_s if error.retry_after_s is not None else self.backoff_s(attempt)
        # Waiting and then getting no answer before the deadline helps nobody: leave
        # room for at least a tenth of the budget to be spent on the retry itself.
        if delay >= budget.remaining_s() * 0.9:
            return None
        return delay


class Budget:
    """A request's deadline on the monotonic clock.

    Args:
        seconds: time allowed from now.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self.started = clock()

    def remaining_s(self) -> float:
        return max(0.0, self.seconds - (self._clock() - self.started))

    def elapsed_ms(self) -> float:
        return (self._clock() - self.started) * 1000.0

    @property
    def expired(self) -> bool:
        return self.remaining_s() <= 0.0
