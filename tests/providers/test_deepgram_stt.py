"""The Deepgram adapter, with the real deepgram-sdk, against a local /v1/listen server."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from core.providers.deepgram_stt import DeepgramError, DeepgramSTT, ReconnectBudget, build_deepgram_stt
from core.providers.vocabulary import MAX_KEYTERM_TOKENS, select_keyterms
from core.resilience.errors import ErrorKind, ProviderError
from core.speech.stt import STTError
from tests.conftest import ROOT, silence, tone
from tests.providers.deepgram_server import DeepgramServer, Faults

KEY = "dg-test-key"
FRAME = 320  # 20 ms at 16 kHz, what the session hands over
SPEECH = np.concatenate([tone(220, 1.2), silence(0.4), tone(260, 0.8), silence(0.2)])


def engine(server: DeepgramServer, **kwargs) -> DeepgramSTT:
    return DeepgramSTT(KEY, base_url=server.url, **kwargs)


def send(stream, audio: np.ndarray) -> None:
    for i in range(0, audio.size, FRAME):
        stream.accept(audio[i : i + FRAME])


def wait_for(predicate, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_streams_audio_and_returns_partials_then_the_joined_final():
    with DeepgramServer(KEY, transcript="i lost my debit card") as server:
        stt = engine(server, keyterms=["northwind", "debit card"])
        stream = stt.open()
        send(stream, SPEECH)
        # partials arrive while the caller speaks (interim results every 100 ms of audio)
        assert wait_for(lambda: stream.partial() == "i lost my debit card")
        transcript = stream.finish()
        assert server.wait_closed(1)
    conn = server.connections[0]
    assert transcript.text == "i lost my debit card"
    assert transcript.confidence == pytest.approx(0.9)
    assert transcript.audio_ms == pytest.approx(2600.0)
    # every sample sent reached the server, in order, in messages of at least 60 ms (but
    # the last; what arrived during the handshake goes in one)
    assert bytes(conn.audio) == SPEECH.astype("<i2").tobytes()
    assert all(n >= 1920 for n in conn.audio_messages[:-1]), conn.audio_messages
    assert conn.headers["authorization"] == f"Token {KEY}"
    assert conn.headers["user-agent"].startswith("deepgram-sdk/")  # the SDK's own headers
    # audio is not deflated: the socket does not offer permessage-deflate
    assert "sec-websocket-extensions" not in conn.headers
    assert conn.params["model"] == ["nova-3"]
    assert conn.params["encoding"] == ["linear16"]
    assert conn.params["sample_rate"] == ["16000"]
    assert conn.params["interim_results"] == ["true"]
    assert conn.params["keyterm"] == ["northwind", "debit card"]
    assert conn.controls == ["Finalize", "CloseStream"]
    assert conn.close_code == 1000


def test_final_joins_segments_finalised_by_endpointing():
    # 1.2 s of speech, 0.4 s of silence (> 300 ms endpointing: a speech_final segment),
    # then more speech finalised by Finalize: two final segments make one transcript.
    with DeepgramServer(
        KEY, transcript="my card was declined at the store today", words_per_second=2.5
    ) as server:
        stream = engine(server).open()
        send(stream, SPEECH)
        text = stream.finish().text
    # 2.0 s voiced x 2.5 words/s = 5 words: 3 in the endpointed segment, 2 from Finalize
    assert text == "my card was declined at"


def test_finish_skips_finalize_when_deepgram_already_finalised_the_speech():
    # 1 s of speech then 0.5 s of silence: Deepgram's endpointing (300 ms) sends a
    # speech_final result during the silence, so the transcript is complete at the end
    # of the utterance. A slow Finalize (1 s) shows it is not waited for.
    audio = np.concatenate([tone(220, 1.0), silence(0.5)])
    with DeepgramServer(KEY, transcript="block my card", words_per_second=5.0,
                        faults=Faults(final_delay_s=1.0)) as server:
        stream = engine(server).open()
        send(stream, audio)
        assert wait_for(lambda: stream.final_until_ms >= 1300.0)
        t = time.monotonic()
        transcript = stream.finish(speech_end_ms=1000.0)
        waited = time.monotonic() - t
        assert server.wait_closed(1)
    assert transcript.text == "block my card"
    assert transcript.audio_ms == pytest.approx(1500.0)
    assert waited < 0.5
    assert server.connections[0].controls == ["CloseStream"]


@pytest.mark.parametrize("speech_end_ms", [None, 1250.0])
def test_finish_finalizes_when_the_finals_do_not_reach_the_speech_end(speech_end_ms):
    # no speech end given, or speech ending after what the finals cover (here they reach
    # 1.3 s, not the 1.25 s + margin needed): the last words may still be in flight
    audio = np.concatenate([tone(220, 1.0), silence(0.5)])
    with DeepgramServer(KEY, transcript="block my card", words_per_second=5.0) as server:
        stream = engine(server).open()
        send(stream, audio)
        assert wait_for(lambda: stream.final_until_ms >= 1300.0)
        transcript = stream.finish(speech_end_ms=speech_end_ms)
        assert server.wait_closed(1)
    assert transcript.text == "block my card"
    assert server.connections[0].controls == ["Finalize", "CloseStream"]


def test_keyterms_are_boosted_as_keywords_on_older_models():
    with DeepgramServer(KEY) as server:
        stream = engine(server, model="nova-2", keyterms=["northwind"]).open()
        send(stream, SPEECH)
        stream.finish()
    assert server.connections[0].params["keywords"] == ["northwind"]
    assert "keyterm" not in server.connections[0].params


@pytest.mark.parametrize(
    ("faults", "key", "kind", "status", "retry_after", "handshakes"),
    [
        (Faults(), "wrong-key", ErrorKind.AUTH, 401, None, 1),
        (Faults(handshake_status=429, retry_after_s=7), KEY, ErrorKind.RATE_LIMIT, 429, 7.0, 1),
        (Faults(handshake_status=400), KEY, ErrorKind.BAD_REQUEST, 400, None, 1),
        # 5xx is worth one more try (MAX_RECONNECTS_PER_UTTERANCE = 1), then it is reported
        (Faults(handshake_status=503), KEY, ErrorKind.SERVER, 503, None, 2),
    ],
)
def test_refused_handshakes_become_provider_errors(faults, key, kind, status, retry_after, handshakes):
    with DeepgramServer(KEY, faults=faults) as server:
        stream = DeepgramSTT(key, base_url=server.url).open()
        send(stream, SPEECH[:16000])
        with pytest.raises(DeepgramError) as info:
            stream.finish()
    err = info.value
    assert isinstance(err, ProviderError) and isinstance(err, STTError)  # the session catches STTError
    assert (err.kind, err.status, err.retry_after_s) == (kind, status, retry_after)
    assert server.handshakes == handshakes


def test_handshake_that_never_completes_times_out():
    with DeepgramServer(KEY, faults=Faults(handshake_delay_s=3.0)) as server:
        stream = engine(server, connect_timeout_s=0.3, final_timeout_s=0.2).open()
        send(stream, SPEECH[:8000])
        t = time.monotonic()
        with pytest.raises(DeepgramError) as info:
            stream.finish()
        waited = time.monotonic() - t
    assert info.value.kind is ErrorKind.TIMEOUT
    assert "no connection" in str(info.value)
    assert waited < 0.6


def test_connection_refused_is_a_connection_error():
    with DeepgramServer(KEY) as server:
        url = server.url
    stream = DeepgramSTT(KEY, base_url=url).open()  # nothing listens there any more
    send(stream, SPEECH[:8000])
    with pytest.raises(DeepgramError) as info:
        stream.finish()
    assert info.value.kind is ErrorKind.CONNECTION
    assert stream.reconnects == 1


def test_a_dropped_stream_reconnects_once_and_replays_the_whole_utterance():
    faults = Faults(drop_after_bytes=20_000, drop_connections=1)
    with DeepgramServer(KEY, faults=faults, transcript="please freeze my card") as server:
        stream = engine(server).open()
        send(stream, SPEECH)
        transcript = stream.finish()
    assert transcript.text == "please freeze my card"
    assert stream.reconnects == 1
    assert len(server.connections) == 2
    first, second = server.connections
    assert len(first.audio) >= 20_000 and first.controls == []  # vanished before the end
    assert bytes(second.audio) == SPEECH.astype("<i2").tobytes()  # nothing lost, nothing doubled


def test_reconnects_are_bounded_per_utterance():
    faults = Faults(drop_after_bytes=8_000, drop_connections=100)
    with DeepgramServer(KEY, faults=faults) as server:
        stream = engine(server).open()
        send(stream, SPEECH)
        with pytest.raises(DeepgramError) as info:
            stream.finish()
        time.sleep(0.2)
    assert info.value.kind is ErrorKind.CONNECTION
    assert len(server.connections) == 2  # the first and one reconnect, never more


def test_reconnects_are_bounded_per_minute_across_utterances():
    faults = Faults(drop_after_bytes=8_000, drop_connections=100)
    with DeepgramServer(KEY, faults=faults) as server:
        stt = engine(server, budget=ReconnectBudget(per_minute=2))
        for _ in range(4):
            stream = stt.open()
            send(stream, SPEECH[:32000])
            with pytest.raises(DeepgramError):
                stream.finish()
        time.sleep(0.2)
    # 4 utterances x 1 connection + 2 reconnects in the minute; the other two gave up at once
    assert len(server.connections) == 6


@pytest.mark.parametrize("text", ["{not json", '{"type": "Results", "channel": {"alternatives": "?"}}'])
def test_malformed_message_is_reported_as_malformed(text):
    with DeepgramServer(KEY, faults=Faults(malformed_after_bytes=4_000, malformed_text=text)) as server:
        stream = engine(server).open()
        send(stream, SPEECH[:16000])
        with pytest.raises(DeepgramError) as info:
            stream.finish()
    assert info.value.kind is ErrorKind.MALFORMED
    assert len(server.connections) == 1  # not reconnected: the resilience layer decides


def test_policy_close_is_a_bad_request_and_is_not_retried():
    with DeepgramServer(KEY, faults=Faults(close_code=1008)) as server:
        stream = engine(server).open()
        send(stream, SPEECH[:16000])
        with pytest.raises(DeepgramError) as info:
            stream.finish()
    assert (info.value.kind, info.value.status) == (ErrorKind.BAD_REQUEST, 1008)
    assert len(server.connections) == 1


def test_no_final_in_time_is_a_timeout():
    with DeepgramServer(KEY, faults=Faults(ignore_finalize=True)) as server:
        stream = engine(server, final_timeout_s=0.3).open()
        send(stream, SPEECH[:16000])
        t = time.monotonic()
        with pytest.raises(DeepgramError) as info:
            stream.finish()
        assert 0.25 <= time.monotonic() - t < 0.6
    assert info.value.kind is ErrorKind.TIMEOUT


def test_cancel_closes_the_stream_without_finalising():
    with DeepgramServer(KEY) as server:
        stream = engine(server).open()
        send(stream, SPEECH[:16000])
        assert wait_for(lambda: len(server.connections) == 1 and len(server.connections[0].audio) == 32000)
        stream.cancel()
        assert server.wait_closed(1, timeout_s=2.0)
    assert server.connections[0].controls == ["CloseStream"]
    assert stream.partial() == stream.partial()  # still safe to read


def test_loopback_latency_of_setup_and_final(capsys):
    finals_ms: list[float] = []
    setup_ms: list[float] = []
    with DeepgramServer(KEY) as server:
        stt = engine(server)
        for _ in range(20):
            stream = stt.open()
            send(stream, SPEECH[:16000])
            assert wait_for(lambda s=stream: s.connect_ms is not None)
            t = time.perf_counter()
            stream.finish()
            finals_ms.append((time.perf_counter() - t) * 1000.0)
            setup_ms.append(stream.connect_ms)
    finals_ms.sort()
    setup_ms.sort()
    with capsys.disabled():
        print(
            f"\nDeepgram adapter over loopback (n=20): websocket set-up p50 {statistics.median(setup_ms):.1f} ms "
            f"max {setup_ms[-1]:.1f} ms; utterance end -> final (Finalize round trip) "
            f"p50 {statistics.median(finals_ms):.1f} ms, p95 {finals_ms[18]:.1f} ms"
        )
    # the adapter adds little of its own: a loopback round trip, not a polling interval
    assert statistics.median(finals_ms) < 100.0
    assert statistics.median(setup_ms) < 100.0


def test_session_persists_deepgram_finals(store):
    from core.pipeline.session import VoiceSession
    from core.pipeline.vad import EndpointConfig, Endpointer, EnergyFrameClassifier

    cfg = EndpointConfig(
        speech_start_ms=60,
        end_of_utterance_silence_ms=300,
        min_speech_ms=150,
        max_utterance_ms=8000,
        pre_roll_ms=150,
    )
    audio = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.7), tone(400, 0.8), silence(0.7)])
    with DeepgramServer(
        KEY, transcript=["my card is lost", "please block it"], words_per_second=10
    ) as server:
        session = VoiceSession(store, engine(server), lambda: Endpointer(cfg, EnergyFrameClassifier(-35)))
        call_id = session.start()
        for i in range(0, audio.size, FRAME):
            session.push_pcm(audio[i : i + FRAME])
            time.sleep(FRAME / 16000 / 4)  # 4x real time: the handshake overlaps speech
        assert session.wait_idle(10)
        session.stop()
    assert [s.text for s in store.segments(call_id)] == ["my card is lost", "please block it"]
    timings = session.snapshot().timings
    assert all(t.stt_finalize_ms < 500 for t in timings)


def test_keyterms_from_the_pack_are_domain_words_within_deepgrams_limit():
    from core.kb.pack import load_pack

    pack = load_pack(ROOT / "packs" / "bank")
    terms = select_keyterms([*pack.phrases, *(a.title for a in pack.articles)])
    assert 20 <= len(terms) <= 50
    assert {"northwind", "overdraft", "debit", "contactless"} <= set(terms)
    assert not {"please", "what", "hello"} & set(terms)
    assert len(terms) * 1.5 <= MAX_KEYTERM_TOKENS


def test_factory_reads_settings(monkeypatch, tmp_path: Path):
    from core.config import Settings

    with pytest.raises(DeepgramError) as info:
        build_deepgram_stt(Settings(deepgram_api_key=None, data_dir=tmp_path), [])
    assert info.value.kind is ErrorKind.AUTH
    with DeepgramServer(KEY) as server:
        settings = Settings(
            deepgram_api_key=KEY,
            deepgram_base_url=server.url,
            deepgram_model="nova-3",
            deepgram_endpointing_ms=250,
            data_dir=tmp_path,
        )
        stt = build_deepgram_stt(settings, ["Northwind overdraft fees", "Northwind card"])
        stream = stt.open()
        send(stream, SPEECH[:16000])
        stream.finish()
    params = server.connections[0].params
    assert params["endpointing"] == ["250"]
    assert params["keyterm"][0] == "northwind"


@pytest.mark.cloud
@pytest.mark.skipif(not os.environ.get("DEEPGRAM_API_KEY"), reason="needs DEEPGRAM_API_KEY")
def test_real_deepgram_transcribes_speech():
    from core.speech.tts.espeak import speak_16k

    stream = DeepgramSTT(os.environ["DEEPGRAM_API_KEY"], keyterms=["Northwind"]).open()
    send(stream, np.concatenate([speak_16k("I lost my debit card yesterday"), silence(0.3)]))
    text = stream.finish().text.lower()
    assert "debit card" in text


def test_services_build_the_cloud_speech_engines(tmp_path: Path):
    from core.config import Settings
    from core.kb.pack import load_pack
    from core.providers.elevenlabs_tts import ElevenLabsTTS
    from core.providers.speech import build_stt, build_tts

    settings = Settings(
        stt_provider="deepgram",
        tts_provider="elevenlabs",
        deepgram_api_key=KEY,
        elevenlabs_api_key="xi-key",
        data_dir=tmp_path,
        cache_dir=ROOT / "data" / "test-cache" / "cache",
    )
    # each is the head of a fallback chain that ends at the offline engine
    stt = build_stt(settings, load_pack(ROOT / "packs" / "bank"))
    primary, *rest = stt.chain.engines
    assert isinstance(primary, DeepgramSTT) and "northwind" in primary.keyterms
    assert [type(e).__name__ for e in rest] == ["NeuralEngine", "PocketsphinxEngine"]
    tts_primary, *tts_rest = build_tts(settings).chain.engines
    assert isinstance(tts_primary, ElevenLabsTTS) and [type(e).__name__ for e in tts_rest] == ["PiperTTS", "EspeakTTS"]
