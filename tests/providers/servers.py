"""Local servers on 127.0.0.1 that speak the vendors' HTTP protocols, with faults on demand.

The real SDKs are pointed at them by base URL, so the adapters' own code (requests,
SSE parsing, error mapping) runs in tests without any network:

* :class:`OpenAIServer` — ``/v1/chat/completions`` (SSE ``data: {...}`` chunks and
  ``data: [DONE]``, or one JSON answer for ``response_format``), ``/v1/audio/transcriptions``
  (multipart WAV; the text says how many samples arrived), ``/v1/models``.
* :class:`GeminiServer` — ``/v1beta/models/{model}:streamGenerateContent?alt=sse` (and ``/v1/``)`,
  ``:generateContent`` and ``/v1beta/models``.

Faults (:class:`Fault`) are queued per request (``fail_next``) or held (``fail_always``
until ``heal``): an HTTP status with an optional ``Retry-After``, a delay longer than the
client waits, a connection dropped after some stream chunks, or a malformed body.
"""

from __future__ import annotations

import io
import json
import re
import struct
import threading
import time
import wave
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

FaultKind = Literal["status", "delay", "drop", "malformed"]
DEFAULT_REPLY = "You can freeze your card in the app under Cards. It takes effect straight away."


@dataclass(frozen=True)
class Fault:
    """What to do to one request instead of answering it properly.

    Attributes:
        kind: ``status`` (answer ``status`` with an error body), ``delay`` (wait
            ``delay_s`` first, then answer normally), ``drop`` (close the connection
            after ``after_chunks`` stream chunks, mid-body), ``malformed`` (200 with a
            body that is not what the protocol promises).
        status: the HTTP status for ``status``.
        retry_after_s: sent as ``Retry-After`` when set.
        body: error message text (``"quota"`` in it makes a 429 a quota error).
    """

    kind: FaultKind
    status: int = 500
    retry_after_s: float | None = None
    delay_s: float = 0.0
    after_chunks: int = 2
    body: str = "injected failure"


def wav_samples(body: bytes) -> int:
    """Frames in the first WAV file inside a multipart body."""
    start = body.find(b"RIFF")
    if start < 0:
        return -1
    size = struct.unpack("<I", body[start + 4 : start + 8])[0] + 8
    with wave.open(io.BytesIO(body[start : start + size])) as wav:
        return wav.getnframes()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return None

    def _body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self.server.owner.handle(self, "GET", b"")

    def do_POST(self) -> None:
        self.server.owner.handle(self, "POST", self._body())

    # --- writing ------------------------------------------------------------------------
    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop(self) -> None:
        """Close the socket mid-body: the client sees an incomplete chunked read."""
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: FakeVendorServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timed out) mid-answer is expected here, not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeVendorServer:
    """Threaded HTTP server on 127.0.0.1 with a fault queue; a context manager."""

    def __init__(self, reply: str = DEFAULT_REPLY, word_delay_s: float = 0.0):
        self.reply = reply
        self.word_delay_s = word_delay_s
        self.json_answers: deque[Any] = deque()
        self.json_default: Any = {}
        self.requests: list[tuple[str, str]] = []
        self.payloads: list[Any] = []  # JSON bodies received, in order
        self._faults: deque[Fault] = deque()
        self._always: Fault | None = None
        self._lock = threading.Lock()
        self.served_ok = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-vendor", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> FakeVendorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeVendorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults -------------------------------------------------------------------------
    def fail_next(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def fail_always(self, fault: Fault) -> None:
        with self._lock:
            self._always = fault

    def heal(self) -> None:
        with self._lock:
            self._always = None
            self._faults.clear()

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else self._always

    def count(self, path_part: str) -> int:
        """Requests whose path contains ``path_part``."""
        with self._lock:
            return sum(path_part in path for _, path in self.requests)

    # --- dispatch -----------------------------------------------------------------------
    def handle(self, h: _Handler, method: str, body: bytes) -> None:
        with self._lock:
            self.requests.append((method, h.path))
        fault = self._next_fault()
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay_s)
            fault = None
        if fault is not None and fault.kind == "status":
            headers = {"retry-after": f"{fault.retry_after_s:g}"} if fault.retry_after_s is not None else {}
            h.send_json(fault.status, self.error_body(fault), headers)
            return
        try:
            payload = json.loads(body) if body and body[:1] in (b"{", b"[") else {}
        except json.JSONDecodeError:
            payload = {}
        with self._lock:
            self.payloads.append(payload)
        self.route(h, method, h.path, payload, body, fault)

    def route(self, h: _Handler, method: str, path: str, payload: Any, body: bytes, fault: Fault | None) -> None:
        raise NotImplementedError

    def error_body(self, fault: Fault) -> Any:
        return {"error": {"message": fault.body}}

    def words(self) -> list[str]:
        words = self.reply.split()
        return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]

    def stream_events(self, h: _Handler, events: list[bytes], fault: Fault | None) -> None:
        h.start_chunked()
        for i, event in enumerate(events):
            if fault is not None and fault.kind == "drop" and i >= fault.after_chunks:
                h.drop()
                return
            if fault is not None and fault.kind == "malformed" and i == 1:
                h.chunk(b"data: {not json\n\n")
                h.end_chunked()
                return
            h.chunk(event)
            if self.word_delay_s:
                time.sleep(self.word_delay_s)
        h.end_chunked()
        with self._lock:
            self.served_ok += 1


class OpenAIServer(FakeVendorServer):
    """OpenAI-compatible endpoints; ``base_url`` goes to ``OpenAI(base_url=...)``."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def route(self, h: _Handler, method: str, path: str, payload: Any, body: bytes, fault: Fault | None) -> None:
        if path.startswith("/v1/models"):
            h.send_json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 0,
                                                          "owned_by": "test"}]})
        elif path.startswith("/v1/audio/transcriptions"):
            if fault is not None:  # malformed: JSON without the text field
                h.send_json(200, {"unexpected": True})
                return
            h.send_json(200, {"text": f"{wav_samples(body)} samples"})
            with self._lock:
                self.served_ok += 1
        elif path.startswith("/v1/chat/completions"):
            if payload.get("stream"):
                self.stream_events(h, self._sse(payload), fault)
            else:
                self._json_answer(h, payload, fault)
        else:
            h.send_json(404, {"error": {"message": f"no route {path}"}})

    def _sse(self, payload: dict[str, Any]) -> list[bytes]:
        def event(obj: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": payload.get("model")}
        events = [event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": w},
                                              "finish_reason": None}]}) for w in self.words()]
        events.append(event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        events.append(event({**base, "choices": [], "usage": {
            "prompt_tokens": 321, "completion_tokens": len(self.words()), "total_tokens": 321 + len(self.words())}}))
        events.append(b"data: [DONE]\n\n")
        return events

    def _json_answer(self, h: _Handler, payload: dict[str, Any], fault: Fault | None) -> None:
        answer = self.json_answers.popleft() if self.json_answers else self.json_default
        content = "{not json" if fault is not None else json.dumps(answer)
        h.send_json(200, {
            "id": "chatcmpl-2", "object": "chat.completion", "created": 0, "model": payload.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 200, "completion_tokens": 20, "total_tokens": 220},
        })
        with self._lock:
            self.served_ok += 1


class GeminiServer(FakeVendorServer):
    """Gemini API endpoints; ``base_url`` goes to ``HttpOptions(base_url=...)``."""

    _MODEL_CALL = re.compile(r"^/v1(?:beta)?/models/([^:/?]+):(streamGenerateContent|generateContent)")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def error_body(self, fault: Fault) -> Any:
        status = {429: "RESOURCE_EXHAUSTED", 401: "UNAUTHENTICATED", 400: "INVALID_ARGUMENT"}.get(fault.status, "INTERNAL")
        return {"error": {"code": fault.status, "message": fault.body, "status": status}}

    def route(self, h: _Handler, method: str, path: str, payload: Any, body: bytes, fault: Fault | None) -> None:
        match = self._MODEL_CALL.match(path)
        if match is None:
            if path.startswith(("/v1beta/models", "/v1/models")):
                h.send_json(200, {"models": [{"name": "models/gemini-2.5-flash"}]})
            else:
                h.send_json(404, self.error_body(Fault("status", 404, body=f"no route {path}")))
            return
        usage = {"promptTokenCount": 280, "candidatesTokenCount": len(self.words()), "totalTokenCount": 300}
        if match.group(2) == "streamGenerateContent":
            events = [b"data: " + json.dumps({
                "candidates": [{"content": {"role": "model", "parts": [{"text": w}]}, "index": 0}],
                "usageMetadata": usage, "modelVersion": match.group(1),
            }).encode() + b"\r\n\r\n" for w in self.words()]
            self.stream_events(h, events, fault)
            return
        answer = self.json_answers.popleft() if self.json_answers else self.json_default
        text = "{not json" if fault is not None else json.dumps(answer)
        h.send_json(200, {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0, "finishReason": "STOP"}],
            "usageMetadata": usage,
        })
        with self._lock:
            self.served_ok += 1
