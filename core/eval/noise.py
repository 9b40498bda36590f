"""Non-speech audio a recogniser must not turn into words: silence, white noise, mains hum,
babble (reversed voices: speech-like, no words), DTMF key tones and music.

``python -m core.eval stt --non-speech 60`` feeds each of them through the product's
endpointer and recogniser and counts the words that come out (the target is none).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.eval.vad import babble, hum, white_noise
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ as RATE
from core.speech.audio import Int16Array

# DTMF (ITU-T Q.23): row and column frequencies of each key.
_DTMF = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209), "5": (770, 1336),
    "6": (770, 1477), "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "*": (941, 1209),
    "0": (941, 1336), "#": (941, 1477),
}


def _at_level(x: np.ndarray, dbfs: float) -> Int16Array:
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    return np.clip(np.round(x / rms * 32768.0 * 10 ** (dbfs / 20.0)), -32768, 32767).astype(np.int16)


def dtmf(seconds: float, dbfs: float = -20.0, tone_ms: int = 120, gap_ms: int = 80) -> Int16Array:
    """Keys pressed one after another (a card number typed on the keypad)."""
    keys = "4111111111111111#0123456789*"
    n = int(seconds * RATE)
    out = np.zeros(n, np.float64)
    tone = int(tone_ms * RATE / 1000)
    t = np.arange(tone) / RATE
    pos, k = 0, 0
    while pos + tone <= n:
        low, high = _DTMF[keys[k % len(keys)]]
        out[pos : pos + tone] = np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)
        pos += tone + int(gap_ms * RATE / 1000)
        k += 1
    return _at_level(out, dbfs)


def music(seconds: float, dbfs: float = -25.0) -> Int16Array:
    """Hold music: an arpeggio of plucked notes over a sustained chord."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (130.81, 164.81, 196.00)) * 0.3
    notes = (261.63, 329.63, 392.00, 523.25, 392.00, 329.63)
    note_s = 0.25
    idx = (t / note_s).astype(int)
    phase = t - idx * note_s
    freq = np.array(notes)[idx % len(notes)]
    pluck = np.sin(2 * np.pi * freq * phase) * np.exp(-phase * 6.0)
    return _at_level(chord + pluck, dbfs)


def non_speech(seconds: float = 60.0) -> dict[str, Int16Array]:
    """Each condition, ``seconds`` long, at 16 kHz."""
    return {
        "silence": np.zeros(int(seconds * RATE), np.int16),
        "white noise -35 dBFS": white_noise(seconds, -35.0, 3),
        "hum -35 dBFS": hum(seconds, -35.0),
        "babble -30 dBFS": babble(seconds, -30.0),
        "dtmf -20 dBFS": dtmf(seconds),
        "music -25 dBFS": music(seconds),
    }


def words_on_non_speech(engine: Any, seconds: float, endpointer_factory: Any) -> dict[str, list[str]]:
    """The finals the endpointer and ``engine`` produce on each condition, in 20 ms frames."""
    step = RATE // 50
    out: dict[str, list[str]] = {}
    for name, audio in non_speech(seconds).items():
        endpointer = endpointer_factory()
        stream = None
        texts: list[str] = []
        for i in range(0, audio.size, step):
            events = endpointer.process(audio[i : i + step])
            if i + step >= audio.size:
                events += endpointer.finish()
            for ev in events:
                if ev.kind == "start":
                    stream = engine.open()
                elif ev.kind == "audio" and stream is not None and ev.audio is not None:
                    stream.accept(ev.audio)
                elif ev.kind in ("end", "abandon") and stream is not None:
                    if ev.kind == "end":
                        text = stream.finish().text
                        if text:
                            texts.append(text)
                    else:
                        stream.cancel()
                    stream = None
        out[name] = texts
    return out
