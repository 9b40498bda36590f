"""A whole spoken call through the session and the agent while the cloud fails mid-call.

Caller audio → VoiceSession (endpointing) → FallbackSTT (Whisper over the real SDK, then
the offline floor) → VoiceAgent → FallbackResponder (OpenAI over the real SDK, then the
embedded responder) → TTS. Both cloud stages fail from the third utterance on; the
saved transcript must still hold every caller utterance and an agent reply to each.
"""

from __future__ import annotations

import random

import numpy as np

from core.config import PROJECT_ROOT
from core.conversation.embedded import EmbeddedResponder
from core.conversation.reply import Conversation
from core.conversation.voice_agent import AgentConfig, VoiceAgent
from core.kb.lexical import LexicalIndex
from core.kb.pack import load_pack
from core.pipeline.session import VoiceSession
from core.pipeline.vad import EndpointConfig, Endpointer, EnergyFrameClassifier
from core.providers.llm import LLMResponder
from core.providers.openai_llm import OpenAIBackend
from core.providers.whisper_stt import WhisperSTT
from core.resilience import BreakerConfig, BreakerRegistry, Chain, FallbackResponder, FallbackSTT, RetryPolicy
from core.resilience.observe import with_call_events
from tests.conftest import silence, tone
from tests.fakes import FakeAudioOut, FakeTTS
from tests.providers.fakes import CountingSTT
from tests.providers.servers import Fault, OpenAIServer
from tests.unit.test_voice_agent import wait_for

UTTERANCES = 6
FAULT_FROM = 2  # 0-based: the third utterance
ENDPOINT = EndpointConfig(speech_start_ms=60, end_of_utterance_silence_ms=300, min_speech_ms=150, pre_roll_ms=150)
POLICY = RetryPolicy(max_attempts=3, base_delay_s=0.05, max_delay_s=0.2, rng=random.Random(11))


def test_cloud_outage_mid_call_loses_no_utterance_and_every_turn_is_answered(store):
    pack = load_pack(PROJECT_ROOT / "packs" / "bank")
    kb = LexicalIndex.from_pack(pack)
    registry = BreakerRegistry(BreakerConfig(3, 30.0, 1))
    with OpenAIServer() as server:
        stt = FallbackSTT(Chain("stt", [WhisperSTT("sk-test", base_url=server.base_url, timeout_s=1.0),
                                        CountingSTT("pocketsphinx")], registry, POLICY, 1.5))
        responder = FallbackResponder(Chain("llm", [
            LLMResponder(OpenAIBackend("sk-test", "gpt-4o-mini", server.base_url, timeout_s=2.0), pack, kb),
            EmbeddedResponder(pack, kb)], registry, POLICY, 1.0))
        holder: dict[str, VoiceSession] = {}

        def call_id() -> str | None:
            return holder["session"].call_id

        session = VoiceSession(store, with_call_events(stt, store, call_id),
                               lambda: Endpointer(ENDPOINT, EnergyFrameClassifier(-35)), partial_interval_ms=60)
        holder["session"] = session
        agent = VoiceAgent(session, with_call_events(responder, store, call_id), FakeTTS(0.02), FakeAudioOut(), store,
                           Conversation, AgentConfig(greet=False, output_rate_hz=16000, paced_playback=False))
        session.start()
        agent.start()
        fed_samples = []
        for i in range(UTTERANCES):
            if i == FAULT_FROM:
                server.fail_always(Fault("status", 500))
            speech = tone(300 + 40 * i, 0.5 + 0.1 * i)
            fed_samples.append(speech.size)
            audio = np.concatenate([speech, silence(0.6)])
            for start in range(0, audio.size, 320):
                session.push_pcm(audio[start : start + 320])
            session.wait_idle(10)
            assert wait_for(lambda n=i + 1: len(agent.turns) >= n), f"turn {i + 1} was not answered"
        session.stop()
        call = session.call_id or ""
        segments = store.segments(call)
        caller = [s for s in segments if s.speaker == "caller"]
        replies = [s for s in segments if s.speaker == "agent"]
        cloud_turns = sum(t.agent_text.strip() == server.reply for t in agent.turns)
        events = [e.payload for e in store.events(call, "provider_call")]
    lost = UTTERANCES - len(caller)
    print(f"\n[call] utterances {UTTERANCES}, transcribed {len(caller)}, lost {lost}, agent replies "
          f"{len(replies)}, answered by the cloud {cloud_turns}, provider_call events {len(events)}")
    assert lost == 0 and len(replies) == UTTERANCES
    assert all(t.agent_text for t in agent.turns) and cloud_turns == FAULT_FROM
    # Every utterance's whole audio reached a recogniser (pre-roll and trailing silence
    # included), whichever served it.
    assert all(int(s.text.split()[0]) >= n for s, n in zip(caller, fed_samples, strict=True))
    failed = [e for e in events if not e["ok"]]
    assert {(e["stage"], e["provider"], e["fallback_to"]) for e in failed} == {
        ("stt", "whisper", "pocketsphinx"), ("llm", "openai", "embedded")}
    assert len(failed) == 2  # one event per lost request, then the circuits kept the cloud out
