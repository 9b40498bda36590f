"""The embedded neural recogniser (Moonshine base) behind the :class:`~core.speech.stt.STTEngine` interface.

Moonshine is not a streaming model: it transcribes a stretch of audio at a time, at a
cost that grows with the audio (no 30 s padding, unlike Whisper). How a stream uses it:

* **Partials** re-decode the utterance so far every :data:`PARTIAL_EVERY_MS` of new
  audio, on the shared :class:`~core.speech.stt.decode_pool.DecodePool`, only when a decode
  thread is free. ``partial()`` never waits: it returns the last decoded text. Measured
  cost and the alternatives are in ``docs/speech.md``.
* **Early final.** The session asks for ``settled_text(speech_end_ms)`` on each chunk of
  a pause. Once the pause reaches :data:`TAIL_MS`, the stream decodes the utterance up
  to the speech end plus that tail, while the endpointer is still waiting out the
  end-of-utterance silence. If the caller goes on, the decode is cancelled; if the
  utterance ends there, ``finish`` takes the result (the same audio it would decode),
  so the transcript is ready about when the endpointer fires. The text is also offered
  as settled words, so the voice agent starts its reply during the pause.
* **Domain vocabulary.** Words of the KB get a small bonus in the decoder
  (:mod:`core.speech.stt.vocabulary`), refreshed when the KB changes.
* **No invented text.** A decode whose mean token log-probability is below
  :data:`MIN_MEAN_LOGPROB`, or that loops, yields nothing (``docs/speech.md`` has the
  noise measurements).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array, int16_to_float
from core.speech.stt import STTError, Transcript
from core.speech.stt.decode_pool import EARLY, FINAL, PARTIAL, DecodePool, Job

PARTIAL_EVERY_MS = 700.0  # new audio between two partial decodes
TAIL_MS = 150.0  # audio after the last voiced frame that is decoded with the utterance
FINISH_TIMEOUT_S = 10.0  # past this the chain fails over (pocketsphinx replays the audio)
# Below this mean log-probability per token the model is guessing (noise, music, tones).
# Clear speech decodes at -0.01 to -0.3, phone-band speech down to ~-0.5 (docs/speech.md).
MIN_MEAN_LOGPROB = -1.0
_REPEAT = re.compile(r"\b(\w+(?:\W+\w+){0,3})(?:\W+\1\b){3,}", re.IGNORECASE)


class Recognizer(Protocol):
    """What the engine needs of a model (``MoonshineModel``, or a fake in tests)."""

    def transcribe(self, audio: np.ndarray, cancelled: Callable[[], bool] | None = None) -> Any: ...


def believable(decoded: Any) -> str:
    """The decoded text, or "" when it is what a model says on noise.

    Drops decodes the model was unsure of, and loops (a phrase said four times or more in
    a row, which greedy decoders fall into on non-speech).
    """
    text = str(decoded.text).strip()
    if not text or decoded.tokens == 0 or getattr(decoded, "cancelled", False):
        return ""
    if decoded.mean_logprob < MIN_MEAN_LOGPROB:
        return ""
    if _REPEAT.search(text):
        return ""
    return text


class NeuralEngine:
    """Factory of utterance streams sharing one model and one decode pool.

    Args:
        model: the recogniser (thread-safe ``transcribe``).
        pool: decode threads (shared across engines of one process).
        name: provider name in events and metrics.
        partial_every_ms: new audio between two partial decodes (0: no partials).
        tail_ms: audio after the speech end that is decoded; also the pause before the
            early final starts.
        finish_timeout_s: how long ``finish`` waits for its decode.
    """

    def __init__(
        self,
        model: Recognizer,
        pool: DecodePool,
        name: str = "moonshine",
        partial_every_ms: float = PARTIAL_EVERY_MS,
        tail_ms: float = TAIL_MS,
        finish_timeout_s: float = FINISH_TIMEOUT_S,
    ):
        self.model = model
        self.pool = pool
        self.name = name
        self.partial_every_ms = partial_every_ms
        self.tail_ms = tail_ms
        self.finish_timeout_s = finish_timeout_s
        self.bias: Any = None  # a VocabularyBias (KB words); replaced when the KB changes

    def set_vocabulary(self, texts: list[str]) -> None:
        """Favour the words of ``texts`` (the KB and the pack's phrases) from the next decode."""
        from core.speech.stt.vocabulary import vocabulary_bias

        if hasattr(self.model, "token_ids"):
            self.bias = vocabulary_bias(self.model, texts)

    def open(self) -> NeuralStream:
        return NeuralStream(self)

    def decode(self, audio: Int16Array, priority: int, key: Any = None) -> Job:
        """Queue a decode of ``audio`` (int16, 16 kHz); converted on the pool's thread, not
        the caller's (the session loop)."""
        bias = self.bias
        extra = () if bias is None else (bias,)
        return self.pool.submit(
            lambda cancelled: self.model.transcribe(int16_to_float(audio), cancelled, *extra), priority, key
        )


class NeuralStream:
    """One utterance: audio kept, decoded in the pool (see the module docstring)."""

    settles_on_poll = True  # settled words come from a decode the session's pause polls start

    def __init__(self, engine: NeuralEngine):
        self._engine = engine
        self._chunks: list[Int16Array] = []
        self._samples = 0
        self._audio: Int16Array | None = None  # the chunks joined, while no audio is added
        self._partial_text = ""
        self._partial_job: Job | None = None
        self._partial_at = 0  # samples the last partial decode covered
        self._early: Job | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.on_final: Callable[[], None] | None = None  # told when the early final is ready

    # --- audio -------------------------------------------------------------------
    def accept(self, samples: Int16Array) -> None:
        if self._closed:
            raise STTError("utterance stream already closed")
        chunk = np.asarray(samples, dtype=np.int16)
        if chunk.size:
            self._chunks.append(chunk.copy())
            self._samples += chunk.size
            self._audio = None

    def _joined(self) -> Int16Array:
        if self._audio is None:
            self._audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            self._chunks = [self._audio] if self._audio.size else []
        return self._audio

    def _ms(self, samples: int) -> float:
        return samples * 1000.0 / PIPELINE_SAMPLE_RATE_HZ

    def _upto(self, speech_end_ms: float | None) -> Int16Array:
        audio = self._joined()
        if speech_end_ms is None:
            return audio
        end = int((speech_end_ms + self._engine.tail_ms) * PIPELINE_SAMPLE_RATE_HZ / 1000.0)
        return audio[: max(0, min(audio.size, end))]

    # --- partials ----------------------------------------------------------------
    def partial(self) -> str:
        if self._closed:
            return ""
        job = self._partial_job
        if job is not None and job.done:
            self._partial_job = None
            if job.error is None and job.result is not None:
                text = believable(job.result)
                if text:
                    self._partial_text = text
        every = self._engine.partial_every_ms
        if (
            every > 0 and self._partial_job is None
            and self._ms(self._samples - self._partial_at) >= every and self._engine.pool.idle()
        ):
            self._partial_at = self._samples
            self._partial_job = self._engine.decode(self._joined(), PARTIAL)
        return self._partial_text

    # --- early final ---------------------------------------------------------------
    def settled_text(self, speech_end_ms: float) -> str | None:
        """The utterance's text up to ``speech_end_ms`` once the pause is long enough to
        decode it (None until that decode is done; a new speech end starts a new one)."""
        if self._closed:
            return None
        early = self._early
        if early is not None and early.key != speech_end_ms:
            early.cancel()  # the caller went on: that decode no longer ends the utterance
            early = self._early = None
        if early is None:
            if self._ms(self._samples) < speech_end_ms + self._engine.tail_ms:
                return None  # the pause is still shorter than the tail decoded with it
            early = self._early = self._engine.decode(self._upto(speech_end_ms), EARLY, key=speech_end_ms)
            early.on_done(self._early_done)
        if not early.done or early.error is not None or early.result is None:
            return None
        return believable(early.result) or None

    def _early_done(self, job: Job) -> None:
        callback = self.on_final
        if callback is not None and job is self._early and not job.cancelled:
            callback()

    # --- end -------------------------------------------------------------------------
    def finish(self, speech_end_ms: float | None = None) -> Transcript:
        if self._closed:
            raise STTError("utterance stream already closed")
        self._closed = True
        if self._partial_job is not None:
            self._partial_job.cancel()
        early, self._early = self._early, None
        audio = self._upto(speech_end_ms)
        if early is not None and (early.key != speech_end_ms or early.cancelled):
            early.cancel()
            early = None
        job = early or self._engine.decode(audio, FINAL)
        started = time.monotonic()
        if not job.wait(self._engine.finish_timeout_s):
            job.cancel()
            raise STTError(f"the offline recogniser took over {self._engine.finish_timeout_s:.0f} s")
        if job.error is not None:
            raise STTError(f"decoding failed: {job.error}") from job.error
        decoded = job.result
        text = believable(decoded)
        waited_ms = (time.monotonic() - started) * 1000.0
        cpu_ms = float(getattr(decoded, "encode_ms", 0.0)) + float(getattr(decoded, "decode_ms", 0.0))
        return Transcript(
            text=text,
            confidence=round(math.exp(decoded.mean_logprob), 3) if text else None,
            decode_ms=cpu_ms or waited_ms,
            audio_ms=self._ms(audio.size),
        )

    def cancel(self) -> None:
        if self._closed:
            return
        self._closed = True
        for job in (self._partial_job, self._early):
            if job is not None:
                job.cancel()
        self._early = None


_pool_lock = threading.Lock()
_pools: dict[int, DecodePool] = {}


def shared_pool(workers: int | None = None) -> DecodePool:
    """The process's decode threads (one pool per size; calls share it)."""
    with _pool_lock:
        pool = _pools.get(workers or 0)
        if pool is None:
            pool = _pools[workers or 0] = DecodePool(workers)
        return pool


def build_moonshine(settings: object, vocabulary: list[str] | None = None) -> NeuralEngine:
    """The embedded neural engine configured from settings, favouring the words of
    ``vocabulary`` (KB and phrase texts) when ``VC_STT_VOCABULARY`` is on.

    Raises:
        STTError: the model package is missing (its name is in the message) or broken.
    """
    from core.speech.stt.moonshine_model import shared_model

    workers = int(getattr(settings, "stt_decode_threads", 0) or 0) or None
    partial_every = float(getattr(settings, "stt_partial_every_ms", PARTIAL_EVERY_MS))
    engine = NeuralEngine(shared_model(1), shared_pool(workers), partial_every_ms=partial_every)
    if vocabulary and getattr(settings, "stt_vocabulary", True):
        engine.set_vocabulary(vocabulary)
    return engine
