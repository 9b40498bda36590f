"""Retry, circuit breakers and fallback chains over fake providers (no network)."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import numpy as np
import pytest

from core.conversation.reply import Conversation, ReplyError
from core.resilience import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    Budget,
    Chain,
    CircuitBreaker,
    FallbackResponder,
    FallbackSTT,
    FallbackTTS,
    RetryPolicy,
    StoreSink,
)
from core.resilience.errors import ErrorKind, ProviderError
from core.resilience.reply import unsaid_sentences
from core.speech.stt import STTError
from tests.providers.fakes import CountingSTT, ScriptedResponder, ToneTTS

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05, rng=random.Random(7))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def chain(stage, engines, threshold=3, open_s=30.0, budget_s=2.0, policy=FAST, sink=None):
    registry = BreakerRegistry(BreakerConfig(threshold, open_s, 1))
    return Chain(stage, engines, registry, policy, budget_s, sink)


def reply_of(responder, conversation=None) -> str:
    async def run() -> str:
        return "".join([d async for d in responder.stream(conversation or Conversation())])

    return asyncio.run(run())


# --- breaker --------------------------------------------------------------------------------
def test_breaker_opens_after_threshold_probes_after_open_time_and_closes_on_success():
    clock = Clock()
    breaker = CircuitBreaker("llm:x", BreakerConfig(failure_threshold=3, open_s=10.0, half_open_probes=1), clock)
    for _ in range(2):
        breaker.record_failure(ErrorKind.SERVER)
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure(ErrorKind.SERVER)
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    snap = breaker.snapshot()
    assert (snap.failures, snap.successes, snap.rejected, snap.opened_count) == (3, 1, 3, 1)


def test_failed_probe_reopens_and_bad_key_opens_at_once():
    clock = Clock()
    breaker = CircuitBreaker("llm:x", BreakerConfig(3, 5.0, 1), clock)
    breaker.record_failure(ErrorKind.AUTH)
    assert breaker.state is BreakerState.OPEN
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_failure(ErrorKind.TIMEOUT)
    assert breaker.state is BreakerState.OPEN and breaker.snapshot().open_remaining_s == pytest.approx(5.0)


def test_breaker_counts_are_exact_under_threads():
    breaker = CircuitBreaker("stt:x", BreakerConfig(failure_threshold=10**6))

    def hammer() -> None:
        for _ in range(2000):
            breaker.record_failure(ErrorKind.SERVER)
            breaker.allow()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.snapshot().failures == 16000 and breaker.snapshot().consecutive_failures == 16000


# --- retry ----------------------------------------------------------------------------------
def test_full_jitter_stays_under_the_exponential_ceiling_and_honours_retry_after():
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.1, max_delay_s=0.5, rng=random.Random(1))
    delays = [policy.backoff_s(a) for a in (1, 2, 3, 4) for _ in range(200)]
    assert max(delays[:200]) <= 0.1 and max(delays[200:400]) <= 0.2 and max(delays[600:]) <= 0.5
    assert min(delays) >= 0.0 and np.std(delays[600:]) > 0.1  # spread, not a fixed wait
    hinted = ProviderError("p", ErrorKind.RATE_LIMIT, "slow", retry_after_s=0.7)
    assert policy.delay_before_retry(hinted, 1, Budget(5.0)) == 0.7
    # A hint that would end past the budget is not waited for: give up now.
    assert policy.delay_before_retry(hinted, 1, Budget(0.5)) is None
    assert policy.delay_before_retry(ProviderError("p", ErrorKind.AUTH, "no"), 1, Budget(5.0)) is None
    assert policy.delay_before_retry(hinted, 5, Budget(5.0)) is None


# --- replies --------------------------------------------------------------------------------
def test_reply_fails_over_before_first_token_and_later_turns_skip_the_open_circuit():
    cloud = ScriptedResponder("cloud", "From the cloud.", fail_kind=ErrorKind.SERVER)
    local = ScriptedResponder("local", "From the floor.")
    responder = FallbackResponder(chain("llm", [cloud, local], threshold=3))
    assert reply_of(responder).strip() == "From the floor."
    assert cloud.calls == 3  # three attempts, then the breaker opened
    assert responder.degraded and responder.status().active == "local"
    for _ in range(4):
        assert reply_of(responder).strip() == "From the floor."
    assert cloud.calls == 3  # circuit open: no more requests to the failing provider


def test_rate_limit_hint_is_waited_for_within_the_budget():
    cloud = ScriptedResponder("cloud", "Cloud answer.", fail_kind=ErrorKind.RATE_LIMIT, failures=1, retry_after_s=0.2)
    responder = FallbackResponder(chain("llm", [cloud, ScriptedResponder("local", "Floor.")], budget_s=2.0))
    started = time.monotonic()
    assert reply_of(responder).strip() == "Cloud answer."
    assert 0.2 <= time.monotonic() - started < 1.0 and cloud.calls == 2


def test_a_wait_past_the_budget_is_not_taken():
    cloud = ScriptedResponder("cloud", "Cloud answer.", fail_kind=ErrorKind.RATE_LIMIT, retry_after_s=30.0)
    responder = FallbackResponder(chain("llm", [cloud, ScriptedResponder("local", "Floor.")], budget_s=1.0))
    started = time.monotonic()
    assert reply_of(responder).strip() == "Floor."
    assert time.monotonic() - started < 0.5 and cloud.calls == 1


def test_a_slow_first_token_times_out_at_the_budget():
    slow = ScriptedResponder("slow", "Too late.", word_delay_s=2.0)
    responder = FallbackResponder(chain("llm", [slow, ScriptedResponder("local", "Floor.")], budget_s=0.3,
                                        policy=RetryPolicy(max_attempts=1)))
    started = time.monotonic()
    assert reply_of(responder).strip() == "Floor."
    assert 0.3 <= time.monotonic() - started < 1.5


def test_mid_stream_failure_continues_without_repeating_what_was_said():
    said = "Your card is frozen now. You can unfreeze it in the app."
    cloud = ScriptedResponder("cloud", said, fail_kind=ErrorKind.CONNECTION, fail_after_words=5)
    local = ScriptedResponder("local", "Your card is frozen now. It takes a few seconds to unfreeze it.")
    reply = reply_of(FallbackResponder(chain("llm", [cloud, local])))
    assert reply.startswith("Your card is frozen now.")
    assert reply.count("frozen") == 1 and "few seconds" in reply
    assert cloud.calls == 1  # never retried mid-reply: that would repeat heard words
    assert unsaid_sentences("A b c. D e f.", "a b c") == "D e f."


def test_every_provider_failing_is_a_retryable_reply_error():
    bad = [ScriptedResponder(n, "x", fail_kind=ErrorKind.SERVER) for n in ("a", "b")]
    with pytest.raises(ReplyError) as info:
        reply_of(FallbackResponder(chain("llm", bad, policy=RetryPolicy(max_attempts=1))))
    assert info.value.retryable


# --- speech to text -------------------------------------------------------------------------
def feed(engine, chunks: int, size: int = 320) -> tuple[str, int]:
    stream = engine.open()
    for _ in range(chunks):
        stream.accept(np.ones(size, np.int16))
        stream.partial()
    return stream.finish().text, chunks * size


@pytest.mark.parametrize("where", ["open", "accept", "partial", "finish"])
def test_stt_failover_replays_the_whole_utterance(where):
    primary = CountingSTT("cloud", fail_on=where, fail_after_samples=1000, fail_kind=ErrorKind.AUTH)
    floor = CountingSTT("floor")
    engine = FallbackSTT(chain("stt", [primary, floor]))
    lost = 0
    for _ in range(5):
        text, samples = feed(engine, 10)
        lost += text != f"{samples} samples"
    assert lost == 0
    assert primary.failed == 1 and floor.finished == 5  # auth: circuit open after one failure


def test_stt_retries_the_same_engine_on_a_transient_failure():
    primary = CountingSTT("cloud", fail_on="finish", failures=1, fail_kind=ErrorKind.TIMEOUT)
    floor = CountingSTT("floor")
    text, samples = feed(FallbackSTT(chain("stt", [primary, floor])), 8)
    assert text == f"{samples} samples" and primary.finished == 1 and floor.finished == 0


def test_stt_floor_failure_is_an_stt_error_for_the_session():
    engine = FallbackSTT(chain("stt", [CountingSTT("a", fail_on="finish"), CountingSTT("b", fail_on="finish",
                                                                                          fail_kind=None)]))
    with pytest.raises(STTError):
        feed(engine, 3)


# --- text to speech -------------------------------------------------------------------------
def speak(tts, text: str) -> int:
    async def run() -> int:
        return sum([c.size async for c in tts.stream(text)])

    return asyncio.run(run())


def test_tts_failover_resamples_to_the_primary_rate():
    cloud = ToneTTS("cloud", sample_rate_hz=24000, fail_kind=ErrorKind.SERVER)
    floor = ToneTTS("floor", sample_rate_hz=16000)
    tts = FallbackTTS(chain("tts", [cloud, floor]))
    assert tts.sample_rate_hz == 24000
    samples = speak(tts, "x" * 100)  # 1 s of floor audio at 16 kHz
    assert abs(samples - 24000) < 240  # ...delivered as 1 s at 24 kHz


def test_tts_mid_stream_failure_speaks_the_whole_piece_again():
    cloud = ToneTTS("cloud", fail_kind=ErrorKind.CONNECTION, fail_after_chunks=10)
    floor = ToneTTS("floor")
    samples = speak(FallbackTTS(chain("tts", [cloud, floor])), "x" * 100)
    assert samples == 10 * 320 + 16000 and cloud.calls == 1


# --- observability --------------------------------------------------------------------------
def test_one_provider_call_event_per_provider_per_request_and_usage(store):
    call = store.create_call("test")
    call_id = call.id
    cloud = ScriptedResponder("cloud", "x", fail_kind=ErrorKind.SERVER)
    responder = FallbackResponder(chain("llm", [cloud, ScriptedResponder("local", "Fine thanks.")]))
    responder = responder.with_sink(StoreSink(store, lambda: call_id))
    reply_of(responder)
    events = [e.payload for e in store.events(call_id, "provider_call")]
    assert events[0]["provider"] == "cloud" and events[0]["ok"] is False and events[0]["kind"] == "server"
    assert events[0]["fallback_to"] == "local" and events[1]["provider"] == "local" and events[1]["ok"] is True
    assert len(events) == 2  # three failed attempts on the cloud are one event
    tts = FallbackTTS(chain("tts", [ToneTTS("floor")])).with_sink(StoreSink(store, lambda: call_id))
    speak(tts, "hello there")
    stt = FallbackSTT(chain("stt", [CountingSTT("floor")])).with_sink(StoreSink(store, lambda: call_id))
    feed(stt, 50)
    usage = {e.payload["stage"]: e.payload for e in store.events(call_id, "usage")}
    assert usage["tts"]["tts_chars"] == 11 and usage["stt"]["stt_seconds"] == pytest.approx(1.0)


def test_a_probe_cancelled_by_barge_in_is_released_and_a_lost_one_expires():
    clock = Clock()
    breaker = CircuitBreaker("llm:x", BreakerConfig(1, 5.0, 1), clock)
    breaker.record_failure(ErrorKind.SERVER)
    clock.now += 5.0
    assert breaker.allow() and not breaker.available()
    breaker.release()  # the request was cancelled: no outcome
    assert breaker.available() and breaker.allow()
    clock.now += 5.0  # that probe never reported back
    assert breaker.available() and breaker.allow() and breaker.state is BreakerState.HALF_OPEN


def test_cancelling_a_reply_mid_probe_frees_the_probe():
    slow = ScriptedResponder("cloud", "one two three four", word_delay_s=0.2)
    responder = FallbackResponder(chain("llm", [slow, ScriptedResponder("local", "Floor.")], open_s=0.0))
    breaker = responder.chain.breaker(0)
    breaker.trip("outage")  # open_s=0: half-open at once

    async def barge_in() -> None:
        stream = responder.stream(Conversation())
        assert (await stream.__anext__()).strip() == "one"
        await stream.aclose()

    asyncio.run(barge_in())
    assert breaker.state is BreakerState.HALF_OPEN and breaker.available()


def test_an_unused_half_open_provider_keeps_its_probe():
    first = ScriptedResponder("first", "First.")
    second = ScriptedResponder("second", "Second.")
    responder = FallbackResponder(chain("llm", [first, second, ScriptedResponder("floor", "Floor.")], open_s=0.0))
    responder.chain.breaker(1).trip("outage")
    assert reply_of(responder).strip() == "First."
    assert responder.chain.breaker(1).available() and second.calls == 0


def test_partial_never_raises_even_with_every_engine_down():
    engines = [CountingSTT(n, fail_on="partial", fail_kind=ErrorKind.AUTH) for n in ("a", "b")]
    stream = FallbackSTT(chain("stt", engines)).open()
    stream.accept(np.ones(320, np.int16))
    assert stream.partial() == "" and stream.partial() == ""  # a, then b, gave up
    with pytest.raises(STTError):
        stream.accept(np.ones(320, np.int16))
