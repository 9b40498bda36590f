"""Whisper transcription (OpenAI ``/audio/transcriptions``) as an STT engine.

Recorded-audio transcription, not streaming: an utterance's audio is kept while the
caller speaks (no partials) and posted as one WAV when it ends. The SDK is imported on
first use; ``OPENAI_BASE_URL`` is honoured like the chat adapter.
"""

from __future__ import annotations

import io
import time
import wave

import numpy as np

from core.providers.openai_llm import OpenAIClients, openai_error
from core.resilience.errors import ErrorKind, ProviderError
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array
from core.speech.stt import STTError, Transcript


class WhisperError(ProviderError, STTError):
    """A Whisper failure: in the provider vocabulary, and an STTError for the session."""


def wav_bytes(samples: Int16Array, rate_hz: int) -> bytes:
    """Mono 16-bit PCM WAV."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(np.asarray(samples, dtype=np.int16).tobytes())
    return buffer.getvalue()


class WhisperSTT:
    """:class:`~core.speech.stt.STTEngine` posting each utterance to ``/audio/transcriptions``.

    Args:
        api_key: ``OPENAI_API_KEY``.
        model: transcription model (``VC_OPENAI_STT_MODEL``).
        base_url: ``OPENAI_BASE_URL``, None for the SDK default.
        timeout_s: a request's read timeout (the STT budget).
        language: ISO-639-1 hint.
        sample_rate_hz: rate of the audio the session feeds.
    """

    name = "whisper"

    def __init__(
        self,
        api_key: str,
        model: str = "whisper-1",
        base_url: str | None = None,
        timeout_s: float = 10.0,
        language: str = "en",
        sample_rate_hz: int = PIPELINE_SAMPLE_RATE_HZ,
    ):
        self.model = model
        self.language = language
        self.sample_rate_hz = sample_rate_hz
        self.clients = OpenAIClients(api_key, base_url, timeout_s)

    def open(self) -> WhisperUtterance:
        return WhisperUtterance(self)

    def transcribe(self, samples: Int16Array) -> str:
        """The text of ``samples`` (mono int16 at ``sample_rate_hz``).

        Raises:
            WhisperError: the request failed or the answer had no text.
        """
        try:
            result = self.clients.sync().audio.transcriptions.create(
                model=self.model,
                file=("utterance.wav", wav_bytes(samples, self.sample_rate_hz), "audio/wav"),
                language=self.language,
                response_format="json",
            )
        except Exception as exc:
            raise openai_error(self.name, exc, WhisperError) from exc
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise WhisperError(self.name, ErrorKind.MALFORMED, "transcription without text")
        return text

    def probe(self, timeout_s: float) -> str:
        try:
            models = self.clients.sync().with_options(timeout=timeout_s).models.list()
            return f"{sum(1 for _ in models.data)} models available"
        except Exception as exc:
            raise openai_error(self.name, exc, WhisperError) from exc


class WhisperUtterance:
    """One utterance's audio, transcribed when it ends."""

    def __init__(self, engine: WhisperSTT):
        self._engine = engine
        self._chunks: list[Int16Array] = []

    def accept(self, samples: Int16Array) -> None:
        self._chunks.append(np.asarray(samples, dtype=np.int16).copy())

    def partial(self) -> str:
        return ""  # recorded-audio transcription has no partial results

    def finish(self, speech_end_ms: float | None = None) -> Transcript:
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        started = time.monotonic()
        text = self._engine.transcribe(audio)
        return Transcript(
            text.strip(),
            None,
            decode_ms=(time.monotonic() - started) * 1000.0,
            audio_ms=audio.size * 1000.0 / self._engine.sample_rate_hz,
        )

    def cancel(self) -> None:
        self._chunks.clear()
