"""Simulated cloud providers on 127.0.0.1, answering after published latency profiles.

Used to measure what our pipeline adds on top of the providers, with the real adapters
(the vendors' SDKs) doing the talking:

* :class:`SimulatedDeepgram`: Deepgram's ``/v1/listen`` websocket. It sends one final
  ``Results`` message (the scripted transcript) the profile's STT delay after the
  speech ends (``final_on="speech_end"``: as Deepgram's own endpointing does, the end
  found by the audio's level, while the audio keeps coming) or after a ``Finalize``
  (``"finalize"``), then ``Metadata`` and a close on ``CloseStream``. No interim
  results and no recognition: only the timing of the final matters here.
* :class:`SimulatedElevenLabs`: ElevenLabs' streaming ``text-to-speech`` endpoint; the
  first PCM byte leaves after the profile's TTS delay, the rest follows at once.
* :class:`SimulatedOpenAI`: OpenAI's streaming ``/v1/chat/completions`` (server-sent
  events); the first token leaves after the profile's LLM delay, the rest one every
  :data:`LLM_TOKEN_INTERVAL_MS`. What it says comes from a callable given the caller's
  latest message (the benchmark passes the offline responder's reply, so replies and
  their first clause have realistic lengths).

Delays are drawn per request from a seeded generator, or set per turn by the caller
(:meth:`LatencyProfile.draw`), so a benchmark knows exactly what it injected.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

# Published anchors (docs/performance.md): Deepgram streaming final ≤ 300 ms, an LLM's
# first token ~400 ms, ElevenLabs first audio 75-300 ms (Flash to Turbo).
STT_FINAL_MS = 300.0
STT_JITTER_MS = 50.0  # standard deviation
LLM_FIRST_TOKEN_MS = 400.0
LLM_JITTER_MS = 100.0
LLM_TOKEN_INTERVAL_MS = 15.0  # ~65 tokens/s after the first
TTS_FIRST_AUDIO_MIN_MS = 100.0
TTS_FIRST_AUDIO_MAX_MS = 300.0
TTS_MS_OF_AUDIO_PER_CHARACTER = 65  # ~15 characters a second of speech
DEFAULT_TRANSCRIPT = "i lost my debit card"
VOICED_RMS = 100.0  # int16 RMS of a 10 ms frame above which the simulated STT hears speech


@dataclass(frozen=True)
class Delays:
    """One turn's injected provider delays (ms)."""

    stt_ms: float
    llm_ms: float
    tts_ms: float

    @property
    def total_ms(self) -> float:
        return self.stt_ms + self.llm_ms + self.tts_ms


class LatencyProfile:
    """Draws per-turn provider delays: normal STT and LLM, uniform TTS (seeded)."""

    def __init__(self, seed: int = 0, scale: float = 1.0):
        self._rng = np.random.default_rng(seed)
        self.scale = scale  # 0 turns every delay off (to measure our own floor)

    def draw(self) -> Delays:
        r = self._rng
        return Delays(
            stt_ms=self.scale * max(0.0, float(r.normal(STT_FINAL_MS, STT_JITTER_MS))),
            llm_ms=self.scale * max(0.0, float(r.normal(LLM_FIRST_TOKEN_MS, LLM_JITTER_MS))),
            tts_ms=self.scale * float(r.uniform(TTS_FIRST_AUDIO_MIN_MS, TTS_FIRST_AUDIO_MAX_MS)),
        )


# --- Deepgram ------------------------------------------------------------------------
def _final_results(
    transcript: str, seconds: float, request_id: str, from_finalize: bool = True
) -> dict[str, Any]:
    words = transcript.split()
    step = seconds / max(1, len(words))
    alternative = {
        "transcript": transcript,
        "confidence": 0.95,
        "words": [
            {"word": w, "start": i * step, "end": (i + 1) * step, "confidence": 0.95, "punctuated_word": w}
            for i, w in enumerate(words)
        ],
    }
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": seconds,
        "start": 0.0,
        "is_final": True,
        "speech_final": True,
        "from_finalize": from_finalize,
        "channel": {"alternatives": [alternative]},
        "metadata": {"request_id": request_id, "model_info": {"name": "simulated", "version": "0", "arch": "sim"},
                     "model_uuid": str(uuid.uuid4())},
    }


class SimulatedDeepgram:
    """``with SimulatedDeepgram() as dg: DeepgramSTT("sim", base_url=dg.url)``.

    Args:
        transcript: what each connection "hears"; set :attr:`transcript` between turns.
        compression: False refuses permessage-deflate, so audio frames travel as they are.
        final_delay_ms: fixed delay before each final; None draws one per connection
            from ``profile`` (the STT leg of :class:`LatencyProfile`).
        final_on: what the delay counts from: ``"finalize"``, the client's Finalize;
            ``"speech_end"``, the end of the speech in the audio (the wall-clock time
            its last voiced sample was sent, audio being streamed in real time), so the
            final can arrive before the client asks; a Finalize then gets it at that
            same time, or at once when it has gone out already.
    """

    def __init__(
        self,
        transcript: str = DEFAULT_TRANSCRIPT,
        final_delay_ms: float | None = None,
        profile: LatencyProfile | None = None,
        compression: bool = True,
        final_on: str = "finalize",
    ):
        if final_on not in ("finalize", "speech_end"):
            raise ValueError(f"final_on must be 'finalize' or 'speech_end', not {final_on!r}")
        self.final_on = final_on
        self.transcript = transcript
        self.compression = compression  # accept permessage-deflate, as websockets servers do
        self.final_delay_ms = final_delay_ms
        self.profile = profile or LatencyProfile()
        self.connections = 0
        self.injected_ms: list[float] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> SimulatedDeepgram:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="sim-deepgram", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the simulated Deepgram server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(5)

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, max_size=None, max_queue=None,
                         compression="deflate" if self.compression else None) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def _delay_ms(self) -> float:
        return self.final_delay_ms if self.final_delay_ms is not None else self.profile.draw().stt_ms

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self.connections += 1
        transcript, request_id = self.transcript, str(uuid.uuid4())
        heard = _HeardSpeech()
        delay_ms = self._delay_ms()
        final: asyncio.Task[None] | None = None  # the final, due at speech end + delay

        async def send_final_at(due: float, from_finalize: bool) -> None:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            self.injected_ms.append(delay_ms)
            heard.final_sent = True
            await ws.send(json.dumps(_final_results(transcript, heard.seconds, request_id, from_finalize)))

        try:
            async for message in ws:
                if isinstance(message, bytes):
                    if self.final_on == "finalize":  # only the length matters
                        heard.samples += len(message) // 2
                        continue
                    heard.add(message)
                    if not heard.final_sent:
                        if heard.speaking and final is not None:
                            final.cancel()  # the speech went on: its end is later
                            final = None
                        elif not heard.speaking and heard.speech_end_at is not None and final is None:
                            final = asyncio.ensure_future(
                                send_final_at(heard.speech_end_at + delay_ms / 1000.0, False)
                            )
                    continue
                kind = json.loads(message).get("type")
                if kind == "Finalize":
                    if heard.final_sent:  # nothing left to flush: an empty final, at once
                        await ws.send(json.dumps(_final_results("", 0.0, request_id)))
                        continue
                    due = time.monotonic() + delay_ms / 1000.0
                    if final is not None:
                        final.cancel()
                        due = heard.speech_end_at + delay_ms / 1000.0  # type: ignore[operator]
                        final = None
                    await send_final_at(due, True)
                elif kind == "CloseStream":
                    await ws.send(json.dumps({
                        "type": "Metadata", "transaction_key": "deprecated", "request_id": request_id,
                        "sha256": "0" * 64, "created": "2026-01-01T00:00:00.000Z", "duration": heard.seconds,
                        "channels": 1, "models": [], "model_info": {},
                    }))
                    await ws.close(1000)
                    return
        except ConnectionClosed:
            return
        finally:
            if final is not None:
                final.cancel()


class _HeardSpeech:
    """Where the speech in a real-time audio stream ends, by the level of 10 ms frames."""

    def __init__(self) -> None:
        self.samples = 0
        self.speaking = False  # the latest frame was voiced
        self.speech_end_at: float | None = None  # wall-clock time of the last voiced sample
        self.final_sent = False
        self._carry = b""

    @property
    def seconds(self) -> float:
        return self.samples / 16000.0

    def add(self, data: bytes) -> None:
        now = time.monotonic()
        data = self._carry + data
        whole = len(data) - len(data) % 2
        self._carry = data[whole:]
        pcm = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32)
        before, self.samples = self.samples, self.samples + pcm.size
        frames = pcm[: pcm.size - pcm.size % 160].reshape(-1, 160)
        if not len(frames):
            return
        voiced = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) >= VOICED_RMS)
        if voiced.size:
            end_sample = before + (int(voiced[-1]) + 1) * 160
            # audio is streamed in real time: the sample at the message's end is "now"
            self.speech_end_at = now - (self.samples - end_sample) / 16000.0
        self.speaking = bool(voiced.size) and int(voiced[-1]) == len(frames) - 1


def _serve_http(handler: type[BaseHTTPRequestHandler], name: str) -> ThreadingHTTPServer:
    """``handler`` served on 127.0.0.1 (a free port) by a daemon thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name=name, daemon=True).start()
    return httpd


def _stop_http(httpd: ThreadingHTTPServer | None) -> None:
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()


# --- ElevenLabs ----------------------------------------------------------------------
class SimulatedElevenLabs:
    """``with SimulatedElevenLabs() as xi: ElevenLabsTTS("sim", base_url=xi.url)``.

    Set :attr:`first_audio_ms` before a turn (every request waits that long for its
    first byte); None draws a delay per request from ``profile``.
    """

    def __init__(self, first_audio_ms: float | None = None, profile: LatencyProfile | None = None):
        self.first_audio_ms = first_audio_ms
        self.profile = profile or LatencyProfile()
        self.requests = 0
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _delay_ms(self) -> float:
        return self.first_audio_ms if self.first_audio_ms is not None else self.profile.draw().tts_ms

    def __enter__(self) -> SimulatedElevenLabs:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                owner.requests += 1
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                samples = len(str(body.get("text", ""))) * TTS_MS_OF_AUDIO_PER_CHARACTER * 16
                time.sleep(owner._delay_ms() / 1000.0)
                self.send_response(200)
                self.send_header("Content-Type", "audio/pcm")
                self.send_header("Content-Length", str(samples * 2))
                self.end_headers()
                try:
                    self.wfile.write(bytes(samples * 2))
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        self._httpd = _serve_http(Handler, "sim-elevenlabs")
        return self

    def __exit__(self, *exc: object) -> None:
        _stop_http(self._httpd)


# --- LLM -----------------------------------------------------------------------------
class SimulatedOpenAI:
    """``with SimulatedOpenAI(reply_for) as oa:`` then ``OPENAI_BASE_URL=oa.base_url``.

    Args:
        reply_for: the reply's text for the caller's latest message.
        first_token_ms: fixed delay before each reply's first token; None draws one per
            request from ``profile``. Set it between turns.

    :attr:`first_tokens` holds the monotonic time each reply's first token was sent.
    Tokens are words (with their trailing space), one event each.
    """

    def __init__(
        self,
        reply_for: Callable[[str], str] = lambda text: "I can help with that.",
        first_token_ms: float | None = None,
        profile: LatencyProfile | None = None,
    ):
        self.reply_for = reply_for
        self.first_token_ms = first_token_ms
        self.profile = profile or LatencyProfile()
        self.requests = 0
        self.first_tokens: list[float] = []
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def _delay_ms(self) -> float:
        return self.first_token_ms if self.first_token_ms is not None else self.profile.draw().llm_ms

    def _events(self, payload: dict[str, Any]) -> Iterator[bytes]:
        """SSE events of one streamed completion (the caller waits between them)."""
        user = next((str(m.get("content", "")) for m in reversed(payload.get("messages", []))
                     if m.get("role") == "user"), "")
        words = self.reply_for(user).split()
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": payload.get("model", "simulated")}
        for i, word in enumerate(words):
            content = word if i == len(words) - 1 else word + " "
            yield _sse({**base, "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]})
        yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        yield _sse({**base, "choices": [], "usage": {"prompt_tokens": 500, "completion_tokens": len(words),
                                                     "total_tokens": 500 + len(words)}})
        yield b"data: [DONE]\n\n"

    def __enter__(self) -> SimulatedOpenAI:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, obj: object) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._json(200, {"object": "list", "data": [{"id": "simulated", "object": "model",
                                                             "created": 0, "owned_by": "simulated"}]})

            def do_POST(self) -> None:  # noqa: N802
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if not self.path.endswith("/chat/completions") or not payload.get("stream"):
                    self._json(404, {"error": {"message": "only streamed chat completions are simulated",
                                               "type": "invalid_request_error"}})
                    return
                owner.requests += 1
                due = time.monotonic() + owner._delay_ms() / 1000.0
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for i, event in enumerate(owner._events(payload)):
                        time.sleep(max(0.0, due - time.monotonic()))
                        if i == 0:
                            owner.first_tokens.append(time.monotonic())
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                        due = time.monotonic() + LLM_TOKEN_INTERVAL_MS / 1000.0
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):  # the agent was interrupted
                    self.close_connection = True

        self._httpd = _serve_http(Handler, "sim-openai")
        return self

    def __exit__(self, *exc: object) -> None:
        _stop_http(self._httpd)


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"

