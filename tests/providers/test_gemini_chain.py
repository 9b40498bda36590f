"""The real google-genai SDK against a local Gemini-protocol server, behind the fallback chain."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from core.conversation.embedded import EmbeddedResponder
from core.conversation.reply import Conversation
from core.copilot.disposition import Line
from core.providers.gemini_llm import GeminiBackend, gemini_contents
from core.providers.llm import LLMAnalyst, LLMResponder
from core.resilience import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    Chain,
    FallbackResponder,
    RetryPolicy,
)
from core.resilience.errors import ErrorKind, ProviderError
from tests.providers.servers import Fault, GeminiServer

POLICY = RetryPolicy(max_attempts=3, base_delay_s=0.05, max_delay_s=0.2, rng=random.Random(5))


@pytest.fixture
def server():
    with GeminiServer() as s:
        yield s


def backend(server, timeout_s=2.0):
    return GeminiBackend("g-test", "gemini-2.5-flash", server.base_url, timeout_s=timeout_s)


def reply(responder, text="how do I freeze my card") -> tuple[str, float]:
    async def run() -> tuple[str, float]:
        conversation = Conversation()
        conversation.add("agent", "Hi, this is Nora.")
        conversation.add("caller", text)
        started, first, parts = time.monotonic(), None, []
        async for delta in responder.stream(conversation):
            first = first or time.monotonic()
            parts.append(delta)
        return "".join(parts).strip(), ((first or time.monotonic()) - started) * 1000.0

    return asyncio.run(run())


@pytest.mark.parametrize("fault", [Fault("status", 500), Fault("status", 429, retry_after_s=0.1),
                                   Fault("delay", delay_s=3.0), Fault("drop", after_chunks=0)],
                         ids=["500", "429", "timeout", "dropped"])
def test_gemini_outage_falls_back_then_skips_the_open_circuit(server, pack_kb, fault):
    pack, kb = pack_kb
    chain = Chain("llm", [LLMResponder(backend(server), pack, kb), EmbeddedResponder(pack, kb)],
                  BreakerRegistry(BreakerConfig(3, 30.0, 1)), POLICY, 1.5)
    responder = FallbackResponder(chain)
    assert reply(responder)[0] == server.reply
    server.fail_always(fault)
    text, switch_ms = reply(responder)
    assert text and text != server.reply
    before = server.count(":streamGenerateContent")
    assert reply(responder)[0] and server.count(":streamGenerateContent") == before
    assert responder.status().breakers[0].state is BreakerState.OPEN
    print(f"\n[gemini {fault.kind}{fault.status if fault.kind == 'status' else ''}] fallback switch {switch_ms:.0f} ms")
    assert switch_ms < 2000


def test_gemini_errors_keep_kind_and_retry_after(server):
    async def run() -> None:
        async for _ in backend(server).stream_text("s", [{"role": "user", "content": "hi"}]):
            pass

    for fault, kind in [(Fault("status", 401), ErrorKind.AUTH), (Fault("status", 429, retry_after_s=1.5), ErrorKind.RATE_LIMIT),
                        (Fault("status", 429, body="Quota exceeded for metric"), ErrorKind.QUOTA),
                        (Fault("status", 503), ErrorKind.SERVER), (Fault("malformed"), ErrorKind.MALFORMED),
                        (Fault("drop", after_chunks=2), ErrorKind.CONNECTION)]:
        server.fail_next(fault)
        with pytest.raises(ProviderError) as info:
            asyncio.run(run())
        assert info.value.kind is kind, fault
        if kind is ErrorKind.RATE_LIMIT:
            assert info.value.retry_after_s == 1.5


def test_gemini_json_analysis_uses_the_pack_labels(server, pack_kb):
    pack, _ = pack_kb
    server.json_answers.extend([
        {"ranked": [{"label": "card_lost_stolen", "confidence": 0.7}]},
        {"label": "resolved", "sub_label": "card_replaced", "confidence": 0.9, "supporting_lines": [1]},
    ])
    analyst = LLMAnalyst(backend(server), pack)
    assert analyst.predict("my card was stolen").label == "card_lost_stolen"
    lines = [Line(0, "caller", "my card was stolen"), Line(1, "agent", "I've blocked it and ordered a new one.")]
    proposal = analyst.propose(lines)
    assert (proposal.label, proposal.sub_label) == ("resolved", "card_replaced")
    server.json_default = {"label": "not_a_label", "sub_label": "", "confidence": 1, "supporting_lines": []}
    with pytest.raises(ProviderError) as info:
        analyst.propose(lines)
    assert info.value.kind is ErrorKind.MALFORMED


def test_gemini_contents_start_with_the_user_and_alternate():
    contents = gemini_contents([{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "a"},
                                {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}])
    assert [c["role"] for c in contents] == ["user", "model"] and contents[0]["parts"][0]["text"] == "a\nb"


def test_probe_lists_models(server):
    assert "1 models" in backend(server).probe(2.0)
