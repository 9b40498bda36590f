"""A partly corrupt database: Health says so, and the pages show a message instead of a
traceback (hostile input and hard faults, defect 6)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.store.sqlite import SQLiteStore

APP = str(Path(__file__).resolve().parents[2] / "app.py")
STORE_MESSAGE = "The call store could not be read"


def destroy_root_page(db: Path, table: str) -> None:
    """Overwrite ``table``'s root b-tree page with garbage (the rest of the file is intact)."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    with db.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * page_size)


@pytest.fixture
def damaged(data_dir):
    db = data_dir / "voice_copilot.sqlite3"
    store = SQLiteStore(db)
    call = store.create_call("browser")
    store.add_segment(call.id, "caller", "i lost my debit card yesterday", 0, 2000)
    store.end_call(call.id)
    store.close()
    destroy_root_page(db, "segments")
    return db


def test_the_store_reports_itself_damaged(damaged):
    store = SQLiteStore(damaged)  # opens: the schema and the calls table are fine
    health = store.health()
    assert health["status"] == "damaged" and health["problems"]
    assert store.integrity_problems()


def test_a_sound_store_passes_its_check(tmp_path):
    store = SQLiteStore(tmp_path / "ok.sqlite3")
    assert store.integrity_problems() == [] and store.health()["status"] == "ok"


@pytest.mark.parametrize(
    ("page", "says"),
    [
        ("views/live.py", STORE_MESSAGE),
        ("views/calls.py", STORE_MESSAGE),
        ("views/metrics.py", STORE_MESSAGE),
        ("views/copilot.py", STORE_MESSAGE),
        ("views/health.py", "The store is damaged"),
    ],
)
def test_pages_on_a_damaged_store_say_so_in_words(damaged, page, says):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if page != "views/live.py":
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert any(says in e for e in errors), errors
    assert all("Traceback" not in e for e in errors)


def test_the_live_page_keeps_its_controls_when_the_call_list_cannot_be_read(damaged):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    assert any(STORE_MESSAGE in e.value for e in at.error)
    assert at.title and at.title[0].value  # the page itself still rendered above the failed part
