"""The ElevenLabs adapter, with the real elevenlabs SDK, against a local streaming server."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from core.providers.elevenlabs_tts import ElevenLabsError, ElevenLabsTTS, build_elevenlabs_tts
from core.resilience.errors import ErrorKind, ProviderError
from core.speech.tts import TTSError
from tests.providers.elevenlabs_server import ElevenLabsServer, Faults, speech_for

KEY = "xi-test-key"
TEXT = "Your card is frozen now. Is there anything else I can help with?"


def collect(tts: ElevenLabsTTS, text: str = TEXT) -> list[np.ndarray]:
    async def run() -> list[np.ndarray]:
        return [chunk async for chunk in tts.stream(text)]

    return asyncio.run(run())


def test_streams_exact_pcm_at_16_khz_across_odd_chunk_boundaries():
    with ElevenLabsServer(KEY) as server:
        tts = ElevenLabsTTS(KEY, voice_id="voice-123", model_id="eleven_flash_v2_5", base_url=server.url)
        chunks = collect(tts)
    request = server.requests[0]
    assert tts.sample_rate_hz == 16_000
    assert all(c.dtype == np.int16 for c in chunks)
    assert len(chunks) > 10  # streamed, not one blob
    # 1,001-byte network chunks split samples; not one byte lost or shifted
    assert np.concatenate(chunks).tobytes() == speech_for(TEXT, 16_000)
    assert request.path == "/v1/text-to-speech/voice-123/stream"
    assert request.params["output_format"] == ["pcm_16000"]
    assert request.headers["xi-api-key"] == KEY
    assert request.body["text"] == TEXT
    assert request.body["model_id"] == "eleven_flash_v2_5"


def test_the_reply_so_far_goes_along_as_previous_text():
    said = "I can open the transaction list"
    with ElevenLabsServer(KEY) as server:
        tts = ElevenLabsTTS(KEY, base_url=server.url)

        async def run() -> None:
            async for _ in tts.stream("and look at both charges."):
                pass
            async for _ in tts.stream("Okay.", previous_text="   "):
                pass

        asyncio.run(run())
        long_before = "word " * 200
        asyncio.run(_drain(tts.stream("Then we are done.", previous_text=long_before + said)))
    first, blank, long = (r.body for r in server.requests)
    assert "previous_text" not in first and "previous_text" not in blank
    assert long["previous_text"].endswith(said) and len(long["previous_text"]) == 300


async def _drain(stream) -> None:
    async for _ in stream:
        pass


def test_blank_text_makes_no_request():
    with ElevenLabsServer(KEY) as server:
        assert collect(ElevenLabsTTS(KEY, base_url=server.url), "  ") == []
    assert server.requests == []


@pytest.mark.parametrize(
    ("faults", "key", "kind", "status", "retry_after"),
    [
        (Faults(), "wrong-key", ErrorKind.AUTH, 401, None),
        (
            Faults(
                status=401, body={"status": "quota_exceeded", "message": "This request exceeds your quota"}
            ),
            KEY,
            ErrorKind.QUOTA,
            401,
            None,
        ),
        (
            Faults(status=429, body={"status": "too_many_concurrent_requests"}, retry_after_s=3),
            KEY,
            ErrorKind.RATE_LIMIT,
            429,
            3.0,
        ),
        (
            Faults(status=422, body={"status": "invalid_voice_settings"}),
            KEY,
            ErrorKind.BAD_REQUEST,
            422,
            None,
        ),
        (Faults(status=500), KEY, ErrorKind.SERVER, 500, None),
    ],
)
def test_http_errors_become_provider_errors(faults, key, kind, status, retry_after):
    with ElevenLabsServer(KEY, faults=faults) as server, pytest.raises(ElevenLabsError) as info:
        collect(ElevenLabsTTS(key, base_url=server.url))
    err = info.value
    assert isinstance(err, ProviderError) and isinstance(err, TTSError)  # the agent catches TTSError
    assert (err.kind, err.status, err.retry_after_s) == (kind, status, retry_after)
    assert len(server.requests) == 1  # the adapter never retries on its own


def test_slow_first_byte_times_out():
    with ElevenLabsServer(KEY, faults=Faults(first_byte_delay_s=1.0)) as server:
        t = time.monotonic()
        with pytest.raises(ElevenLabsError) as info:
            collect(ElevenLabsTTS(KEY, base_url=server.url, read_timeout_s=0.3))
        waited = time.monotonic() - t
    assert info.value.kind is ErrorKind.TIMEOUT
    assert 0.25 <= waited < 0.9


def test_connection_dropped_mid_stream_is_a_connection_error_after_the_audio_so_far():
    received: list[np.ndarray] = []

    async def run(tts: ElevenLabsTTS) -> None:
        async for chunk in tts.stream(TEXT):
            received.append(chunk)

    faults = Faults(drop_after_bytes=10_000)
    with ElevenLabsServer(KEY, faults=faults) as server, pytest.raises(ElevenLabsError) as info:
        asyncio.run(run(ElevenLabsTTS(KEY, base_url=server.url)))
    assert info.value.kind is ErrorKind.CONNECTION
    got = np.concatenate(received).tobytes()
    assert 9_000 <= len(got) <= 11_000
    assert got == speech_for(TEXT, 16_000)[: len(got)]


def test_nothing_listening_is_a_connection_error():
    with ElevenLabsServer(KEY) as server:
        url = server.url
    with pytest.raises(ElevenLabsError) as info:
        collect(ElevenLabsTTS(KEY, base_url=url))
    assert info.value.kind is ErrorKind.CONNECTION


def test_cancelling_the_consumer_stops_the_http_stream():
    long_text = TEXT * 6  # ~23 s of audio, ~1.5 s to stream at the server's pace

    async def barge_in(tts: ElevenLabsTTS) -> int:
        got = 0

        async def speak() -> None:
            nonlocal got
            async for chunk in tts.stream(long_text):
                got += chunk.size

        task = asyncio.create_task(speak())
        while got < 4_000:
            await asyncio.sleep(0.005)
        task.cancel()  # what the agent does on barge-in
        with pytest.raises(asyncio.CancelledError):
            await task
        return got

    with ElevenLabsServer(KEY, chunk_interval_s=0.01) as server:
        asyncio.run(barge_in(ElevenLabsTTS(KEY, base_url=server.url)))
        assert server.wait_finished(1, timeout_s=3.0)
    request = server.requests[0]
    assert request.client_left  # the server saw the disconnect
    assert request.bytes_sent < request.total_bytes / 5  # and stopped sending


def test_time_to_first_audio_over_loopback(capsys):
    async def measure(tts: ElevenLabsTTS) -> list[float]:
        out = []
        for _ in range(10):
            t = time.perf_counter()
            stream = tts.stream("Let me check that for you.")
            await stream.__anext__()
            out.append((time.perf_counter() - t) * 1000.0)
            await stream.aclose()
        return out

    with ElevenLabsServer(KEY) as server:
        ttfa = asyncio.run(measure(ElevenLabsTTS(KEY, base_url=server.url)))
    warm = sorted(ttfa[1:])
    with capsys.disabled():
        print(
            f"\nElevenLabs adapter over loopback: time to first audio cold {ttfa[0]:.1f} ms, "
            f"warm p50 {statistics.median(warm):.1f} ms, max {warm[-1]:.1f} ms (n={len(warm)})"
        )
    assert statistics.median(warm) < 100.0


def test_factory_reads_voice_model_and_base_url(tmp_path: Path):
    from core.config import Settings

    with pytest.raises(ElevenLabsError) as info:
        build_elevenlabs_tts(Settings(elevenlabs_api_key=None, data_dir=tmp_path))
    assert info.value.kind is ErrorKind.AUTH
    with ElevenLabsServer(KEY) as server:
        settings = Settings(
            elevenlabs_api_key=KEY,
            elevenlabs_base_url=server.url,
            elevenlabs_voice_id="nora",
            elevenlabs_model="eleven_turbo_v2_5",
            data_dir=tmp_path,
        )
        collect(build_elevenlabs_tts(settings), "Hello.")
    assert server.requests[0].path == "/v1/text-to-speech/nora/stream"
    assert server.requests[0].body["model_id"] == "eleven_turbo_v2_5"


@pytest.mark.cloud
@pytest.mark.skipif(not os.environ.get("ELEVENLABS_API_KEY"), reason="needs ELEVENLABS_API_KEY")
def test_real_elevenlabs_speaks():
    chunks = collect(ElevenLabsTTS(os.environ["ELEVENLABS_API_KEY"]), "Hello from Northwind Bank.")
    audio = np.concatenate(chunks)
    assert audio.size > 16_000 * 0.5  # at least half a second of 16 kHz speech
    assert np.abs(audio).max() > 1000
