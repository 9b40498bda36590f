"""The real openai SDK against a local OpenAI-protocol server, behind the fallback chains.

Figures printed here (``-s``) are the ones reported: how long a turn takes to move to
the offline responder or recogniser once the cloud fails, and how many utterances were
lost on the way (must be 0).
"""

from __future__ import annotations

import asyncio
import random
import time

import numpy as np
import pytest

from core.conversation.embedded import EmbeddedResponder
from core.conversation.reply import Conversation
from core.providers.llm import LLMAnalyst, LLMResponder
from core.providers.openai_llm import OpenAIBackend
from core.providers.whisper_stt import WhisperSTT
from core.resilience import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    Chain,
    FallbackResponder,
    FallbackSTT,
    RetryPolicy,
    StoreSink,
)
from core.resilience.errors import ErrorKind, ProviderError
from tests.providers.fakes import CountingSTT
from tests.providers.servers import Fault, OpenAIServer

QUESTIONS = [
    "how do I freeze my card",
    "is there a fee for that",
    "my card was stolen what do I do",
    "how long does a new card take to arrive",
    "can I send money abroad",
    "what are your branch opening hours",
]
POLICY = RetryPolicy(max_attempts=3, base_delay_s=0.05, max_delay_s=0.2, rng=random.Random(3))
LLM_BUDGET_S = 1.0


@pytest.fixture
def server():
    with OpenAIServer() as s:
        yield s


def responder_chain(server, pack_kb, registry=None, budget_s=LLM_BUDGET_S, threshold=3, open_s=30.0):
    pack, kb = pack_kb
    backend = OpenAIBackend("sk-test", "gpt-4o-mini", server.base_url, timeout_s=budget_s * 2)
    registry = registry or BreakerRegistry(BreakerConfig(threshold, open_s, 1))
    engines = [LLMResponder(backend, pack, kb), EmbeddedResponder(pack, kb)]
    return FallbackResponder(Chain("llm", engines, registry, POLICY, budget_s))


async def turn(responder, conversation: Conversation, text: str) -> tuple[str, float]:
    """The reply and the time to its first delta."""
    conversation.add("caller", text)
    started = time.monotonic()
    first = None
    parts = []
    async for delta in responder.stream(conversation):
        first = first or time.monotonic()
        parts.append(delta)
    reply = "".join(parts).strip()
    conversation.add("agent", reply)
    return reply, ((first or time.monotonic()) - started) * 1000.0


def run_call(responder, fault_at: int, fault: Fault, server) -> list[tuple[str, float]]:
    async def call() -> list[tuple[str, float]]:
        conversation = Conversation()
        out = []
        for i, question in enumerate(QUESTIONS):
            if i == fault_at:
                server.fail_always(fault)
            out.append(await turn(responder, conversation, question))
        return out

    return asyncio.run(call())


@pytest.mark.parametrize(
    "fault",
    [Fault("status", 500), Fault("status", 429, retry_after_s=0.1), Fault("delay", delay_s=3.0),
     Fault("malformed"), Fault("drop", after_chunks=0)],
    ids=["500", "429-retry-after", "timeout", "malformed", "dropped"],
)
def test_cloud_outage_mid_call_moves_the_rest_of_the_call_to_the_offline_responder(server, pack_kb, fault):
    responder = responder_chain(server, pack_kb)
    turns = run_call(responder, 2, fault, server)
    replies = [r for r, _ in turns]
    assert all(replies), "every caller turn got a reply"
    assert replies[:2] == [server.reply] * 2  # served by the cloud before the fault
    assert all(r != server.reply for r in replies[2:])
    chat_requests = server.count("/chat/completions")
    # Turn 3 is tried three times, except when the first try used the whole budget
    # (timeout) or broke off mid-reply (malformed chunk after the first word: retrying
    # would repeat words). Then the circuit is open: later turns never reach the cloud.
    assert chat_requests == 2 + (1 if fault.kind in ("delay", "malformed") else 3)
    assert responder.status().breakers[0].state is BreakerState.OPEN and responder.degraded
    switch_ms = turns[2][1]
    later_ms = max(ms for _, ms in turns[3:])
    print(f"\n[{fault.kind}{fault.status if fault.kind == 'status' else ''}] fallback switch "
          f"{switch_ms:.0f} ms (fault → first token of the faulted turn), next turns ≤ {later_ms:.0f} ms, "
          f"turns answered {len(replies)}/{len(QUESTIONS)}")
    assert switch_ms < LLM_BUDGET_S * 1000 + 500 and later_ms < 300


def test_retry_after_is_honoured_and_the_cloud_keeps_serving(server, pack_kb):
    server.fail_next(Fault("status", 429, retry_after_s=0.3))
    responder = responder_chain(server, pack_kb)
    reply, first_ms = asyncio.run(turn(responder, Conversation(), QUESTIONS[0]))
    assert reply == server.reply and first_ms >= 300 and server.count("/chat/completions") == 2
    assert responder.status().breakers[0].state is BreakerState.CLOSED and not responder.degraded


def test_a_stream_dropped_mid_reply_is_finished_by_the_fallback_without_repeats(server, pack_kb):
    server.fail_next(Fault("drop", after_chunks=4))
    reply, _ = asyncio.run(turn(responder_chain(server, pack_kb), Conversation(), QUESTIONS[0]))
    assert reply.startswith("You can freeze your") and len(reply) > len("You can freeze your")
    assert reply.count("You can freeze your") == 1 and server.count("/chat/completions") == 1


def test_half_open_probe_brings_the_cloud_back(server, pack_kb):
    responder = responder_chain(server, pack_kb, open_s=0.3)
    server.fail_always(Fault("status", 503))
    reply, _ = asyncio.run(turn(responder, Conversation(), QUESTIONS[0]))
    assert reply != server.reply and responder.degraded
    server.heal()
    time.sleep(0.35)
    reply, _ = asyncio.run(turn(responder, Conversation(), QUESTIONS[0]))
    assert reply == server.reply and not responder.degraded


def test_the_prompt_carries_persona_passages_and_history(server, pack_kb):
    conversation = Conversation()
    conversation.add("agent", "Hi, this is Nora from Northwind Bank.")
    asyncio.run(turn(responder_chain(server, pack_kb), conversation, "how do I freeze my card"))
    captured = server.payloads[-1]
    system = captured["messages"][0]["content"]
    assert "Nora" in system and "ONLY from the knowledge-base passages" in system and "[1]" in system
    assert "freeze" in system.lower()  # the retrieved passage is about freezing cards
    assert [m["role"] for m in captured["messages"][1:]] == ["assistant", "user"]
    assert captured["stream"] is True and captured["stream_options"] == {"include_usage": True}


def test_usage_and_provider_calls_are_recorded_per_request(server, pack_kb, store):
    call_id = store.create_call("test").id
    responder = responder_chain(server, pack_kb).with_sink(StoreSink(store, lambda: call_id))
    asyncio.run(turn(responder, Conversation(), QUESTIONS[0]))
    call = store.events(call_id, "provider_call")[0].payload
    usage = store.events(call_id, "usage")[0].payload
    assert call["provider"] == "openai" and call["ok"] is True and call["stage"] == "llm" and call["ms"] > 0
    assert usage["llm_input_tokens"] == 321 and usage["llm_output_tokens"] == len(server.reply.split())


def test_structured_intent_disposition_and_summary(server, pack_kb):
    from core.copilot.disposition import Line

    pack, _ = pack_kb
    analyst = LLMAnalyst(OpenAIBackend("sk-test", "gpt-4o-mini", server.base_url), pack)
    server.json_answers.extend([
        {"ranked": [{"label": "card_freeze", "confidence": 0.91}, {"label": "made_up", "confidence": 0.05}]},
        {"label": "resolved", "sub_label": "card_status_changed", "confidence": 0.8, "supporting_lines": [1, 9]},
        {"caller_lines": [0], "agent_lines": [1]},
    ])
    intent = analyst.predict("can you freeze my card")
    assert intent.label == "card_freeze" and intent.confidence == pytest.approx(0.91) and not intent.out_of_scope
    assert [a for a, _ in intent.alternatives] == ["card_freeze"]  # unknown labels dropped
    lines = [Line(0, "caller", "please freeze my card"), Line(1, "agent", "Done, your card is frozen.")]
    proposal = analyst.propose(lines)
    assert (proposal.label, proposal.sub_label, proposal.method) == ("resolved", "card_status_changed", "llm")
    assert proposal.supporting_lines == [(1, "Done, your card is frozen.", 0.8)]
    summary = analyst.summarise(lines, proposal)
    assert summary.caller == [(0, "please freeze my card")] and summary.agent == [(1, "Done, your card is frozen.")]
    assert summary.disposition == "resolved / card_status_changed"
    server.fail_next(Fault("malformed"))
    with pytest.raises(ProviderError) as info:
        analyst.predict("x")
    assert info.value.kind is ErrorKind.MALFORMED


def test_intent_schema_is_strict_json_schema_with_the_pack_labels(server, pack_kb):
    server.json_default = {"ranked": []}
    pack, _ = pack_kb
    assert LLMAnalyst(OpenAIBackend("sk-test", "m", server.base_url), pack).predict("hello").out_of_scope
    fmt = server.payloads[-1]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    enum = fmt["json_schema"]["schema"]["properties"]["ranked"]["items"]["properties"]["label"]["enum"]
    assert set(enum) == {i["id"] for i in pack.intents} | {"out_of_scope"}


# --- Whisper --------------------------------------------------------------------------------
UTTERANCES = 8


def test_whisper_outage_loses_no_utterance(server):
    registry = BreakerRegistry(BreakerConfig(3, 30.0, 1))
    whisper = WhisperSTT("sk-test", base_url=server.base_url, timeout_s=1.0)
    floor = CountingSTT("pocketsphinx")
    engine = FallbackSTT(Chain("stt", [whisper, floor], registry, POLICY, 1.5))
    rng = np.random.default_rng(0)
    lost, switch_ms = 0, 0.0
    for i in range(UTTERANCES):
        if i == 3:
            server.fail_always(Fault("status", 500))
        stream = engine.open()
        sizes = rng.integers(8000, 24000)  # 0.5-1.5 s of audio
        audio = (rng.standard_normal(int(sizes)) * 1000).astype(np.int16)
        for start in range(0, audio.size, 320):
            stream.accept(audio[start : start + 320])
        started = time.monotonic()
        text = stream.finish().text
        if i == 3:
            switch_ms = (time.monotonic() - started) * 1000.0
        lost += text != f"{audio.size} samples"
    print(f"\n[whisper 500] utterances {UTTERANCES}, lost {lost}, fallback switch {switch_ms:.0f} ms "
          f"(finish → offline transcript), whisper requests {server.count('/audio/transcriptions')}")
    assert lost == 0
    assert server.count("/audio/transcriptions") == 3 + 3 and floor.finished == UTTERANCES - 3
    assert engine.degraded and engine.status().active == "pocketsphinx"


def test_whisper_translates_errors_and_is_an_stt_error(server):
    from core.speech.stt import STTError

    whisper = WhisperSTT("sk-test", base_url=server.base_url, timeout_s=0.5)
    for fault, kind in [(Fault("status", 401), ErrorKind.AUTH), (Fault("status", 429, retry_after_s=2), ErrorKind.RATE_LIMIT),
                        (Fault("delay", delay_s=2.0), ErrorKind.TIMEOUT), (Fault("malformed"), ErrorKind.MALFORMED)]:
        server.fail_next(fault)
        stream = whisper.open()
        stream.accept(np.zeros(1600, np.int16))
        with pytest.raises(STTError) as info:
            stream.finish()
        assert isinstance(info.value, ProviderError) and info.value.kind is kind
        if kind is ErrorKind.RATE_LIMIT:
            assert info.value.retry_after_s == 2.0


def test_analysis_falls_back_to_the_embedded_models_and_shares_the_reply_circuit(server, pack_kb):
    from core.copilot.disposition import Line
    from core.copilot.intent import IntentPrediction
    from core.resilience.analysis import EmbeddedAnalyst, FallbackAnalyst

    class OfflineIntent:
        def predict(self, text: str) -> IntentPrediction:
            return IntentPrediction("card_freeze", 0.6, (("card_freeze", 0.6),), False)

    pack, _ = pack_kb
    registry = BreakerRegistry(BreakerConfig(3, 30.0, 1))
    analyst = FallbackAnalyst(Chain("llm", [LLMAnalyst(OpenAIBackend("sk-test", "m", server.base_url), pack),
                                            EmbeddedAnalyst(OfflineIntent, pack.dispositions)], registry, POLICY, 1.0))
    server.json_default = {"ranked": [{"label": "card_lost_stolen", "confidence": 0.9}]}
    assert analyst.predict("my card is gone").label == "card_lost_stolen"
    server.fail_always(Fault("status", 500))
    assert analyst.predict("freeze it").confidence == pytest.approx(0.6)  # the offline model answered
    requests = server.count("/chat/completions")
    summary = analyst.summarise([Line(0, "caller", "I lost my card yesterday at the mall"),
                                 Line(1, "agent", "I have blocked it and ordered a new card.")])
    assert summary.caller and server.count("/chat/completions") == requests  # circuit open: offline summary
    # The reply chain on the same registry sees the outage too: no request is made.
    responder = responder_chain(server, pack_kb, registry=registry)
    assert asyncio.run(turn(responder, Conversation(), QUESTIONS[0]))[0] != server.reply
    assert server.count("/chat/completions") == requests
