"""Streaming speech synthesis with ElevenLabs (``elevenlabs`` SDK 2.x, HTTP streaming).

``POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000`` returns raw
16-bit little-endian mono PCM at 16 kHz, the pipeline's own rate, so the agent plays it
without resampling. Chunk boundaries are wherever the network put them: a trailing odd
byte is carried into the next chunk, never dropped or misaligned.

The generator pulls from the HTTP response only as it is consumed; when the consumer
stops (barge-in cancels the agent's task, or ``aclose()``), the response is closed and
the connection with it, so ElevenLabs stops generating and nothing is read ahead.

One ``AsyncElevenLabs`` client (and its connection pool) is kept per event loop: each
voice session runs its own loop, and httpx connections cannot cross loops.
"""

from __future__ import annotations

import json
import weakref
from asyncio import AbstractEventLoop, get_running_loop
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from core.resilience.errors import ErrorKind, ProviderError, kind_from_status, parse_retry_after
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array
from core.speech.tts import TTSError

PROVIDER = "elevenlabs"
DEFAULT_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"  # "Rachel", one of ElevenLabs' premade voices
DEFAULT_MODEL = "eleven_flash_v2_5"  # ~75 ms to first byte per ElevenLabs
OUTPUT_FORMAT = f"pcm_{PIPELINE_SAMPLE_RATE_HZ}"
# Each network wait (connect, first byte, next chunk) may take this long before we give up.
READ_TIMEOUT_S = 5.0
# Hand audio over as the network delivers it: the SDK's default (1,024-byte chunks) makes
# httpx hold back a first packet smaller than that until the next one arrives.
CHUNK_BYTES: int | None = None
_BYTES_PER_SAMPLE = 2
# How much of what was said before a piece is sent as its ``previous_text``: the end of
# the reply so far is what shapes the next piece's intonation.
PREVIOUS_TEXT_CHARS = 300


class ElevenLabsError(ProviderError, TTSError):
    """An ElevenLabs failure: a :class:`ProviderError` the agent also handles as a TTS error."""

    def __init__(self, kind: ErrorKind, message: str, **kwargs: Any):
        super().__init__(PROVIDER, kind, message, **kwargs)


def _body_text(body: Any) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    if isinstance(body, str):
        return body
    try:
        return json.dumps(body)
    except (TypeError, ValueError):
        return str(body)


def translate_error(exc: BaseException) -> ElevenLabsError:
    """Our vocabulary for an SDK/httpx exception (the SDK's own types stay here)."""
    if isinstance(exc, ElevenLabsError):
        return exc
    import httpx

    status = getattr(exc, "status_code", None)  # elevenlabs.core.api_error.ApiError
    if status is not None:
        headers = {str(k).lower(): v for k, v in (getattr(exc, "headers", None) or {}).items()}
        body = _body_text(getattr(exc, "body", ""))
        # ElevenLabs reports exhausted credits as 401 "quota_exceeded", not 402/429.
        kind = ErrorKind.QUOTA if "quota_exceeded" in body else kind_from_status(int(status), body)
        return ElevenLabsError(
            kind,
            f"HTTP {status}: {body[:200]}",
            retry_after_s=parse_retry_after(headers.get("retry-after")),
            status=int(status),
        )
    if isinstance(exc, httpx.TimeoutException):
        return ElevenLabsError(
            ErrorKind.TIMEOUT, f"no answer within {READ_TIMEOUT_S:.0f} s ({type(exc).__name__})"
        )
    if isinstance(exc, httpx.TransportError | OSError):
        return ElevenLabsError(ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}")
    return ElevenLabsError(ErrorKind.MALFORMED, f"unexpected {type(exc).__name__}: {exc}")


class ElevenLabsTTS:
    """ElevenLabs streaming synthesiser yielding 16 kHz int16 chunks."""

    name = PROVIDER
    sample_rate_hz = PIPELINE_SAMPLE_RATE_HZ

    def __init__(
        self,
        api_key: str,
        *,
        voice_id: str = DEFAULT_VOICE_ID,
        model_id: str = DEFAULT_MODEL,
        base_url: str | None = None,
        read_timeout_s: float = READ_TIMEOUT_S,
    ):
        """
        Args:
            api_key: sent as ``xi-api-key``.
            voice_id, model_id: the ElevenLabs voice and model.
            base_url: API base (``http://127.0.0.1:port`` in tests); None: ElevenLabs'.
            read_timeout_s: limit on each network wait (see ``READ_TIMEOUT_S``).

        Raises:
            ElevenLabsError: the ``elevenlabs`` SDK is not installed (kind ``bad_request``).
        """
        try:
            import httpx
            from elevenlabs.client import AsyncElevenLabs
        except ImportError as exc:
            raise ElevenLabsError(
                ErrorKind.BAD_REQUEST,
                "the elevenlabs SDK is not installed: pip install 'elevenlabs>=2,<3' "
                "(or choose VC_TTS_PROVIDER=espeak)",
            ) from exc
        self._client_class = AsyncElevenLabs
        self._http_class = httpx.AsyncClient
        # Built once: loading the CA bundle costs ~20 ms, which every session's first
        # sentence would otherwise pay when its loop gets its own client.
        self._ssl_context = httpx.create_ssl_context()
        self._api_key = api_key
        self.voice_id = voice_id
        self.model_id = model_id
        self.base_url = base_url.rstrip("/") if base_url else None
        self.read_timeout_s = read_timeout_s
        self._clients: weakref.WeakKeyDictionary[AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    def _client(self) -> Any:
        loop = get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            http = self._http_class(
                verify=self._ssl_context, timeout=self.read_timeout_s, follow_redirects=True
            )
            kwargs: dict[str, Any] = {
                "api_key": self._api_key,
                "timeout": self.read_timeout_s,
                "httpx_client": http,
            }
            if self.base_url:
                kwargs["base_url"] = self.base_url
            client = self._client_class(**kwargs)
            self._clients[loop] = client
        return client

    async def stream(self, text: str, previous_text: str = "") -> AsyncIterator[Int16Array]:
        """Speak ``text``; yields int16 chunks at 16 kHz as they arrive.

        ``previous_text`` (the reply so far) goes to ElevenLabs as ``previous_text`` so a
        reply spoken in pieces keeps one intonation.

        Raises:
            ElevenLabsError: refused (auth, quota, rate limit with ``retry_after_s``),
                timed out, or the connection failed or dropped mid-stream.
        """
        if not text.strip():
            return
        context: dict[str, Any] = {}
        if previous_text.strip():
            context["previous_text"] = previous_text.strip()[-PREVIOUS_TEXT_CHARS:]
        chunks = self._client().text_to_speech.stream(
            self.voice_id,
            text=text,
            model_id=self.model_id,
            output_format=OUTPUT_FORMAT,
            request_options={"chunk_size": CHUNK_BYTES},
            **context,
        )
        carry = b""
        try:
            while True:
                try:
                    data = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise translate_error(exc) from exc
                data = carry + data
                whole = len(data) - len(data) % _BYTES_PER_SAMPLE
                carry = data[whole:]
                if whole:
                    yield np.frombuffer(data[:whole], dtype="<i2").astype(np.int16)
        finally:
            await chunks.aclose()  # closes the HTTP response: the server sees the disconnect
        if carry:
            raise ElevenLabsError(ErrorKind.MALFORMED, "the audio ended on half a sample")


def build_elevenlabs_tts(settings: Any) -> ElevenLabsTTS:
    """The ElevenLabs engine configured from settings (key, voice, model, base URL).

    Raises:
        ElevenLabsError: no key (kind ``auth``) or the SDK is missing.
    """
    key = getattr(settings, "elevenlabs_api_key", None)
    if not key:
        raise ElevenLabsError(ErrorKind.AUTH, "ELEVENLABS_API_KEY is not set")
    return ElevenLabsTTS(
        key,
        voice_id=settings.elevenlabs_voice_id,
        model_id=settings.elevenlabs_model,
        base_url=settings.elevenlabs_base_url,
    )
