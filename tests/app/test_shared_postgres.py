"""Two processes, one Postgres: a call captured by one shows live on the other's copilot.

Process A is a separate Python process that captures a call the way a voice session does
(create_call, segments, heartbeats). Process B is this one, running the real Live copilot
page with VC_STORE_PROVIDER=postgres.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.app.test_pages import run_page

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60

# Process A: heart-beats while alive, obeys "say <text>", "end" and nothing else on stdin.
CAPTURE_PROCESS = """
import sys, threading, time
from core.pipeline.session import HEARTBEAT_INTERVAL_S
from core.store.postgres import PostgresStore

store = PostgresStore(sys.argv[1])
call = store.create_call("phone", {"line": "+1 555 0100"})
store.add_segment(call.id, "caller", "hi my card was charged twice for the same purchase", 0, 2400)
print(call.id, flush=True)
clock = [2500.0]

def beat():
    while True:
        time.sleep(HEARTBEAT_INTERVAL_S / 4)
        store.heartbeat(call.id)

threading.Thread(target=beat, daemon=True).start()
for line in sys.stdin:
    command, _, text = line.strip().partition(" ")
    if command == "say":
        store.add_segment(call.id, "caller", text, clock[0], clock[0] + 1500)
        clock[0] += 2000
    elif command == "end":
        store.end_call(call.id)
    print("ok", flush=True)
"""


@pytest.fixture
def capture_process(pg_url):
    proc = subprocess.Popen(
        [sys.executable, "-c", CAPTURE_PROCESS, pg_url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def command(proc: subprocess.Popen, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "ok"


def page_text(at) -> str:
    return " ".join(m.value for m in at.markdown)


def test_a_call_captured_by_another_process_is_live_on_the_copilot(
    pg_url, capture_process, data_dir, monkeypatch
):
    monkeypatch.setenv("VC_STORE_PROVIDER", "postgres")
    monkeypatch.setenv("DATABASE_URL", pg_url)
    call_id = capture_process.stdout.readline().strip()
    assert call_id, "the capture process did not start"

    at = run_page("views/copilot.py")
    text = page_text(at)
    assert f"Call `{call_id}`" in text and "live" in text
    assert "charged twice for the same purchase" in text
    assert at.selectbox(key="copilot_choice").options[1].startswith(call_id)

    # a new line in process A shows on the next refresh in process B
    command(capture_process, "say and it was forty two dollars")
    at.run()
    assert "forty two dollars" in page_text(at)

    # process A ends the call: B stops showing it as live
    command(capture_process, "end")
    at.run()
    assert "No active call right now" in " ".join(c.value for c in at.caption)
    assert "ended" in page_text(at)


def test_a_call_whose_process_died_is_marked_failed_by_the_other(
    pg_url, capture_process, data_dir, monkeypatch
):
    import core.pipeline.session

    monkeypatch.setenv("VC_STORE_PROVIDER", "postgres")
    monkeypatch.setenv("DATABASE_URL", pg_url)
    call_id = capture_process.stdout.readline().strip()
    at = run_page("views/copilot.py")
    assert "live" in page_text(at)

    capture_process.send_signal(signal.SIGKILL)  # no end_call, no more heartbeats
    capture_process.wait(10)
    stale_after_s = 1.0
    monkeypatch.setattr(core.pipeline.session, "STALE_CALL_AFTER_S", stale_after_s)
    time.sleep(stale_after_s + 0.5)
    at.run()
    text = page_text(at)
    assert f"Call `{call_id}`" in text and "failed" in text
