import sqlite3
import stat
import time

import pytest

from core.store import StoreError, UtteranceTiming, migrate
from core.store.migrate import LEGACY_VERSION
from core.store.sqlite import SQLiteStore
from tests.conftest import ROOT


def test_schema_is_migrated_and_versioned(store):
    assert store.schema_version == migrate.head() == "0001"
    assert store.health()["schema_version"] == migrate.head()


def test_call_lifecycle_segments_events_timings(store):
    call = store.create_call("browser", {"page": "live"})
    assert store.get_call(call.id).status == "active"
    s1 = store.add_segment(call.id, "caller", "my card is lost", 1000, 2500, 0.8)
    s2 = store.add_segment(call.id, "agent", "I can block it now", 2600, 4000)
    store.add_event(call.id, "partial", {"text": "my card"})
    store.add_timing(UtteranceTiming(620.0, 510.0, 110.0, 90.0, 1500.0, 0.06, s1.id, call.id))
    store.end_call(call.id)
    got = store.get_call(call.id)
    assert got.status == "ended" and got.ended_at >= got.started_at
    assert got.metadata == {"page": "live"} and got.segment_count == 2
    assert [s.text for s in store.segments(call.id)] == ["my card is lost", "I can block it now"]
    assert [s.id for s in store.segments(call.id, after_id=s1.id)] == [s2.id]
    assert store.events(call.id, "partial")[0].payload == {"text": "my card"}
    timing = store.timings(call.id)[0]
    assert timing.segment_id == s1.id and timing.speech_end_to_final_ms == 620.0


def test_data_survives_reopen(tmp_path):
    path = tmp_path / "db.sqlite3"
    a = SQLiteStore(path)
    call = a.create_call("browser")
    a.add_segment(call.id, "caller", "hello", 0, 500)
    a.close()
    b = SQLiteStore(path)
    assert [s.text for s in b.segments(call.id)] == ["hello"]
    assert b.list_calls()[0].id == call.id


def test_wal_mode(tmp_path):
    store = SQLiteStore(tmp_path / "wal.sqlite3")
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_stale_active_calls_are_marked_failed(store, monkeypatch):
    alive = store.create_call("browser")
    real_time = time.time
    with monkeypatch.context() as m:  # a call whose process stopped ten minutes ago
        m.setattr(time, "time", lambda: real_time() - 600)
        dead = store.create_call("browser")
    store.heartbeat(alive.id)
    assert store.reap_stale_calls(60) == [dead.id]
    assert store.get_call(dead.id).status == "failed"
    assert "stopped unexpectedly" in store.get_call(dead.id).error
    assert store.get_call(alive.id).status == "active"


def test_list_calls_filters_by_status_newest_first(store):
    ids = [store.create_call("test").id for _ in range(3)]
    store.end_call(ids[0])
    assert [c.id for c in store.list_calls(status="active")] == ids[:0:-1]
    assert len(store.list_calls(limit=2)) == 2


def test_read_only_database_is_a_clear_error_and_reads_still_work(tmp_path):
    path = tmp_path / "ro.sqlite3"
    s = SQLiteStore(path)
    call = s.create_call("browser")
    s.add_segment(call.id, "caller", "kept line", 0, 100)
    s.close()
    # open read-only through SQLite itself (file permissions do not bind root)

    class ReadOnly(SQLiteStore):
        def _connect(self) -> sqlite3.Connection:
            return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)

    ro = ReadOnly(path)  # already migrated: opening does not write
    with pytest.raises(StoreError, match="read-only"):
        ro.add_segment(call.id, "caller", "new line", 200, 300)
    assert [x.text for x in ro.segments(call.id)] == ["kept line"]


def test_locked_database_is_a_clear_error(tmp_path, monkeypatch):
    import core.store.sqlite as mod

    monkeypatch.setattr(mod, "BUSY_TIMEOUT_MS", 200)
    s = SQLiteStore(tmp_path / "locked.sqlite3")
    call = s.create_call("browser")
    blocker = sqlite3.connect(s.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked"):
            fresh = mod.SQLiteStore(s.path)  # migrations need a write lock
            fresh.add_segment(call.id, "caller", "x", 0, 1)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert s.segments(call.id) == []
    s.add_segment(call.id, "caller", "after unlock", 0, 1)
    assert [x.text for x in s.segments(call.id)] == ["after unlock"]


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LEGACY_VERSION + 5}")  # written by a release before Alembic
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 0")
    conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    conn.execute("INSERT INTO alembic_version VALUES ('9999')")  # a revision of a later release
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this release"):
        SQLiteStore(path)


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="data folder"):
        SQLiteStore(blocker / "sub" / "db.sqlite3")


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "corrupt.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="corrupt"):
        SQLiteStore(path)
    assert stat.S_ISREG(path.stat().st_mode)  # left in place for the user to inspect


def test_payloads_and_metadata_round_trip_as_json(store):
    call = store.create_call("talk", {"agent": {"name": "Ana", "skills": ["cards", "loans"]}})
    store.add_event(call.id, "kb_shown", {"articles": ["a1", "a2"], "score": 0.5, "nested": {"ok": True}})
    store.add_event(call.id, "odd", {"when": time.gmtime(0), "path": ROOT})  # not JSON: stored as text
    assert store.get_call(call.id).metadata == {"agent": {"name": "Ana", "skills": ["cards", "loans"]}}
    shown, odd = store.events(call.id)
    assert shown.payload == {"articles": ["a1", "a2"], "score": 0.5, "nested": {"ok": True}}
    assert odd.payload["path"] == str(ROOT) and store.events(call.id, "missing") == []


def test_turns_round_trip(store):
    from core.store import TurnRecord

    call = store.create_call("talk")
    seg = store.add_segment(call.id, "caller", "block my card", 0, 900)
    store.add_turn(TurnRecord(call.id, 0, seg.id, None, "block my card", "Done.", 500.0, 80.0,
                              300.0, 120.0, 950.0, True))
    (turn,) = store.turns(call.id)
    assert turn.caller_segment_id == seg.id and turn.interrupted is True
    assert turn.voice_to_voice_ms == 950.0 and turn.created_at > 0
    assert store.turns()[0].agent_text == "Done."
