"""Offline STT in worker processes: same transcripts as in-process, partials, failures, LM swap."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.speech.stt import STTError, Transcript
from core.speech.stt.pocketsphinx_stt import PocketsphinxEngine
from core.speech.stt.process_pool import ProcessPoolEngine
from core.speech.tts.espeak import speak_16k
from tests.conftest import SHARED_CACHE

FRAME = 480  # 30 ms at 16 kHz, what the endpointer releases
SENTENCES = ("I want to check my account balance", "my card was stolen yesterday", "can I speak to someone please")
WAIT_S = 10.0


def decode(engine: object, audio: np.ndarray, frame: int = FRAME) -> Transcript:
    stream = engine.open()  # type: ignore[attr-defined]
    for i in range(0, audio.size, frame):
        stream.accept(audio[i : i + frame])
    return stream.finish()


def wait_for(predicate: object, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def audio() -> dict[str, np.ndarray]:
    return {s: speak_16k(s) for s in SENTENCES}


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolEngine]:
    engine = ProcessPoolEngine(workers=2)
    yield engine
    engine.close()


def test_transcripts_equal_the_in_process_engine(audio):
    # A decoder's cepstral mean adapts from utterance to utterance, so both sides start
    # fresh and hear the same utterances in the same order (one worker, one decoder).
    # The phone lookahead only sees the audio handed over so far, so the in-process side
    # gets it in the batches the worker gets.
    local, pool = PocketsphinxEngine(), ProcessPoolEngine(workers=1)
    batch = -(-pool.ship_samples // FRAME) * FRAME  # whole frames until a batch is full
    try:
        for sentence, samples in audio.items():
            here, there = decode(local, samples, batch), decode(pool, samples)
            assert there.text == here.text, sentence
            assert there.text  # something was recognised
            assert there.audio_ms == pytest.approx(samples.size / 16.0)
    finally:
        pool.close()


def test_partials_arrive_without_waiting(pool, audio):
    stream = pool.open()
    samples = audio[SENTENCES[1]]
    for i in range(0, samples.size, FRAME):
        stream.accept(samples[i : i + FRAME])
    t = time.perf_counter()
    stream.partial()  # ships the buffered audio; returns what has arrived so far
    assert time.perf_counter() - t < 0.05
    assert wait_for(lambda: stream.partial() != "")
    assert stream.finish().text
    assert stream.partial() == ""  # closed


def test_concurrent_streams_spread_over_workers(pool, audio):
    streams = [pool.open() for _ in range(2)]
    assert {s._worker.process.pid for s in streams} == set(pool.worker_pids)
    samples = audio[SENTENCES[0]]
    for i in range(0, samples.size, FRAME):
        for stream in streams:
            stream.accept(samples[i : i + FRAME])
    # Not compared with each other: a decoder's running cepstral mean carries over from its
    # previous utterances, so a fresh and a reused decoder may differ (as in-process).
    assert all(s.finish().text for s in streams)


def test_finish_times_out_with_stt_error():
    engine = ProcessPoolEngine(workers=1, finish_timeout_s=0.3)
    try:
        stream = engine.open()
        stream.accept(np.zeros(1600, np.int16))
        pid = engine.worker_pids[0]
        os.kill(pid, signal.SIGSTOP)
        try:
            t = time.perf_counter()
            with pytest.raises(STTError, match="within"):
                stream.finish()
            assert 0.25 < time.perf_counter() - t < 2.0
        finally:
            os.kill(pid, signal.SIGCONT)
        assert engine.wait_idle(WAIT_S)  # the late final is dropped; the worker goes on
    finally:
        engine.close()


def test_killed_worker_fails_its_utterance_and_is_replaced(audio):
    engine = ProcessPoolEngine(workers=1)
    try:
        stream = engine.open()
        stream.accept(audio[SENTENCES[0]][:8000])
        stream.partial()
        old_pid = engine.worker_pids[0]
        os.kill(old_pid, signal.SIGKILL)
        with pytest.raises(STTError):
            stream.finish()
        assert decode(engine, audio[SENTENCES[1]]).text == decode(PocketsphinxEngine(), audio[SENTENCES[1]]).text
        assert engine.worker_pids[0] != old_pid
        assert all(p.pid != old_pid for p in mp.active_children())  # reaped, not a zombie
    finally:
        engine.close()


def test_close_stops_every_worker_and_fails_open_utterances():
    engine = ProcessPoolEngine(workers=2)
    workers = [w.process for w in engine._workers]
    stream = engine.open()
    engine.close()
    assert all(p.exitcode is not None for p in workers)  # exited and reaped
    assert not [p for p in mp.active_children() if p in workers]
    with pytest.raises(STTError):
        stream.finish()
    with pytest.raises(STTError):
        engine.open()
    engine.close()  # twice is fine


def test_lm_swap_after_kb_edit_reaches_new_workers(tmp_path: Path, audio):
    from core.config import Settings
    from core.kb.admin import speech_texts
    from core.kb.pack import load_pack
    from core.providers.speech import build_speech

    settings = Settings(data_dir=tmp_path, cache_dir=SHARED_CACHE, stt_workers=1, stt_provider="pocketsphinx")
    pack = load_pack(settings.pack_dir)
    swappable, refresher = build_speech(settings, pack)
    first = swappable.current
    assert isinstance(first, ProcessPoolEngine)
    assert refresher is not None
    refresher.debounce_s = 0.0
    in_flight = swappable.open()  # opened before the swap: finishes on the old model
    texts = [*speech_texts(pack.articles), "Zebra accounts are closed on Sundays."]
    refresher.schedule(texts)
    assert refresher.wait(60.0)
    second = swappable.current
    assert isinstance(second, ProcessPoolEngine) and second is not first
    assert second.lm_path != first.lm_path
    old_workers = [w.process for w in first._workers]
    assert all(p.is_alive() for p in old_workers)  # still serving the utterance in flight
    samples = audio[SENTENCES[1]]
    for i in range(0, samples.size, FRAME):
        in_flight.accept(samples[i : i + FRAME])
    assert in_flight.finish().text
    assert wait_for(lambda: all(p.exitcode is not None for p in old_workers))  # old ones drained
    try:
        local = PocketsphinxEngine(second.lm_path, second.dict_path)
        assert decode(swappable, samples).text == decode(local, samples).text
    finally:
        refresher.close()
        second.close()
