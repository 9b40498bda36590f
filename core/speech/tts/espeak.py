"""Offline speech synthesis with the espeak-ng library shipped in ``espeakng-loader``.

No apt package is needed: the wheel carries ``libespeak-ng.so`` and its data. The
library is process-global and not re-entrant, so calls are serialised with a lock.
Output is 22,050 Hz mono int16.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import AsyncIterator, Callable

import numpy as np

from core.speech.audio import Int16Array
from core.speech.tts import TTSError
from core.speech.tts.cache import CACHE_PHRASES, PhraseCache

ESPEAK_SAMPLE_RATE_HZ = 22_050  # what espeak_Initialize reports for its voices
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    _instance: _Espeak | None = None
    _init_lock = threading.Lock()

    def __init__(self) -> None:
        import espeakng_loader

        self.lock = threading.Lock()
        self.lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
        data = str(espeakng_loader.get_data_path()).encode()
        # espeak_Initialize(output, buflength_ms, path, options)
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, data, 0)
        if rate <= 0:
            raise TTSError(f"espeak-ng failed to initialise (code {rate})")
        self.sample_rate = int(rate)
        self._chunks: list[Int16Array] = []
        self._cancel = False

        def _callback(wav: ctypes.Any, n: int, _events: ctypes.c_void_p) -> int:  # type: ignore[name-defined]
            if n > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 1 if self._cancel else 0

        self._cb = _SYNTH_CALLBACK(_callback)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._cb)
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]

    @classmethod
    def get(cls) -> _Espeak:
        with cls._init_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def synth(self, text: str, voice: str, rate_wpm: int, pitch: int) -> Int16Array:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise TTSError(f"espeak-ng has no voice {voice!r}")
            self.lib.espeak_SetParameter(_ESPEAK_RATE, int(rate_wpm), 0)
            self.lib.espeak_SetParameter(_ESPEAK_PITCH, int(pitch), 0)
            self._chunks = []
            self._cancel = False
            buf = text.encode("utf-8") + b"\0"
            code = self.lib.espeak_Synth(buf, len(buf), 0, 0, 0, _ESPEAK_CHARS_UTF8, None, None)
            if code != 0:
                raise TTSError(f"espeak-ng synthesis failed (code {code})")
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def synthesize(text: str, voice: str = "en-us", rate_wpm: int = 165, pitch: int = 50) -> Int16Array:
    """Speak ``text``; returns 22,050 Hz mono int16 samples.

    Raises:
        TTSError: unknown voice or a synthesis failure.
    """
    if not text.strip():
        return np.zeros(0, np.int16)
    return _Espeak.get().synth(text, voice, rate_wpm, pitch)


def speak_16k(text: str, **kwargs: object) -> Int16Array:
    """Synthesise at the pipeline rate (16 kHz), for scripted calls and evaluation."""
    from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, resample

    return resample(synthesize(text, **kwargs), ESPEAK_SAMPLE_RATE_HZ, PIPELINE_SAMPLE_RATE_HZ)  # type: ignore[arg-type]


def script_audio(
    sentences: list[str], gap_s: float = 1.0, lead_s: float = 1.0,
    speak: Callable[[str], Int16Array] | None = None, **kwargs: object,
) -> tuple[Int16Array, list[tuple[float, float, str]]]:
    """Several sentences with silence between them, and where each one is (ms).

    ``speak`` voices a sentence at 16 kHz (default: espeak-ng with ``kwargs``; e.g.
    :func:`core.speech.tts.piper.speak_16k` for the neural voice).

    Returns:
        (16 kHz int16 audio, [(start_ms, end_ms, sentence), ...])
    """
    from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ as rate

    parts = [np.zeros(int(lead_s * rate), np.int16)]
    spans: list[tuple[float, float, str]] = []
    pos = parts[0].size
    for sentence in sentences:
        speech = speak(sentence) if speak is not None else speak_16k(sentence, **kwargs)
        # the voices pad with a little silence; report the voiced span
        voiced = np.flatnonzero(np.abs(speech) > 300)
        first, last = (int(voiced[0]), int(voiced[-1])) if voiced.size else (0, speech.size)
        spans.append(((pos + first) * 1000 / rate, (pos + last) * 1000 / rate, sentence))
        parts.append(speech)
        gap = np.zeros(int(gap_s * rate), np.int16)
        parts.append(gap)
        pos += speech.size + gap.size
    return np.concatenate(parts), spans


def write_wav(path: str, samples: Int16Array, sample_rate_hz: int) -> None:
    import wave

    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate_hz)
        w.writeframes(samples.astype("<i2").tobytes())


CHUNK_MS = 40


class EspeakTTS:
    """Streaming offline TTS engine with a small cache for repeated phrases.

    Synthesis of one clause takes a few milliseconds, so each piece of text is
    synthesised whole in a worker thread and then yielded in ``CHUNK_MS`` chunks.
    """

    name = "espeak"

    def __init__(self, voice: str = "en-us", rate_wpm: int = 165, pitch: int = 50, cache_size: int = CACHE_PHRASES):
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.pitch = pitch
        self.sample_rate_hz = ESPEAK_SAMPLE_RATE_HZ
        self.cache = PhraseCache(cache_size)
        synthesize("ok", voice=voice)  # load the library and voice now, not mid-call

    @property
    def cache_hits(self) -> int:
        return self.cache.hits

    def synthesize(self, text: str) -> Int16Array:
        return self.cache.through(
            text, lambda t: synthesize(t, voice=self.voice, rate_wpm=self.rate_wpm, pitch=self.pitch)
        )

    def prepare(self, text: str) -> None:
        """Synthesise ``text`` into the phrase cache ahead of time."""
        self.synthesize(text)

    async def stream(self, text: str, previous_text: str = "") -> AsyncIterator[Int16Array]:
        audio = await asyncio.to_thread(self.synthesize, text)
        step = self.sample_rate_hz * CHUNK_MS // 1000
        for i in range(0, audio.size, step):
            yield audio[i : i + step]
            await asyncio.sleep(0)
