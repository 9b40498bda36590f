"""A local server speaking ElevenLabs' streaming text-to-speech HTTP API.

``POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000`` with an
``xi-api-key`` header and a JSON body (``text``, ``model_id``) is answered with chunked
raw PCM (16-bit little-endian mono at the requested rate), paced like a real stream and
cut at odd byte boundaries on purpose. Errors use ElevenLabs' JSON shape
(``{"detail": {"status": ..., "message": ...}}``).

Faults are injected with :class:`Faults`; every request is recorded
(:class:`RequestRecord`), including how much audio was written before the client left.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

MS_OF_AUDIO_PER_CHARACTER = 60
CHUNK_BYTES = 1001  # odd on purpose: samples straddle chunk boundaries
CHUNK_INTERVAL_S = 0.005


@dataclass
class Faults:
    status: int | None = None  # answer with this HTTP error
    body: dict | None = None  # ... and this JSON body
    retry_after_s: int | None = None
    first_byte_delay_s: float = 0.0
    drop_after_bytes: int | None = None  # close the socket mid-stream (no final chunk)


@dataclass
class RequestRecord:
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: dict
    received_at: float = field(default_factory=time.monotonic)
    bytes_sent: int = 0
    total_bytes: int = 0
    first_byte_at: float | None = None
    client_left: bool = False  # the client closed the connection before the end
    finished_at: float | None = None


def speech_for(text: str, sample_rate_hz: int) -> bytes:
    """Deterministic 'speech' for ``text``: a tone whose length follows the text."""
    n = int(len(text) * MS_OF_AUDIO_PER_CHARACTER * sample_rate_hz / 1000)
    t = np.arange(n) / sample_rate_hz
    return (np.sin(2 * np.pi * 180.0 * t) * 9000).astype("<i2").tobytes()


class ElevenLabsServer:
    """Run with ``with ElevenLabsServer(api_key="k") as server:``; ``server.url`` is the base."""

    def __init__(
        self,
        api_key: str = "test-key",
        faults: Faults | None = None,
        chunk_interval_s: float = CHUNK_INTERVAL_S,
    ):
        self.api_key = api_key
        self.faults = faults or Faults()
        self.chunk_interval_s = chunk_interval_s
        self.requests: list[RequestRecord] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> ElevenLabsServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="elevenlabs-server", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def wait_finished(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Wait until ``count`` requests have ended (completed, failed or abandoned)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(1 for r in self.requests if r.finished_at is not None) >= count:
                return True
            time.sleep(0.01)
        return False


class _Handler(BaseHTTPRequestHandler):
    owner: ElevenLabsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _error(self, status: int, detail: dict, retry_after_s: int | None = None) -> None:
        payload = json.dumps({"detail": detail}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if retry_after_s is not None:
            self.send_header("Retry-After", str(retry_after_s))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        owner, faults = self.owner, self.owner.faults
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        record = RequestRecord(
            path=split.path, params=parse_qs(split.query), headers=dict(self.headers), body=json.loads(raw)
        )
        owner.requests.append(record)
        try:
            parts = split.path.strip("/").split("/")
            if len(parts) != 4 or parts[:2] != ["v1", "text-to-speech"] or parts[3] != "stream":
                self._error(404, {"status": "not_found", "message": "no such route"})
                return
            if self.headers.get("xi-api-key") != owner.api_key:
                self._error(401, {"status": "invalid_api_key", "message": "Invalid API key"})
                return
            if faults.status is not None:
                body = faults.body or {"status": "injected", "message": f"injected {faults.status}"}
                self._error(faults.status, body, faults.retry_after_s)
                return
            fmt = record.params.get("output_format", ["mp3_44100_128"])[0]
            if not fmt.startswith("pcm_"):
                self._error(
                    422, {"status": "unsupported_format", "message": f"test server speaks PCM, not {fmt}"}
                )
                return
            self._stream(record, speech_for(str(record.body.get("text", "")), int(fmt[4:])))
        finally:
            record.finished_at = time.monotonic()

    def _stream(self, record: RequestRecord, audio: bytes) -> None:
        faults = self.owner.faults
        record.total_bytes = len(audio)
        if faults.first_byte_delay_s:
            time.sleep(faults.first_byte_delay_s)
        self.send_response(200)
        self.send_header("Content-Type", "audio/pcm")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i in range(0, len(audio), CHUNK_BYTES):
                if faults.drop_after_bytes is not None and record.bytes_sent >= faults.drop_after_bytes:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.close()  # mid-stream: no terminating chunk
                    return
                chunk = audio[i : i + CHUNK_BYTES]
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                if record.first_byte_at is None:
                    record.first_byte_at = time.monotonic()
                record.bytes_sent += len(chunk)
                time.sleep(self.owner.chunk_interval_s)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            record.client_left = True
            self.close_connection = True
