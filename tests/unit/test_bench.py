"""Smoke tests of the benchmarks at tiny sizes: they run and report sane figures.

No timing thresholds here: `make bench` reports timings, tests only check structure.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from core.bench.simulated import LatencyProfile, SimulatedDeepgram, SimulatedElevenLabs, SimulatedOpenAI


def _finite(v: object) -> bool:
    return isinstance(v, float | int) and math.isfinite(v)


@pytest.fixture
def services(data_dir):
    from core.config import Settings
    from core.services import build_services

    s = build_services(Settings(data_dir=data_dir))
    yield s
    s.store.close()


def test_latency_profile_is_seeded_and_within_its_ranges():
    a, b = LatencyProfile(seed=3), LatencyProfile(seed=3)
    draws = [a.draw() for _ in range(200)]
    assert draws[:5] == [b.draw() for _ in range(5)]
    assert all(100.0 <= d.tts_ms <= 300.0 and d.stt_ms >= 0 and d.llm_ms >= 0 for d in draws)
    assert 250 < np.mean([d.stt_ms for d in draws]) < 350
    assert LatencyProfile(scale=0.0).draw().total_ms == 0.0


def test_simulated_deepgram_answers_finalize_after_the_injected_delay():
    from core.providers.deepgram_stt import DeepgramSTT

    with SimulatedDeepgram(transcript="block my card", final_delay_ms=150.0) as dg:
        stream = DeepgramSTT("k", base_url=dg.url).open()
        stream.accept(np.zeros(3200, np.int16))
        t0 = time.monotonic()
        transcript = stream.finish()
        elapsed_ms = (time.monotonic() - t0) * 1000
    assert transcript.text == "block my card"
    assert elapsed_ms >= 150.0
    assert dg.injected_ms == [150.0]


def test_simulated_deepgram_finalises_the_injected_delay_after_the_speech_ends():
    # real-time audio: 0.4 s of speech, then silence. The final is due 150 ms after the
    # speech ends, whether or not the client asks; asked later, it comes at once.
    from core.providers.deepgram_stt import DeepgramSTT

    audio = np.concatenate([(np.sin(np.arange(6400) * 0.1) * 8000).astype(np.int16), np.zeros(8000, np.int16)])
    with SimulatedDeepgram(transcript="block my card", final_delay_ms=150.0, final_on="speech_end") as dg:
        stream = DeepgramSTT("k", base_url=dg.url).open()
        start, arrived = time.monotonic(), None
        for i in range(0, audio.size, 320):  # 20 ms at a time, in real time
            stream.accept(audio[i : i + 320])
            while time.monotonic() < start + (i + 320) / 16000:
                if arrived is None and stream.final_until_ms > 0:
                    arrived = time.monotonic()
                time.sleep(0.002)
        speech_end = start + 0.4
        transcript = stream.finish(speech_end_ms=400.0)
    assert transcript.text == "block my card"
    assert arrived is not None and 0.1 <= arrived - speech_end < 0.35  # before the audio ends (at 1 s)
    assert dg.injected_ms == [150.0]
    with pytest.raises(ValueError, match="final_on"):
        SimulatedDeepgram(final_on="never")


async def _collect(tts, text):
    return [chunk async for chunk in tts.stream(text)]


def test_simulated_elevenlabs_streams_pcm_through_the_adapter():
    import asyncio

    from core.providers.elevenlabs_tts import ElevenLabsTTS

    with SimulatedElevenLabs(first_audio_ms=50.0) as xi:
        chunks = asyncio.run(_collect(ElevenLabsTTS("k", base_url=xi.url), "Hello there."))
    samples = sum(c.size for c in chunks)
    assert samples == len("Hello there.") * 65 * 16
    assert xi.requests == 1


def test_simulated_openai_streams_words_through_the_adapter_after_the_delay():
    import asyncio

    from core.providers.openai_llm import OpenAIBackend

    heard: list[str] = []

    def reply_for(text: str) -> str:
        heard.append(text)
        return "Sure, I can freeze it."

    async def ask(backend: OpenAIBackend) -> tuple[list[str], float]:
        t0 = time.monotonic()
        deltas, first = [], None
        async for delta in backend.stream_text("system", [{"role": "user", "content": "freeze my card"}]):
            first = first if first is not None else time.monotonic() - t0
            deltas.append(delta)
        return deltas, (first or 0.0) * 1000

    with SimulatedOpenAI(reply_for, first_token_ms=120.0) as llm:
        deltas, first_ms = asyncio.run(ask(OpenAIBackend("k", "simulated", base_url=llm.base_url)))
    assert deltas == ["Sure, ", "I ", "can ", "freeze ", "it."]
    assert heard == ["freeze my card"]
    assert first_ms >= 120.0
    assert llm.requests == 1 and len(llm.first_tokens) == 1


def test_voice_bench_reports_every_stage(services):
    from core.bench.voice import STAGES, caller_turns_of, play_turns, stage_figures

    records = play_turns(services, [caller_turns_of(services)[0][0]], 1)
    figures = stage_figures(records)
    assert figures["turns"] == 1
    for stage in STAGES:
        assert _finite(figures[f"{stage}_p50"]) and figures[f"{stage}_p50"] >= 0
    assert figures["voice_to_voice_ms_p50"] >= figures["endpointing_ms_p50"]


def test_concurrency_level_measures_lag_latency_cpu_and_memory(services):
    from core.bench.concurrency import call_audio, run_level

    row = run_level(services, services.stt, 2, call_audio(services), seconds=2.5, prewarm=True)
    assert row["sessions"] == 2
    assert _finite(row["lag_ms_p95"]) and row["lag_ms_p95"] >= 0
    assert row["lag_ms_p50"] <= row["lag_ms_p95"] <= row["lag_ms_max"]
    assert row["frames_not_processed"] == 0
    assert row["cpu_per_session_realtime"] > 0 and _finite(row["rss_mb_per_session"])
    assert isinstance(row["real_time"], bool)


def test_concurrency_level_counts_stt_worker_processes(services):
    from core.bench.concurrency import call_audio, run_level
    from core.providers.speech import speech_floor
    from core.speech.stt.process_pool import ProcessPoolEngine

    floor = speech_floor(services.stt)
    stt = ProcessPoolEngine(floor.lm_path, floor.dict_path, workers=1)
    try:
        row = run_level(services, stt, 2, call_audio(services), seconds=2.5, prewarm=True)
    finally:
        stt.close()
    assert row["stt_worker_processes"] == 1 and row["frames_not_processed"] == 0
    assert row["cpu_per_session_realtime"] > 0 and _finite(row["rss_mb_per_session"])


def test_store_throughput_and_wrapup_transcripts(services):
    from core.bench.copilot import WORDS_PER_MINUTE, _transcript, store_throughput

    figures = store_throughput(services.store, segments=40, threads=4)
    assert figures["segments_per_s_1_writer"] > 0 and figures["segments_per_s_4_writers"] > 0
    lines = _transcript(services, 1)
    words = sum(len(t.split()) for _, t in lines)
    assert words >= WORDS_PER_MINUTE
    assert {s for s, _ in lines} == {"caller", "agent"}


def test_runner_table_and_machine_info():
    from core.bench.__main__ import machine, table

    info = machine()
    assert info["cores"] >= 1 and info["python"]
    results = {
        "cloud": {**{f"{k}_p{q}": 1.0 for k in ("voice_to_voice_ms", "overhead_ms", "overhead_without_clause_ms")
                     for q in (50, 95)}},
        "concurrency": {"offline": {"max_real_time_sessions": 1, "levels": [
            {"sessions": 1, "lag_ms_p50": 1.0, "lag_ms_p95": 2.0, "cpu_cores_used": 0.1, "rss_mb_per_session": 3.0}]}},
    }
    results["concurrency"]["offline_workers"] = {**results["concurrency"]["offline"], "stt_workers": 2}
    text = table(results)
    assert "overhead over providers" in text and "most real-time sessions" in text
    assert "pocketsphinx, 2 workers: most real-time sessions" in text


def test_concurrency_sweep_narrows_down_the_largest_real_time_level():
    from core.bench.concurrency import _between

    def rows(*levels: tuple[int, bool]) -> list[dict]:
        return [{"sessions": n, "real_time": ok} for n, ok in levels]

    assert _between(rows((10, True), (25, True), (50, False), (100, False))) == 35
    assert _between(rows((10, True), (25, True), (35, True), (50, False))) == 45
    assert _between(rows((10, True), (25, True), (35, False), (50, False))) == 30
    assert _between(rows((25, True), (45, True), (50, False))) is None  # within 5 sessions
    assert _between(rows((10, True), (25, True), (50, True), (100, True), (200, True))) is None  # nothing failed
    assert _between(rows((1, False), (10, False))) is None  # nothing passed


@pytest.mark.slow
def test_startup_serves_the_page_and_runs_it(data_dir):
    from core.bench.startup import server_run

    figures = server_run(timeout_s=120)
    assert 0 < figures["page_served_s"] <= figures["first_page_run_s"]


def test_cloud_bench_runs_the_product_chains_against_the_simulated_servers():
    from core.bench.cloud import run

    r = run(turns=3, scale=0.3)
    assert r["matched_turns"] >= 1
    for key in ("overhead_ms_p50", "overhead_reply_ms_p50", "first_clause_wait_ms_p50", "overhead_without_clause_ms_p50"):
        assert _finite(r[key]), key
    assert r["llm_requests"] >= r["matched_turns"]  # replies came through the OpenAI adapter


def test_soak_counts_calls_that_ended_for_no_reason():
    from core.bench.soak import judge

    t = 1_000.0
    entries = [
        {"page": "live", "started": True, "stopped": True, "t_start": t},  # Stop pressed, ended: completed
        {"page": "talk", "started": True, "stopped": False, "t_start": t + 1},  # ended without Stop: no reason
        {"page": "talk", "started": True, "stopped": False, "t_start": t + 2},  # failed, with its reason
        {"page": "live", "started": True, "stopped": True, "t_start": t + 3},  # Start, but no call was made
    ]
    calls = [
        {"id": "a", "status": "ended", "error": None, "source": "browser", "started_at": t + 0.5, "ended_at": t + 20},
        {"id": "b", "status": "ended", "error": None, "source": "talk", "started_at": t + 1.5, "ended_at": t + 33},
        {"id": "c", "status": "failed", "error": "the WebRTC connection was lost (ICE failed)", "source": "talk",
         "started_at": t + 2.5, "ended_at": t + 9},
    ]
    out = judge(entries, calls)
    assert (out["calls_started"], out["calls_created"], out["calls_completed"], out["calls_failed"]) == (4, 3, 1, 1)
    assert out["calls_ended_for_no_reason"] == 1 and out["start_without_call"] == 1
    assert out["failure_reasons"] == ["the WebRTC connection was lost (ICE failed)"]
