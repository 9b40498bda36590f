"""Failover for streaming providers: one attempt guarded, the chain walked with retries.

Shared by the reply and speech wrappers: both need to know whether a failure came
before anything was streamed (transparent failover) or mid-stream (the consumer has
already used part of it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from core.ops.aio import close_quietly
from core.resilience.breaker import BreakerState
from core.resilience.chain import Chain
from core.resilience.errors import ErrorKind, ProviderError
from core.resilience.observe import begin_usage
from core.resilience.retry import Budget

T = TypeVar("T")
# Errors a provider stream may end with: the vocabulary, the stage errors (ReplyError,
# TTSError, STTError are RuntimeErrors), and parsing or socket errors an adapter let out.
STREAM_ERRORS = (RuntimeError, ValueError, OSError)
MIN_WAIT_S = 0.001


class StreamFailed(Exception):
    """An attempt failed; ``mid_stream`` when it had already produced something."""

    def __init__(self, error: BaseException, mid_stream: bool):
        super().__init__(str(error))
        self.error = error
        self.mid_stream = mid_stream


async def guarded(
    stream: AsyncIterator[T], provider: str, budget: Budget, wait_for_first: bool
) -> AsyncIterator[T]:
    """Items of ``stream``; the first must arrive within ``budget`` unless ``wait_for_first``.

    Raises:
        StreamFailed: the stream failed (``mid_stream`` if an item was already yielded).
    """
    iterator = stream.__aiter__()
    yielded = False
    try:
        try:
            if wait_for_first:
                first = await iterator.__anext__()
            else:
                async with asyncio.timeout(max(budget.remaining_s(), MIN_WAIT_S)):
                    first = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise ProviderError(
                provider, ErrorKind.TIMEOUT, f"nothing within the {budget.seconds * 1000:.0f} ms budget"
            ) from exc
        yielded = True
        yield first
        async for item in iterator:
            yield item
    except STREAM_ERRORS as exc:
        raise StreamFailed(exc, mid_stream=yielded) from exc
    finally:
        await close_quietly(iterator)


class ChainExhausted(Exception):
    """Every provider of a chain failed this request; ``error`` is the last failure."""

    def __init__(self, error: BaseException | None):
        super().__init__(f"every provider failed: {error}")
        self.error = error


async def failover(
    chain: Chain[Any],
    attempt: Callable[[int, Budget, bool], AsyncIterator[T]],
    usage_figures: dict[str, float] | None = None,
) -> AsyncIterator[T]:
    """Items from the first provider of ``chain`` that can serve, with retries and failover.

    Args:
        chain: the providers, breakers, retry policy, budget and sink.
        attempt: ``attempt(index, budget, is_last)`` streams one try on ``engines[index]``
            and raises :class:`StreamFailed` on failure.
        usage_figures: usage the wrapper itself measured, added on success.

    Raises:
        ChainExhausted: every provider failed.
    """
    budget = Budget(chain.budget_s)
    candidates = chain.candidates()
    last_error: BaseException | None = None
    for pos, index in enumerate(candidates):
        is_last = pos == len(candidates) - 1
        if (budget.expired and not is_last) or not chain.admit(index):
            continue  # no time left for a cloud provider, or its circuit opened meanwhile
        started = time.monotonic()
        attempt_no = 0
        try:
            while True:
                attempt_no += 1
                usage = begin_usage()
                stream = attempt(index, budget, is_last)
                try:
                    async for item in stream:
                        yield item
                except StreamFailed as failed:
                    last_error = failed.error
                    chain.attempt_failed(index, failed.error)
                    # Never retry mid-stream (the consumer already used part of it), nor
                    # once the breaker has opened: the outage is the next provider's cue.
                    delay = None if failed.mid_stream else chain.policy.delay_before_retry(
                        failed.error, attempt_no, budget)
                    if delay is not None and chain.breaker(index).state is BreakerState.CLOSED:
                        await asyncio.sleep(delay)
                        continue
                    next_index = candidates[pos + 1] if pos + 1 < len(candidates) else None
                    chain.gave_up(index, failed.error, started, next_index)
                    break
                finally:
                    await close_quietly(stream)
                usage.add(**(usage_figures or {}))
                chain.succeeded(index, started, usage.figures)
                return
        except BaseException:  # cancelled (barge-in) or closed by the consumer: no outcome
            chain.release(index)
            raise
    raise ChainExhausted(last_error)
