"""Settings choose the chains: cloud first, offline last, events per call, health probes."""

from __future__ import annotations

import pytest

from core.config import Settings
from core.providers import registry
from core.resilience import FallbackResponder
from core.resilience.errors import ProviderError
from core.services import build_services
from tests.fakes import FakeSTT
from tests.providers.servers import Fault, OpenAIServer


@pytest.fixture
def server():
    with OpenAIServer() as s:
        yield s


def settings(tmp_path, **values) -> Settings:
    return Settings(data_dir=tmp_path, **values)


def test_openai_llm_builds_a_chain_ending_at_the_embedded_responder(tmp_path, server):
    services = build_services(settings(tmp_path, llm_provider="openai", openai_api_key="sk-test",
                                       openai_base_url=server.base_url), stt=FakeSTT())
    responder = services.new_responder()
    assert isinstance(responder, FallbackResponder) and responder.chain.names == ("openai", "embedded")
    stages = {s.stage: s for s in services.provider_status()}
    assert stages["llm"].providers == ("openai", "embedded") and not stages["llm"].degraded
    assert "models" in registry.probe(services.settings, "openai")
    server.fail_next(Fault("status", 401))
    with pytest.raises(ProviderError):
        registry.probe(services.settings, "openai")
    services.store.close()


def test_gemini_then_openai_fallbacks_in_order(tmp_path):
    s = settings(tmp_path, llm_provider="gemini", gemini_api_key="g", openai_api_key="sk", llm_fallbacks="openai, nope")
    assert registry.chain_names(s, "llm") == ["gemini", "openai"]  # unknown provider left out


def test_embedded_default_is_unwrapped_and_unbuilt_adapters_still_say_so(tmp_path):
    services = build_services(settings(tmp_path), stt=FakeSTT())
    assert type(services.new_responder()).__name__ == "EmbeddedResponder"
    # the embedded voice is a chain (Piper, then espeak-ng); the fake recogniser reports none
    assert [(s.stage, list(s.providers)) for s in services.provider_status()] == [
        ("tts", ["piper", "espeak"])
    ]
    services.store.close()
    if not registry.supported("tts", "elevenlabs"):
        with pytest.raises(NotImplementedError, match="not available yet"):
            build_services(settings(tmp_path, tts_provider="elevenlabs", elevenlabs_api_key="k"), stt=FakeSTT())


def test_copilot_intent_comes_from_the_chosen_llm(tmp_path, server):
    from core.resilience.analysis import FallbackAnalyst

    server.json_default = {"ranked": [{"label": "card_freeze", "confidence": 0.88}]}
    services = build_services(settings(tmp_path, llm_provider="openai", openai_api_key="sk-test",
                                       openai_base_url=server.base_url), stt=FakeSTT())
    call = services.store.create_call("test")
    services.store.add_segment(call.id, "caller", "can you freeze my card please", 0, 1500)
    copilot = services.new_copilot(call.id)
    assert isinstance(copilot._intent, FallbackAnalyst)
    view = copilot.refresh()
    assert view is not None and view.intent is not None and view.intent.label == "card_freeze"
    events = [e.payload for e in services.store.events(call.id, "provider_call")]
    assert events and events[-1]["provider"] == "openai" and events[-1]["ok"] is True
    services.store.close()


def test_wrap_up_comes_from_the_chosen_llm_and_falls_back_to_the_embedded_models(tmp_path, server):
    # Breakers are process-wide per breaker settings; this test opens openai's, so it
    # uses settings of its own rather than leave an open breaker to later tests.
    services = build_services(settings(tmp_path, llm_provider="openai", openai_api_key="sk-test",
                                       openai_base_url=server.base_url, breaker_open_s=29.0), stt=FakeSTT())
    store = services.store
    first, second = store.create_call("test"), store.create_call("test")
    for call in (first, second):
        store.add_segment(call.id, "caller", "please freeze my card", 0, 1500)
        store.add_segment(call.id, "agent", "Done, your card is frozen.", 1600, 3000)
    server.json_answers.extend([
        {"label": "resolved", "sub_label": "card_status_changed", "confidence": 0.8, "supporting_lines": [1]},
        {"caller_lines": [0], "agent_lines": [1]},
    ])
    wrap = services.wrap_up(first.id)
    assert (wrap.disposition, wrap.sub_disposition, wrap.method) == ("resolved", "card_status_changed", "llm")
    assert "please freeze my card" in wrap.summary and wrap.support[0].text == "Done, your card is frozen."
    assert services.wrap_up(first.id) == wrap  # recorded: asked once
    calls = [e.payload for e in store.events(first.id, "provider_call")]
    assert [c["provider"] for c in calls] == ["openai", "openai"] and all(c["ok"] for c in calls)

    server.fail_always(Fault("status", 500))
    fallback = services.wrap_up(second.id)
    assert fallback.method in ("embedding", "lexical") and fallback.disposition  # the embedded models answered
    assert any(not e.payload["ok"] for e in store.events(second.id, "provider_call"))
    store.close()
