"""A call whose process died is failed at once, by whichever process runs next, whatever
page is open (hostile input and hard faults, defect 5)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.pipeline.reaper import Reaper, owner_alive, process_owner, reap_dead_calls
from core.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
STALE_S = 20.0


def _call_in_a_process_killed_with_sigkill(db: Path) -> str:
    """A call started by another process, which is then killed -9 mid-call."""
    script = textwrap.dedent(f"""
        import sys, time
        from core.pipeline.reaper import process_owner
        from core.store.sqlite import SQLiteStore
        store = SQLiteStore({str(db)!r})
        call = store.create_call("browser", {{"page": "live", "owner": process_owner()}})
        print(call.id, flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    call_id = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    return call_id


def test_a_restart_right_after_kill_9_fails_the_dead_process_call_at_once(tmp_path):
    db = tmp_path / "calls.sqlite3"
    call_id = _call_in_a_process_killed_with_sigkill(db)
    store = SQLiteStore(db)
    assert store.get_call(call_id).status == "active"  # its heartbeat is fresh: silence alone waits 20 s
    assert reap_dead_calls(store, STALE_S) == [call_id]
    call = store.get_call(call_id)
    assert call.status == "failed" and "stopped unexpectedly" in call.error


def test_the_background_reaper_fails_it_without_any_page_open(tmp_path):
    db = tmp_path / "calls.sqlite3"
    store = SQLiteStore(db)
    reaper = Reaper(store, STALE_S, interval_s=0.05).start()
    try:
        call_id = _call_in_a_process_killed_with_sigkill(db)
        deadline = time.monotonic() + 5
        while store.get_call(call_id).status == "active" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        reaper.stop()
    assert store.get_call(call_id).status == "failed"


def test_live_calls_of_this_process_and_of_other_hosts_are_left_alone(tmp_path):
    store = SQLiteStore(tmp_path / "calls.sqlite3")
    mine = store.create_call("browser", {"owner": process_owner()})
    elsewhere = store.create_call("twilio", {"owner": {"host": "another-machine", "pid": 1, "started": 1}})
    unknown = store.create_call("browser", {})
    assert reap_dead_calls(store, STALE_S) == []
    assert {c.id for c in store.list_calls(status="active")} == {mine.id, elsewhere.id, unknown.id}


def test_a_reused_pid_is_not_mistaken_for_the_owner():
    me = process_owner()
    if me["started"] is None:
        pytest.skip("no /proc here: process start times cannot be read")
    assert owner_alive(me) is True
    assert owner_alive({**me, "started": me["started"] - 1}) is False
    assert owner_alive({**me, "host": "another-machine"}) is None


def test_sessions_record_their_owner(store):
    from core.pipeline.session import VoiceSession
    from core.pipeline.vad import EndpointConfig, Endpointer, EnergyFrameClassifier
    from tests.fakes import FakeSTT

    session = VoiceSession(store, FakeSTT(), lambda: Endpointer(EndpointConfig(), EnergyFrameClassifier(-35)),
                           metadata={"page": "live"})
    call_id = session.start()
    session.stop()
    metadata = store.get_call(call_id).metadata
    assert metadata["page"] == "live" and metadata["owner"]["pid"] == os.getpid()


class _FlakyStore:
    """A store that is down for the first ``down`` checks, then answers."""

    def __init__(self, down: int):
        self.down = down
        self.checks = 0

    def list_calls(self, *args, **kwargs):
        from core.store import StoreError

        self.checks += 1
        if self.checks <= self.down:
            raise StoreError("cannot connect to Postgres at 127.0.0.1:5432/voice: connection refused")
        return []

    def __getattr__(self, name):  # whatever else reap_dead_calls asks: nothing to reap
        return lambda *args, **kwargs: []


def test_a_store_that_stays_down_is_reported_once_then_its_recovery(caplog):
    """Not a warning every 5 s for as long as the database is down (a log flood)."""
    caplog.set_level(logging.INFO, logger="core.pipeline.reaper")
    store = _FlakyStore(down=30)
    reaper = Reaper(store, STALE_S, interval_s=0.01).start()  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 10
        while store.checks < 40 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        reaper.stop()
    assert store.checks >= 31, "the reaper gave up on a store that came back"
    messages = [r.getMessage() for r in caplog.records if r.name == "core.pipeline.reaper"]
    assert messages.count("could not check for dead calls") == 1, messages
    assert messages.count("checking for dead calls again") == 1, messages
