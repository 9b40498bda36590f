"""The database, its WAL and recordings are private to the user running the app
(hostile input and hard faults, defect 8)."""

from __future__ import annotations

import os
import stat

import numpy as np

from core.pipeline.recording import WavRecorder
from core.store.sqlite import SQLiteStore


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_database_and_its_wal_are_0600_in_a_0700_folder(tmp_path):
    db = tmp_path / "data" / "voice_copilot.sqlite3"
    store = SQLiteStore(db)
    call = store.create_call("browser")
    store.add_segment(call.id, "caller", "hello", 0, 100)
    assert mode(db.parent) == 0o700
    assert mode(db) == 0o600
    assert (db.parent / "voice_copilot.sqlite3-wal").exists()
    assert mode(db.parent / "voice_copilot.sqlite3-wal") == 0o600
    assert mode(db.parent / "voice_copilot.sqlite3-shm") == 0o600


def test_an_existing_world_readable_database_is_tightened(tmp_path):
    db = tmp_path / "old.sqlite3"
    SQLiteStore(db).close()
    os.chmod(db, 0o644)
    SQLiteStore(db).list_calls()
    assert mode(db) == 0o600


def test_recordings_are_0600_in_a_0700_folder(tmp_path):
    rec = WavRecorder(tmp_path / "recordings" / "call.wav")
    rec.write(np.zeros(1600, np.int16))
    rec.close()
    assert mode(tmp_path / "recordings") == 0o700 and mode(tmp_path / "recordings" / "call.wav") == 0o600


def test_an_existing_shared_folder_is_left_as_it_is(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    SQLiteStore(shared / "db.sqlite3").close()
    assert mode(shared) == 0o755 and mode(shared / "db.sqlite3") == 0o600
