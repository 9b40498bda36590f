"""The voice agent on Deepgram + ElevenLabs adapters, both against local protocol servers."""

from __future__ import annotations

import time

import numpy as np

from core.conversation.voice_agent import AgentConfig, VoiceAgent
from core.pipeline.session import VoiceSession
from core.pipeline.vad import EndpointConfig, Endpointer, EnergyFrameClassifier
from core.providers.deepgram_stt import DeepgramSTT
from core.providers.elevenlabs_tts import ElevenLabsTTS
from tests.conftest import silence, tone
from tests.fakes import FakeAudioOut, FakeConversation, FakeResponder
from tests.providers.deepgram_server import DeepgramServer
from tests.providers.elevenlabs_server import ElevenLabsServer

CFG = EndpointConfig(speech_start_ms=60, end_of_utterance_silence_ms=300, min_speech_ms=150, pre_roll_ms=150)
FRAME = 320
# 1,001 bytes (31 ms of audio) every 30 ms: ElevenLabs streaming at about real time
REAL_TIME_CHUNK_INTERVAL_S = 0.03


def play(session: VoiceSession, audio: np.ndarray) -> None:
    for i in range(0, audio.size, FRAME):
        session.push_pcm(audio[i : i + FRAME])
        time.sleep(FRAME / 16000)
    session.wait_idle(10)


def wait_for(cond, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_reply_is_spoken_and_barge_in_stops_elevenlabs(store, capsys):
    long_reply = " ".join(["This is a long answer nobody stops easily."] * 6)
    responder = FakeResponder(replies=[long_reply, ""])
    transcripts = ["my card is lost", "wait stop please"]
    with (
        DeepgramServer("dg", transcript=transcripts, words_per_second=10) as dg,
        ElevenLabsServer("xi", chunk_interval_s=REAL_TIME_CHUNK_INTERVAL_S) as xi,
    ):
        session = VoiceSession(
            store,
            DeepgramSTT("dg", base_url=dg.url),
            lambda: Endpointer(CFG, EnergyFrameClassifier(-35)),
            partial_interval_ms=60,
        )
        out = FakeAudioOut()
        agent = VoiceAgent(
            session,
            responder,
            ElevenLabsTTS("xi", base_url=xi.url),
            out,
            store,
            FakeConversation,
            AgentConfig(greet=False, output_rate_hz=16000),
        )
        session.start()
        agent.start()
        play(session, np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6)]))
        assert wait_for(lambda: agent.speaking and out.pushed_samples > 0, 5)
        play(session, np.concatenate([tone(500, 0.8), silence(0.6)]))  # the caller talks over it
        assert wait_for(lambda: any(e[0] == "clear" for e in out.log), 5)
        assert xi.wait_finished(1, timeout_s=3.0)
        time.sleep(0.3)
        session.stop()
    first = xi.requests[0]
    assert first.body["text"] == "This is a long answer nobody stops easily."
    assert first.client_left and first.bytes_sent < first.total_bytes  # the stream was cut
    assert len(xi.requests) == 1  # no later sentence was requested
    turn = store.turns(session.call_id)[0]
    assert turn.interrupted
    segs = store.segments(session.call_id)
    assert [s.text for s in segs if s.speaker == "caller"] == transcripts
    with capsys.disabled():
        print(
            f"\nDeepgram + ElevenLabs adapters over loopback: voice-to-voice {turn.voice_to_voice_ms:.0f} ms "
            f"(300 ms of it end-of-utterance silence), TTS first audio {turn.tts_first_audio_ms:.0f} ms"
        )


def test_the_reply_starts_on_deepgrams_settled_words_and_no_finalize_is_needed(store):
    # Deepgram's endpointing (300 ms) finalises the words inside the session's 600 ms
    # end-of-utterance silence: the agent starts its reply then, takes it over when the
    # turn ends, and the utterance closes without a Finalize round trip.
    from core.pipeline.events import FinalEvent, SettledEvent

    cfg = EndpointConfig(speech_start_ms=60, end_of_utterance_silence_ms=600, min_speech_ms=150, pre_roll_ms=150)
    responder = FakeResponder("Sure, I can block it.", delay_s=0.01)
    seen: list[tuple[str, float]] = []
    with (
        DeepgramServer("dg", transcript="my card is lost", words_per_second=10) as dg,
        ElevenLabsServer("xi") as xi,
    ):
        session = VoiceSession(store, DeepgramSTT("dg", base_url=dg.url),
                               lambda: Endpointer(cfg, EnergyFrameClassifier(-35)), partial_interval_ms=60)
        session.add_listener(lambda e: seen.append((type(e).__name__, time.monotonic()))
                             if isinstance(e, (SettledEvent, FinalEvent)) else None)
        out = FakeAudioOut()
        agent = VoiceAgent(session, responder, ElevenLabsTTS("xi", base_url=xi.url), out, store,
                           FakeConversation, AgentConfig(greet=False, output_rate_hz=16000))
        session.start()
        agent.start()
        play(session, np.concatenate([silence(0.3), tone(300, 0.8), silence(0.9)]))
        assert wait_for(lambda: len(agent.turns) == 1, 5)
        session.stop()
    assert [name for name, _ in seen] == ["SettledEvent", "FinalEvent"]
    assert (responder.calls, agent.preemptive_used, agent.preemptive_dropped) == (1, 1, 0)
    assert dg.connections[0].controls == ["CloseStream"]
    first_push = next(t for kind, t, _ in out.log if kind == "push")
    assert first_push >= seen[1][1]  # heard only once the turn was decided
    segs = store.segments(session.call_id)
    assert [(s.speaker, s.text) for s in segs] == [("caller", "my card is lost"), ("agent", "Sure, I can block it.")]
