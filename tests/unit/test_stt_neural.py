"""The embedded neural recogniser: stream logic with a scripted model, and the real
Moonshine model on held-out speech, phone audio and non-speech."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.speech.stt import STTError
from core.speech.stt.decode_pool import EARLY, FINAL, PARTIAL, DecodePool
from core.speech.stt.neural import NeuralEngine, believable

ROOT = Path(__file__).resolve().parents[2]
RATE = 16_000


@dataclass(frozen=True)
class Decoded:
    text: str
    tokens: int
    mean_logprob: float = -0.1
    encode_ms: float = 1.0
    decode_ms: float = 1.0
    cancelled: bool = False


class ScriptedModel:
    """Text = how many 100 ms of audio it was given; can be held until released."""

    def __init__(self, hold: bool = False):
        self.calls: list[int] = []
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def transcribe(self, audio, cancelled=None):
        self.calls.append(audio.size)
        while not self.release.wait(0.005):
            if cancelled is not None and cancelled():
                return Decoded("", 0, cancelled=True)
        return Decoded(f"words {audio.size // (RATE // 10)}", 2)


def engine_with(model, **kwargs) -> NeuralEngine:
    return NeuralEngine(model, DecodePool(1), **kwargs)


def feed(stream, ms: int) -> None:
    for _ in range(ms // 20):
        stream.accept(np.full(RATE // 50, 1000, np.int16))


def wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_finish_decodes_up_to_the_speech_end_plus_the_tail():
    model = ScriptedModel()
    stream = engine_with(model, partial_every_ms=0, tail_ms=150).open()
    feed(stream, 2000)
    transcript = stream.finish(speech_end_ms=1000)
    assert model.calls == [int(1.15 * RATE)]
    assert transcript.text == "words 11" and transcript.audio_ms == pytest.approx(1150)
    assert 0 < transcript.confidence <= 1


def test_partial_never_waits_and_shows_the_last_decoded_text():
    model = ScriptedModel(hold=True)
    stream = engine_with(model, partial_every_ms=500).open()
    feed(stream, 400)
    assert stream.partial() == "" and model.calls == []  # not enough new audio yet
    feed(stream, 200)
    started = time.monotonic()
    assert stream.partial() == ""  # a decode started; nothing to show yet
    assert time.monotonic() - started < 0.05
    model.release.set()
    wait_until(lambda: stream.partial() == "words 6")
    feed(stream, 500)
    wait_until(lambda: stream.partial() == "words 11")
    assert len(model.calls) == 2


def test_early_final_in_the_pause_is_the_final_when_the_utterance_ends_there():
    model = ScriptedModel()
    stream = engine_with(model, partial_every_ms=0, tail_ms=150).open()
    called = threading.Event()
    stream.on_final = called.set
    feed(stream, 1000)
    assert stream.settled_text(1000) is None  # no pause yet
    assert model.calls == []
    feed(stream, 200)  # 200 ms of pause: past the tail
    stream.settled_text(1000)
    assert called.wait(5)
    assert stream.settled_text(1000) == "words 11"
    feed(stream, 300)  # the rest of the end-of-utterance silence
    assert stream.finish(1000).text == "words 11"
    assert model.calls == [int(1.15 * RATE)]  # the final reused the early decode


def test_caller_going_on_cancels_the_early_decode_and_the_final_covers_everything():
    model = ScriptedModel(hold=True)
    stream = engine_with(model, partial_every_ms=0, tail_ms=150).open()
    feed(stream, 1200)
    assert stream.settled_text(1000) is None  # early decode of 1.15 s started, held
    wait_until(lambda: len(model.calls) == 1)
    feed(stream, 1000)  # the caller went on; a new pause after 2000 ms
    assert stream.settled_text(2000) is None
    model.release.set()
    transcript = stream.finish(2000)
    assert transcript.text == "words 21"
    assert model.calls[-1] == int(2.15 * RATE)


def test_finish_times_out_into_an_stt_error_so_the_chain_fails_over():
    model = ScriptedModel(hold=True)
    stream = engine_with(model, partial_every_ms=0, finish_timeout_s=0.2).open()
    feed(stream, 500)
    with pytest.raises(STTError, match="took over"):
        stream.finish()
    model.release.set()


def test_closed_streams_refuse_audio_and_cancel_is_idempotent():
    stream = engine_with(ScriptedModel(), partial_every_ms=0).open()
    feed(stream, 200)
    stream.cancel()
    stream.cancel()
    with pytest.raises(STTError):
        stream.accept(np.zeros(320, np.int16))
    assert stream.partial() == "" and stream.settled_text(100) is None


def test_pool_runs_finals_before_early_finals_before_partials():
    pool = DecodePool(1)
    gate = threading.Event()
    order: list[str] = []
    pool.submit(lambda c: gate.wait(5), FINAL)  # occupies the only thread
    wait_until(lambda: pool.load == (1, 0))
    assert not pool.idle()
    jobs = [pool.submit(lambda c, n=n: order.append(n), p) for n, p in
            (("partial", PARTIAL), ("early", EARLY), ("final", FINAL))]
    gate.set()
    for job in jobs:
        assert job.wait(5)
    assert order == ["final", "early", "partial"]
    assert pool.idle()


def test_a_final_cancels_a_running_partial_when_every_thread_is_busy():
    pool = DecodePool(1)
    started = threading.Event()

    def preview(cancelled):
        started.set()
        while not cancelled():
            time.sleep(0.002)
        return "stopped"

    partial = pool.submit(preview, PARTIAL)
    assert started.wait(5)
    final = pool.submit(lambda c: "final", FINAL)
    assert final.wait(5) and final.result == "final"
    assert partial.cancelled and partial.done


def test_pool_hands_errors_to_the_waiter():
    pool = DecodePool(1)

    def boom(cancelled):
        raise ValueError("bad audio")

    job = pool.submit(boom, FINAL)
    assert job.wait(5) and isinstance(job.error, ValueError)


def test_believable_drops_unsure_and_looping_decodes():
    assert believable(Decoded("I lost my card.", 5, -0.05)) == "I lost my card."
    assert believable(Decoded("Thank you.", 3, -1.6)) == ""
    assert believable(Decoded("the the the the the", 5, -0.2)) == ""
    assert believable(Decoded("I'm sorry. I'm sorry. I'm sorry. I'm sorry.", 12, -0.2)) == ""
    assert believable(Decoded("", 0, 0.0)) == ""


# --- the real model ---------------------------------------------------------------------

HELD_OUT = ROOT / "packs" / "bank" / "eval" / "caller_sentences.txt"


@pytest.fixture(scope="module")
def moonshine():
    from core.eval.stt import make_neural_engine

    return make_neural_engine()


@pytest.fixture(scope="module")
def held_out():
    from core.eval import read_lines

    sentences = read_lines(HELD_OUT)
    assert len(sentences) == 40
    return sentences


def _report(engine, clips, label):
    from core.eval.stt import evaluate

    report = evaluate(engine, clips)
    print(f"\n{label}: WER {report.wer:.3f} over {report.summary()['ref_words']} words")
    for r in report.results:
        if r.errors:
            print(f"  {r.id} {r.wer:.2f} ref={r.reference!r} hyp={r.hypothesis!r}")
    return report


def test_held_out_caller_sentences_in_the_piper_voice(moonshine, held_out):
    from core.eval.stt import piper_clips

    report = _report(moonshine, piper_clips(held_out), "held-out, Piper voice")
    assert report.wer <= 0.05


def test_held_out_caller_sentences_in_the_espeak_voice(moonshine, held_out):
    from core.eval.stt import sentence_clips

    report = _report(moonshine, sentence_clips(held_out), "held-out, espeak voice")
    assert report.wer <= 0.10  # the in-domain target (measured 0.076)


def test_phone_quality_audio_stays_close_to_wideband(moonshine, held_out):
    from core.eval import Clip
    from core.eval.stt import phone_line, piper_clips

    clips = piper_clips(held_out[:20])
    wide = _report(moonshine, clips, "Piper, 16 kHz")
    narrow = _report(moonshine, [Clip(c.id, phone_line(c.audio), c.reference) for c in clips], "Piper, 8 kHz mu-law")
    assert narrow.wer <= wide.wer + 0.02


def test_dev_recordings(moonshine):
    from core.eval import DEFAULT_MANIFEST, load_manifest

    if not DEFAULT_MANIFEST.exists():
        pytest.skip(f"{DEFAULT_MANIFEST} not available (../shared/data missing)")
    report = _report(moonshine, load_manifest(DEFAULT_MANIFEST), "dev recordings")
    # target 0.13, measured 0.130 (16 errors in 123 words, four of them "clubs" heard as
    # "cloves"); one error of slack so a different CPU's int8 kernels cannot flip the test
    assert report.wer <= 17 / 123


def _noises(seconds: float) -> dict[str, np.ndarray]:
    from core.eval.noise import non_speech

    return non_speech(seconds)


def test_no_words_on_silence_noise_hum_babble_or_tones(moonshine):
    """Straight to the recogniser, without the VAD in front: 10 s utterances of each."""
    for name, audio in _noises(30.0).items():
        emitted = []
        for i in range(0, audio.size, 10 * RATE):
            stream = moonshine.open()
            stream.accept(audio[i : i + 10 * RATE])
            text = stream.finish().text
            if text:
                emitted.append(text)
        assert emitted == [], name
