"""Sentry error reporting against a local ingest endpoint: what arrives, and what never does.

The SDK runs in a child process (it patches logging and threading process-wide), sends to
``http://public@127.0.0.1:PORT/1``, and this process plays Sentry's envelope endpoint.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.ops.observability import scrub, stage_span
from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
CARD = "4111 1111 1111 1111"  # Luhn-valid test card
CHILD_TIMEOUT_S = 90


class Ingest(BaseHTTPRequestHandler):
    """POST /api/<project>/envelope/: records every item (type, JSON payload)."""

    raw: list[bytes] = []
    items: list[tuple[str, dict]] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.raw.append(body)
        lines = body.split(b"\n")
        i = 1  # line 0 is the envelope header
        while i < len(lines) and lines[i].strip():
            header = json.loads(lines[i])
            payload = lines[i + 1]
            if "length" in header:  # a payload may itself contain newlines
                rest = b"\n".join(lines[i + 1 :])
                payload, tail = rest[: header["length"]], rest[header["length"] + 1 :]
                lines = [b"", *tail.split(b"\n")]
                i = 1
            else:
                i += 2
            try:
                self.items.append((header["type"], json.loads(payload)))
            except ValueError:
                self.items.append((header["type"], {}))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def sentry():
    Ingest.raw, Ingest.items = [], []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://public@127.0.0.1:{server.server_port}/1"
    server.shutdown()
    server.server_close()


# One process with a crashing call, a normal call (STT stage spans) and a nested turn.
CHILD = f"""
import sys, numpy as np, sentry_sdk
from core.config import Settings
from core.ops.observability import init_error_reporting, stage_span
from core.pipeline.session import VoiceSession
from core.store.sqlite import SQLiteStore
from tests.fakes import FakeSTT
from tests.unit.test_session import bursts, endpointer, feed

settings = Settings(sentry_dsn=sys.argv[1], data_dir=sys.argv[2])
assert init_error_reporting(settings) and init_error_reporting(settings)
client = sentry_sdk.get_client()
init_error_reporting(settings)
assert sentry_sdk.get_client() is client, "initialised twice"
store = SQLiteStore(settings.db_path)

def crashing_endpointer():
    raise RuntimeError("card {CARD} was declined by the endpointer")

crashed = VoiceSession(store, FakeSTT(), crashing_endpointer)
print(crashed.start(), flush=True)
crashed._done.wait(10)

ok = VoiceSession(store, FakeSTT(["my card is lost"]), endpointer)
print(ok.start(), flush=True)
feed(ok, bursts(1))
ok.stop()

with stage_span("turn", "call-nested"):
    with stage_span("reply", "call-nested"):
        pass
    with stage_span("tts", "call-nested", characters=12):
        pass
sentry_sdk.flush(10)
"""


def test_errors_arrive_tagged_and_redacted_and_stages_arrive_as_transactions(sentry, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, sentry, str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    crashed_id, ok_id = done.stdout.split()

    events = [p for t, p in Ingest.items if t == "event"]
    crash = next(e for e in events if e.get("tags", {}).get("call_id") == crashed_id)
    value = crash["exception"]["values"][-1]["value"]
    assert "[CARD]" in value and "declined" in value
    # the card number is nowhere in anything that was sent, in any form
    sent = b"".join(Ingest.raw)
    assert CARD.encode() not in sent and CARD.replace(" ", "").encode() not in sent

    transactions = [p for t, p in Ingest.items if t == "transaction"]
    stt = [t for t in transactions if t["contexts"]["trace"]["op"] == "voice.stt"]
    assert stt and stt[0]["tags"]["call_id"] == ok_id
    turn = next(t for t in transactions if t["contexts"]["trace"]["op"] == "voice.turn")
    assert turn["tags"]["call_id"] == "call-nested"
    assert [s["op"] for s in turn["spans"]] == ["voice.reply", "voice.tts"]
    assert turn["spans"][1]["data"]["characters"] == 12


def test_scrub_redacts_every_string_but_keeps_identifiers():
    event = {
        "event_id": "4111111111111111",
        "message": f"customer read out {CARD}",
        "breadcrumbs": {"values": [{"message": "call me on 555 123 4567", "data": {"n": 3}}]},
        "extra": {"call_id": "abc", "lines": [f"card {CARD}", 42]},
        "contexts": {"trace": {"trace_id": "12345678901234567890123456789012"}},
    }
    out = scrub(event)
    assert out["message"] == "customer read out [CARD]"
    assert out["extra"]["lines"] == ["card [CARD]", 42] and out["extra"]["call_id"] == "abc"
    assert out["event_id"] == event["event_id"]
    assert out["contexts"]["trace"]["trace_id"] == event["contexts"]["trace"]["trace_id"]
    assert event["message"].endswith(CARD)  # the original is not modified


def test_stage_span_is_free_and_transparent_when_reporting_is_off():
    with pytest.raises(ValueError), stage_span("stt", "c1"):
        raise ValueError("passes through")
