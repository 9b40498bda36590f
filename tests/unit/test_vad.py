"""Endpointer and frame classifiers on synthetic signals, espeak speech and a real clip.

The endpointer logic is tested with the energy classifier on tone bursts (exact,
predictable frame decisions); the product's classifier (``make_endpointer`` with the
default settings) is tested on silence, noise, hum, espeak sentences and a dev clip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import Settings
from core.eval.vad import hum, reference_voiced, run_endpointer, spans, white_noise
from core.pipeline.vad import (
    FRAME_MS,
    EndpointConfig,
    Endpointer,
    EndpointEvent,
    EnergyFrameClassifier,
    WebRtcFrameClassifier,
    make_endpointer,
)
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ as RATE

DEV_AUDIO = Path(__file__).resolve().parents[3] / "shared" / "data" / "audio"


def tone(ms: float, dbfs: float = -20.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(RATE * ms / 1000)) / RATE
    amp = 32768.0 * 10 ** (dbfs / 20.0) * np.sqrt(2)
    return np.round(amp * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def silence(ms: float) -> np.ndarray:
    return np.zeros(int(RATE * ms / 1000), np.int16)


def feed(ep: Endpointer, audio: np.ndarray, chunk_ms: int = 20) -> list[EndpointEvent]:
    step = RATE * chunk_ms // 1000
    events: list[EndpointEvent] = []
    for i in range(0, audio.size, step):
        events += ep.process(audio[i : i + step])
    return events + ep.finish()


def kinds(events: list[EndpointEvent]) -> list[str]:
    return [e.kind for e in events if e.kind != "audio"]


@pytest.fixture(scope="module")
def product_settings() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture(scope="module")
def script():
    from core.speech.tts.espeak import script_audio

    sentences = [
        "hi i lost my debit card yesterday",
        "yes",
        "can you tell me why there is a fee on my statement",
        "no thank you",
    ]
    return script_audio(sentences, gap_s=1.0, lead_s=1.0)


# --- endpointer logic, energy classifier ---------------------------------------------
def test_tone_bursts_give_one_utterance_each_with_accurate_bounds():
    cfg = EndpointConfig()
    bursts = [(1000, 800), (2800, 1200), (5000, 400)]  # (start_ms, length_ms)
    audio = np.concatenate(
        [silence(1000), tone(800), silence(1000), tone(1200), silence(1000), tone(400), silence(1000)]
    )
    events = feed(Endpointer(cfg, EnergyFrameClassifier(-40.0)), audio)
    starts = [e.t_ms for e in events if e.kind == "start"]
    ends = [e for e in events if e.kind == "end"]
    assert kinds(events) == ["start", "end"] * 3
    for (onset, length), start, end in zip(bursts, starts, ends, strict=True):
        # the start includes the pre-roll; frame quantisation adds up to one frame
        assert abs(start - (onset - cfg.pre_roll_ms)) <= FRAME_MS
        assert abs(end.t_ms - (onset + length)) <= FRAME_MS
        assert end.reason == "silence"
        assert end.speech_ms == pytest.approx(length, abs=FRAME_MS)


def test_utterance_audio_is_the_speech_plus_pre_roll_and_trailing_silence():
    cfg = EndpointConfig()
    audio = np.concatenate([silence(1000), tone(600), silence(1000)])
    events = feed(Endpointer(cfg, EnergyFrameClassifier(-40.0)), audio)
    utt = np.concatenate([e.audio for e in events if e.kind == "audio"])
    expected_ms = cfg.pre_roll_ms + 600 + cfg.end_of_utterance_silence_ms
    assert abs(utt.size * 1000 / RATE - expected_ms) <= 2 * FRAME_MS
    assert np.abs(utt).max() > 1000  # the tone is in it


def test_min_speech_rejects_a_60ms_click():
    cfg = EndpointConfig()
    for offset_ms in (0, 10, 20):  # the click straddles frames differently
        audio = np.concatenate([silence(1000 + offset_ms), tone(60, -10.0, 1000.0), silence(1500)])
        events = feed(Endpointer(cfg, EnergyFrameClassifier(-40.0)), audio)
        assert "end" not in kinds(events)


def test_max_utterance_cuts_a_long_stream():
    cfg = EndpointConfig(max_utterance_ms=3000)
    audio = np.concatenate([silence(500), tone(7500), silence(1000)])
    events = feed(Endpointer(cfg, EnergyFrameClassifier(-40.0)), audio)
    ends = [e for e in events if e.kind == "end"]
    assert [e.reason for e in ends][:2] == ["max_length", "max_length"]
    assert len(ends) == 3
    first_start = next(e.t_ms for e in events if e.kind == "start")
    assert ends[0].t_ms - first_start == pytest.approx(3000, abs=FRAME_MS)


def test_stream_end_closes_an_open_utterance():
    events = feed(Endpointer(EndpointConfig(), EnergyFrameClassifier(-40.0)), tone(1000))
    assert kinds(events)[-1] == "end"
    assert [e for e in events if e.kind == "end"][0].reason == "stream_end"


# --- the product classifier ---------------------------------------------------------------
@pytest.mark.parametrize(
    "name,audio",
    [
        ("digital silence", silence(20_000)),
        ("white noise -45 dBFS", white_noise(20.0, -45.0, 11)),
        ("white noise -35 dBFS", white_noise(20.0, -35.0, 12)),
        ("50 Hz hum -35 dBFS", hum(20.0, -35.0)),
    ],
)
def test_no_utterance_opens_on_silence_or_steady_noise(product_settings, name, audio):
    events = feed(make_endpointer(product_settings), audio, chunk_ms=20)
    assert kinds(events) == [], name


def test_noise_gate_is_what_rejects_steady_noise():
    """Without the gate the WebRTC VAD calls steady noise speech (the reason the gate
    exists): on 10 ms frames loud white noise, on 30 ms frames mains hum."""
    noise = white_noise(10.0, -35.0, 21)
    plain = run_endpointer(noise, WebRtcFrameClassifier(0, -50.0, snr_gate_db=None))
    gated = run_endpointer(noise, WebRtcFrameClassifier(0, -50.0, snr_gate_db=6.0))
    assert plain.opened >= 1
    assert gated.opened == 0


def test_espeak_sentences_with_pauses(product_settings, script):
    audio, sentence_spans = script
    cfg = EndpointConfig.from_settings(product_settings)
    events = feed(make_endpointer(product_settings), audio)
    starts = [e.t_ms for e in events if e.kind == "start"]
    ends = [e.t_ms for e in events if e.kind == "end"]
    assert len(ends) == len(sentence_spans) == len(starts)
    for (s_ms, e_ms, _), start, end in zip(sentence_spans, starts, ends, strict=True):
        assert abs(start - (s_ms - cfg.pre_roll_ms)) <= 100
        assert abs(end - e_ms) <= 100


def test_espeak_sentences_in_noise_and_hum(product_settings, script):
    audio, sentence_spans = script
    seconds = audio.size / RATE
    for noise in (white_noise(seconds, -45.0, 5), hum(seconds, -45.0)):
        noisy = np.clip(audio.astype(np.int32) + noise, -32768, 32767).astype(np.int16)
        events = feed(make_endpointer(product_settings), noisy)
        assert kinds(events) == ["start", "end"] * len(sentence_spans)


def test_same_events_whatever_the_chunk_size(product_settings, script):
    audio, _ = script
    noisy = np.clip(audio.astype(np.int32) + white_noise(audio.size / RATE, -50.0, 9), -32768, 32767)
    noisy = noisy.astype(np.int16)

    def summary(chunk_ms: int):
        events = feed(make_endpointer(product_settings), noisy, chunk_ms)
        marks = [(e.kind, e.t_ms, e.reason, e.speech_ms) for e in events if e.kind != "audio"]
        audio_out = np.concatenate([e.audio for e in events if e.kind == "audio"])
        return marks, audio_out

    marks_10, audio_10 = summary(10)
    marks_170, audio_170 = summary(170)
    assert marks_10 == marks_170
    assert np.array_equal(audio_10, audio_170)


def test_a_real_dev_clip_is_one_utterance_covering_the_speech(product_settings):
    path = DEV_AUDIO / "ps_goforward.wav"
    if not path.exists():
        pytest.skip(f"{path} not available (../shared/data missing)")
    from core.eval import read_wav

    audio = read_wav(path)
    ref = spans(reference_voiced(audio, 10), 10, min_gap_ms=300)
    events = feed(make_endpointer(product_settings), audio)
    assert kinds(events) == ["start", "end"]
    start = next(e.t_ms for e in events if e.kind == "start")
    handed_out = np.concatenate([e.audio for e in events if e.kind == "audio"])
    # the recogniser gets all of the speech: from before its start to after its end
    assert start <= ref[0][0]
    assert start + handed_out.size * 1000 / RATE >= ref[-1][1]


class _OneFrameAtATime:
    """A classifier with ``is_speech`` only: the endpointer's per-frame path."""

    def __init__(self, inner):
        self.inner = inner

    def is_speech(self, frame):
        return self.inner.is_speech(frame)


@pytest.mark.parametrize("chunk_ms", [10, 20, 25, 100])
@pytest.mark.parametrize("make", [lambda: WebRtcFrameClassifier(3, -50.0), lambda: EnergyFrameClassifier(-40)])
def test_chunks_classified_at_once_give_the_same_utterances_as_frame_by_frame(script, chunk_ms, make):
    audio, _ = script
    noisy = np.clip(audio + white_noise(audio.size / RATE, -50.0, 5)[: audio.size], -32768, 32767).astype(np.int16)
    cfg = EndpointConfig()

    def utterances(events):
        out, cur = [], []
        for e in events:
            if e.kind == "audio":
                cur.append(e.audio)
            elif e.kind in ("end", "abandon"):
                out.append((e.kind, e.t_ms, e.reason, e.speech_ms, np.concatenate(cur).tobytes()))
                cur = []
        return out, [(e.kind, e.t_ms) for e in events if e.kind != "audio"]

    batched = utterances(feed(Endpointer(cfg, make()), noisy, chunk_ms))
    one_by_one = utterances(feed(Endpointer(cfg, _OneFrameAtATime(make())), noisy, chunk_ms))
    assert batched == one_by_one
    assert len(batched[0]) >= 3  # the script's sentences were found
    # one audio hand-over per chunk at most, however many 10 ms frames it holds
    events = feed(Endpointer(cfg, make()), noisy, chunk_ms)
    assert sum(e.kind == "audio" for e in events) <= audio.size // (RATE * chunk_ms // 1000) + 2 * len(batched[0]) + 1
