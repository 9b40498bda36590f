"""Databases written by the release before Alembic open in place, nothing lost; the
baseline revision creates exactly the schema that release created.

The fixtures (``tests/fixtures/legacy_store``) were written by that release's own store
code (``make.py`` there says how): calls, lines, events, timings, turns and articles.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from core.store import ArticleRecord, StoreError, TurnRecord, migrate
from core.store.postgres import PostgresStore
from core.store.sqlite import SQLiteStore
from core.store.tables import metadata
from tests.conftest import open_together

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_store"
TABLES = [t.name for t in metadata.sorted_tables]


def legacy_sqlite(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / "sqlite_v3.sql").read_text())
    conn.close()
    return path


def legacy_postgres(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((FIXTURES / "postgres_v3.sql").read_text())  # noqa: S608 - a fixed test fixture
    return url


def sqlite_rows(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    rows = {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in [*TABLES, "sqlite_sequence"]}
    conn.close()
    return rows


def postgres_rows(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES}


def check_reads_and_writes(store) -> None:
    """What the fixture holds, read through the store; then new rows are written."""
    ended, failed, active = sorted(store.list_calls(), key=lambda c: c.started_at)
    assert (ended.status, failed.status, active.status) == ("ended", "failed", "active")
    assert ended.metadata == {"agent": {"name": "Ana", "skills": ["cards"]}, "queue": "cards"}
    assert failed.error == "the speech service stopped answering" and ended.segment_count == 3
    lines = store.segments(ended.id)
    assert [s.text for s in lines] == ["I lost my card on the bus", "I can block it for you now", "Card blocked"]
    assert lines[0].confidence == 0.91 and lines[1].confidence is None
    assert [s.text for s in store.segments(active.id)] == ["hello, ünïcode ✓"]
    assert store.events(ended.id, "kb_shown")[0].payload == {"articles": ["lost-card", "fees"], "nested": {"ok": True}}
    timings = store.timings(ended.id)
    assert [t.segment_id for t in timings] == [lines[0].id, None] and timings[0].decode_ms == 90.25
    turns = store.turns(ended.id)
    assert [t.interrupted for t in turns] == [False, True] and turns[0].agent_segment_id == lines[1].id
    assert turns[1].endpoint_ms is None
    assert [a.id for a in store.list_articles()] == ["lost-card", "fees"]
    assert store.get_article("lost-card").tags == ("cards", "urgent")
    assert store.list_articles(include_deleted=True)[1].deleted_at is not None  # the tombstone

    new = store.add_segment(active.id, "agent", "a new line", 500, 900)
    assert new.id > max(s.id for c in (ended, failed, active) for s in store.segments(c.id) if s != new)
    store.add_turn(TurnRecord(active.id, 0, new.id, None, "hello", "a new line", 1, 2, 3, 4, 5, False))
    store.add_event(active.id, "intent", {"label": "greeting"})
    store.end_call(active.id)
    store.save_articles([ArticleRecord("hours", "Branch hours", "9 to 5.")])
    with pytest.raises(StoreError, match="nothing in this batch"):
        store.save_articles([ArticleRecord("dup", "LOST OR STOLEN CARD", "x")])  # the old index still holds
    assert store.get_call(active.id).status == "ended" and store.turns(active.id)[0].agent_text == "a new line"


def test_an_sqlite_database_of_the_release_before_alembic_opens_with_every_row(tmp_path):
    path = legacy_sqlite(tmp_path / "old.sqlite3")
    before = sqlite_rows(path)
    store = SQLiteStore(path)
    assert store.schema_version == migrate.head()
    assert sqlite_rows(path) == before  # every row as it was, ids and sequences included
    check_reads_and_writes(store)
    store.close()
    SQLiteStore(path).close()  # opening again: nothing left to do


def test_a_postgres_database_of_the_release_before_alembic_opens_with_every_row(pg_url):
    url = legacy_postgres(pg_url)
    before = postgres_rows(url)
    store = PostgresStore(url)
    assert store.schema_version == migrate.head()
    assert postgres_rows(url) == before
    check_reads_and_writes(store)
    store.close()


def test_an_older_sqlite_database_gets_the_tables_it_lacks(tmp_path):
    path = legacy_sqlite(tmp_path / "v2.sqlite3")
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE articles; PRAGMA user_version = 2;")  # as schema version 2 left it
    conn.close()
    conn = sqlite3.connect(path)
    before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in TABLES if t != "articles"}
    conn.close()
    store = SQLiteStore(path)
    after = sqlite_rows(path)
    assert {t: after[t] for t in before} == before
    assert len(store.list_calls()) == 3 and store.list_articles() == []
    store.save_articles([ArticleRecord("a", "Alpha", "text")])
    assert [a.id for a in store.list_articles()] == ["a"]
    store.close()


def sqlite_schema(path: Path) -> dict[str, object]:
    conn = sqlite3.connect(path)
    out: dict[str, object] = {}
    for t in TABLES:
        # (name, type, not null, default, pk); an INTEGER PRIMARY KEY is never NULL whether
        # or not it says NOT NULL (SQLAlchemy says it), so that flag is not compared there
        cols = [(n, ty, bool(nn) and not (pk and ty == "INTEGER"), d, pk)
                for _, n, ty, nn, d, pk in conn.execute(f"PRAGMA table_info({t})")]
        fks = sorted(r[2:] for r in conn.execute(f"PRAGMA foreign_key_list({t})"))
        indexes = {}
        for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({t})"):
            if origin == "c":
                indexes[name] = (unique, partial, conn.execute(f"PRAGMA index_xinfo({name})").fetchall())
        autoincrement = "AUTOINCREMENT" in conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = ?", (t,)).fetchone()[0]
        out[t] = (cols, fks, indexes, autoincrement)
    conn.close()
    return out


def test_the_baseline_creates_the_sqlite_schema_of_the_release_before_alembic(tmp_path):
    old = legacy_sqlite(tmp_path / "old.sqlite3")
    SQLiteStore(tmp_path / "new.sqlite3").close()
    assert sqlite_schema(tmp_path / "new.sqlite3") == sqlite_schema(old)


def postgres_schema(url: str) -> dict[str, object]:
    tables = tuple(TABLES)
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity, "
            "identity_generation FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = ANY(%s) ORDER BY table_name, ordinal_position", (list(tables),)).fetchall()
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = ANY(%s) ORDER BY indexname", (list(tables),)).fetchall()
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid::regclass::text = ANY(%s) ORDER BY conname", (list(tables),)).fetchall()
    return {"columns": columns, "indexes": indexes, "constraints": constraints}


def test_the_baseline_creates_the_postgres_schema_of_the_release_before_alembic(pg_server):
    old, new = legacy_postgres(pg_server.create_database()), pg_server.create_database()
    try:
        PostgresStore(new).close()
        assert postgres_schema(new) == postgres_schema(old)
    finally:
        pg_server.drop_database(old)
        pg_server.drop_database(new)


def test_sqlite_processes_starting_together_migrate_once(tmp_path):
    path = tmp_path / "together.sqlite3"
    stores = open_together(lambda: SQLiteStore(path))
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrate.head(),)]
    conn.close()
    for s in stores:
        s.close()
