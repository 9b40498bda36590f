"""A local server speaking Deepgram's streaming protocol (``/v1/listen`` websocket).

It checks the ``Authorization: Token <key>`` header and the query parameters, receives
binary linear16 audio and the ``KeepAlive`` / ``Finalize`` / ``CloseStream`` control
messages, and answers in Deepgram's message formats: ``Results`` (interim and final,
with ``speech_final`` after ``endpointing`` ms of silence and ``from_finalize`` after a
``Finalize``), ``SpeechStarted``, ``UtteranceEnd`` and ``Metadata``. It does no
recognition: the transcript is scripted, revealed word by word as audio arrives.

Faults are injected per connection (see :class:`Faults`); every connection is recorded
(:class:`ConnectionRecord`) so tests can count reconnects and compare audio.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import numpy as np

SAMPLE_RATE_HZ = 16_000
BYTES_PER_SAMPLE = 2
INTERIM_EVERY_MS = 100
WORDS_PER_SECOND = 2.5
SILENCE_RMS = 200.0  # int16 RMS below which a frame counts as silence
MODEL_INFO = {"name": "2-general-nova", "version": "2024-01-11.36317", "arch": "nova-3"}


@dataclass
class Faults:
    """What to do wrong. Connection-numbered faults apply to connections 0..n-1."""

    handshake_status: int | None = None  # refuse the upgrade with this HTTP status
    retry_after_s: int | None = None  # sent with the refusal
    handshake_delay_s: float = 0.0  # sleep before answering the upgrade
    drop_after_bytes: int | None = None  # abort TCP (no close frame) after this much audio
    drop_connections: int = 1  # ... on this many connections
    malformed_after_bytes: int | None = None  # send malformed_text after this much audio
    malformed_text: str = "{not json"
    close_code: int | None = None  # close with this code after the first audio
    final_delay_s: float = 0.0  # wait this long before answering Finalize
    ignore_finalize: bool = False  # never answer Finalize or CloseStream


@dataclass
class ConnectionRecord:
    params: dict[str, list[str]]
    headers: dict[str, str]
    audio: bytearray = field(default_factory=bytearray)
    audio_messages: list[int] = field(default_factory=list)  # size of each audio message
    controls: list[str] = field(default_factory=list)
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    close_code: int | None = None
    finalize_at: float | None = None
    final_sent_at: float | None = None


class DeepgramServer:
    """Run with ``with DeepgramServer(api_key="k", transcript="...") as server:``."""

    def __init__(
        self,
        api_key: str = "test-key",
        transcript: str | list[str] = "i lost my debit card",
        faults: Faults | None = None,
        words_per_second: float = WORDS_PER_SECOND,
    ):
        """
        Args:
            transcript: what every connection "hears", or one transcript per connection
                (in turn; a reconnect moves on to the next one).
            words_per_second: how fast voiced audio reveals the transcript's words.
        """
        self.api_key = api_key
        self.transcripts = [transcript] if isinstance(transcript, str) else list(transcript)
        self.words_per_second = words_per_second
        self.faults = faults or Faults()
        self.connections: list[ConnectionRecord] = []
        self.handshakes = 0  # upgrade requests, including refused ones
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # --- lifecycle -----------------------------------------------------------------
    def __enter__(self) -> DeepgramServer:
        self._thread = threading.Thread(target=self._main, name="deepgram-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the Deepgram test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None and self._server is not None:
            loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(5)

    def _main(self) -> None:
        from websockets.asyncio.server import serve

        async def run() -> None:
            async with serve(
                self._handle,
                "127.0.0.1",
                0,
                process_request=self._process_request,
                max_size=None,
                max_queue=None,  # never stop reading: a close frame must get through
            ) as server:
                self._server = server
                self.port = server.sockets[0].getsockname()[1]
                self._loop = asyncio.get_running_loop()
                self._ready.set()
                await server.wait_closed()

        asyncio.run(run())

    def wait_closed(self, count: int, timeout_s: float = 5.0) -> bool:
        """Wait until ``count`` connections have ended (the client hung up or we did)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(1 for c in self.connections if c.closed_at is not None) >= count:
                return True
            time.sleep(0.01)
        return False

    # --- protocol --------------------------------------------------------------------
    async def _process_request(self, connection, request):  # type: ignore[no-untyped-def]
        self.handshakes += 1
        f = self.faults
        if f.handshake_delay_s:
            await asyncio.sleep(f.handshake_delay_s)
        if urlsplit(request.path).path != "/v1/listen":
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, '{"err_code":"INVALID_AUTH"}\n')
        if f.handshake_status is not None:
            response = connection.respond(HTTPStatus(f.handshake_status), '{"err_code":"INJECTED"}\n')
            if f.retry_after_s is not None:
                response.headers["Retry-After"] = str(f.retry_after_s)
            return response
        return None

    async def _handle(self, ws) -> None:  # type: ignore[no-untyped-def]
        record = ConnectionRecord(
            params=parse_qs(urlsplit(ws.request.path).query),
            headers={k.lower(): v for k, v in ws.request.headers.raw_items()},
        )
        index = len(self.connections)
        self.connections.append(record)
        words = self.transcripts[index % len(self.transcripts)].split()
        endpointing_ms = int(record.params.get("endpointing", ["10"])[0])
        state = _Utterance(record, words, endpointing_ms, self.words_per_second)
        f = self.faults
        request_id = str(uuid.uuid4())
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in ws:
                if isinstance(message, bytes):
                    record.audio.extend(message)
                    record.audio_messages.append(len(message))
                    size = len(record.audio)
                    if (
                        f.drop_after_bytes is not None
                        and index < f.drop_connections
                        and size >= f.drop_after_bytes
                    ):
                        ws.transport.abort()  # vanish: no close frame, like a dead network
                        return
                    if f.malformed_after_bytes is not None and size >= f.malformed_after_bytes:
                        await ws.send(f.malformed_text)
                        f.malformed_after_bytes = None
                    if f.close_code is not None:
                        await ws.close(f.close_code, "DATA-0000: injected")
                        return
                    for out in state.feed(message, request_id):
                        await ws.send(json.dumps(out))
                    continue
                kind = json.loads(message).get("type")
                record.controls.append(kind)
                if kind == "KeepAlive" or f.ignore_finalize:
                    continue
                if kind == "Finalize":
                    record.finalize_at = time.monotonic()
                    if f.final_delay_s:
                        await asyncio.sleep(f.final_delay_s)
                    for out in state.finalize(request_id):
                        await ws.send(json.dumps(out))
                    record.final_sent_at = time.monotonic()
                elif kind == "CloseStream":
                    for out in state.finalize(request_id, from_finalize=False):
                        await ws.send(json.dumps(out))
                    await ws.send(json.dumps(_metadata(request_id, state.seconds)))
                    await ws.close(1000)
                    return
        except ConnectionClosed:
            pass  # the client vanished; recorded below
        finally:
            record.closed_at = time.monotonic()
            record.close_code = ws.close_code


def _metadata(request_id: str, seconds: float) -> dict:
    return {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": "0" * 64,
        "created": "2026-01-01T00:00:00.000Z",
        "duration": round(seconds, 3),
        "channels": 1,
        "models": [str(uuid.uuid4())],
        "model_info": {},
    }


class _Utterance:
    """Scripted recognition: words revealed in proportion to the voiced audio received."""

    def __init__(
        self, record: ConnectionRecord, words: list[str], endpointing_ms: int, words_per_second: float
    ):
        self.record = record
        self.words_per_second = words_per_second
        self.words = words
        self.endpointing_ms = endpointing_ms
        self.voiced_s = 0.0
        self.silent_ms = 0.0
        self.final_words = 0  # words already sent as is_final
        self.final_until_s = 0.0  # audio time covered by finals
        self.since_interim_ms = 0.0
        self.started = False
        self.carry = b""
        self.fed_samples = 0

    @property
    def seconds(self) -> float:
        """Audio judged so far (the stream position)."""
        return self.fed_samples / SAMPLE_RATE_HZ

    def _revealed(self) -> int:
        return min(len(self.words), int(self.voiced_s * self.words_per_second + 0.5))

    def _results(
        self,
        request_id: str,
        upto: int,
        *,
        is_final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> dict:
        words = self.words[self.final_words : upto]
        start = self.final_until_s
        duration = max(0.0, self.seconds - start)
        step = duration / max(1, len(words))
        out = {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(duration, 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {
                "alternatives": [
                    {
                        "transcript": " ".join(words),
                        "confidence": 0.9 if words else 0.0,
                        "words": [
                            {
                                "word": w,
                                "start": round(start + i * step, 3),
                                "end": round(start + (i + 1) * step, 3),
                                "confidence": 0.9,
                                "punctuated_word": w,
                            }
                            for i, w in enumerate(words)
                        ],
                    }
                ]
            },
            "metadata": {"request_id": request_id, "model_info": MODEL_INFO, "model_uuid": str(uuid.uuid4())},
        }
        if from_finalize:
            out["from_finalize"] = True
        if is_final:
            self.final_words = upto
            self.final_until_s = self.seconds
        return out

    def feed(self, data: bytes, request_id: str) -> list[dict]:
        """Audio is judged 20 ms at a time, however the client sized its messages."""
        data = self.carry + data
        whole = len(data) - len(data) % BYTES_PER_SAMPLE
        self.carry = data[whole:]
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.float64)
        step = SAMPLE_RATE_HZ // 50
        out: list[dict] = []
        for i in range(0, samples.size, step):
            out += self._feed_piece(samples[i : i + step], request_id)
        return out

    def _feed_piece(self, samples: np.ndarray, request_id: str) -> list[dict]:
        self.fed_samples += samples.size
        ms = samples.size * 1000.0 / SAMPLE_RATE_HZ
        out: list[dict] = []
        if float(np.sqrt(np.mean(samples**2))) >= SILENCE_RMS:
            if not self.started:
                self.started = True
                out.append({"type": "SpeechStarted", "channel": [0], "timestamp": round(self.seconds, 3)})
            self.voiced_s += ms / 1000.0
            self.silent_ms = 0.0
        else:
            self.silent_ms += ms
        self.since_interim_ms += ms
        upto = self._revealed()
        if self.silent_ms >= self.endpointing_ms and upto > self.final_words:
            out.append(self._results(request_id, upto, is_final=True, speech_final=True))
            out.append({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(self.seconds, 3)})
        elif self.since_interim_ms >= INTERIM_EVERY_MS and upto > self.final_words:
            self.since_interim_ms = 0.0
            out.append(self._results(request_id, upto, is_final=False))
        return out

    def finalize(self, request_id: str, from_finalize: bool = True) -> list[dict]:
        """Everything heard but not final yet, as one final result."""
        upto = self._revealed()
        if upto <= self.final_words and not from_finalize:
            return []
        return [self._results(request_id, upto, is_final=True, from_finalize=from_finalize)]
