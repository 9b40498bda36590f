"""SQLite implementation of the store: one WAL file, versioned migrations.

One connection per thread (sqlite3 connections must not be shared across threads
without serialising); WAL lets the UI read while a session writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from core.privacy.files import private_dir, private_file
from core.store import (
    CallQuery,
    CallRecord,
    CallStatus,
    EventRecord,
    SegmentRecord,
    Speaker,
    StoreError,
    TurnRecord,
    UtteranceTiming,
)
from core.store.sqlite_articles import ArticleTable

BUSY_TIMEOUT_MS = 5000
# Ids per IN (...) clause: well under SQLite's bound-parameter limit (32,766).
IDS_PER_QUERY = 900

# Append-only: a migration, once released, never changes; add a new one instead.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        ended_at REAL,
        status TEXT NOT NULL CHECK (status IN ('active', 'ended', 'failed')),
        source TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        heartbeat_at REAL
    );
    CREATE INDEX calls_status ON calls(status, started_at);
    CREATE INDEX calls_started ON calls(started_at);
    CREATE TABLE segments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        speaker TEXT NOT NULL,
        text TEXT NOT NULL,
        t_start_ms REAL NOT NULL,
        t_end_ms REAL NOT NULL,
        confidence REAL,
        created_at REAL NOT NULL
    );
    CREATE INDEX segments_call ON segments(call_id, id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        type TEXT NOT NULL,
        payload TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_call ON events(call_id, type, id);
    CREATE TABLE utterance_timings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        segment_id INTEGER REFERENCES segments(id) ON DELETE SET NULL,
        speech_end_to_final_ms REAL NOT NULL,
        endpoint_ms REAL NOT NULL,
        stt_finalize_ms REAL NOT NULL,
        decode_ms REAL NOT NULL,
        audio_ms REAL NOT NULL,
        rtf REAL NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX timings_call ON utterance_timings(call_id, id);
    """,
    """
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        turn_index INTEGER NOT NULL,
        caller_segment_id INTEGER REFERENCES segments(id) ON DELETE SET NULL,
        agent_segment_id INTEGER REFERENCES segments(id) ON DELETE SET NULL,
        caller_text TEXT NOT NULL,
        agent_text TEXT NOT NULL,
        endpoint_ms REAL,
        stt_ms REAL,
        reply_first_token_ms REAL,
        tts_first_audio_ms REAL,
        voice_to_voice_ms REAL,
        interrupted INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX turns_call ON turns(call_id, turn_index);
    """,
    """
    CREATE TABLE articles (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        intents TEXT NOT NULL DEFAULT '[]',
        category TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        deleted_at REAL
    );
    CREATE UNIQUE INDEX articles_live_title ON articles(lower(title)) WHERE deleted_at IS NULL;
    """,
)


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    msg = str(exc).lower()
    if "readonly" in msg or "read-only" in msg:
        return StoreError(
            f"the database file {path} is read-only; make it writable or point "
            f"VC_DATA_DIR at a writable folder"
        )
    if "locked" in msg or "busy" in msg:
        return StoreError(
            f"the database file {path} is locked by another program for more than "
            f"{BUSY_TIMEOUT_MS / 1000:.0f} s; close it and retry"
        )
    if "unable to open" in msg:
        return StoreError(f"cannot open the database file {path}: check the folder exists and is writable")
    if "malformed" in msg or "not a database" in msg:
        return StoreError(f"the database file {path} is corrupt ({exc}); restore a backup or move it away")
    return StoreError(f"database error on {path}: {exc}")


INTEGRITY_PROBLEMS_SHOWN = 10  # lines of the quick check kept for Health


class SQLiteStore(ArticleTable):
    """Store backed by one SQLite file in WAL mode."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        if str(self.path) != ":memory:":
            try:
                private_dir(self.path.parent)
            except OSError as exc:
                raise StoreError(f"cannot create the data folder {self.path.parent}: {exc}") from exc
            # the file (and so its WAL and shared-memory files, which SQLite creates with
            # the database's permissions) readable by this user only
            for path in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
                if path == self.path or path.exists():
                    with suppress(OSError):  # a read-only file or folder: opening it reports that
                        private_file(path)
        self._migrate()

    # --- plumbing -------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path,
                    timeout=BUSY_TIMEOUT_MS / 1000,
                    isolation_level=None,
                    check_same_thread=False,  # each thread has its own; close() may run elsewhere
                )
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA foreign_keys = ON")
                with suppress(sqlite3.OperationalError):  # read-only files cannot switch mode; reads still work
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def _migrate(self) -> None:
        conn = self._conn()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this release "
                f"understands ({len(MIGRATIONS)}); upgrade Voice Copilot"
            )
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._tx() as tx:
                for statement in sql.split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    # --- calls ----------------------------------------------------------------------
    def create_call(
        self, source: str, metadata: dict[str, Any] | None = None, call_id: str | None = None
    ) -> CallRecord:
        now = time.time()
        call_id = call_id or uuid.uuid4().hex[:12]
        with self._tx() as tx:
            tx.execute(
                "INSERT INTO calls (id, started_at, status, source, metadata, heartbeat_at) "
                "VALUES (?, ?, 'active', ?, ?, ?)",
                (call_id, now, source, json.dumps(metadata or {}), now),
            )
        return CallRecord(call_id, now, None, "active", source, dict(metadata or {}), None, now)

    def end_call(self, call_id: str, status: CallStatus = "ended", error: str | None = None) -> None:
        with self._tx() as tx:
            tx.execute(
                "UPDATE calls SET status = ?, ended_at = COALESCE(ended_at, ?), error = ? "
                "WHERE id = ?",
                (status, time.time(), error, call_id),
            )

    def heartbeat(self, call_id: str) -> None:
        with self._tx() as tx:
            tx.execute(
                "UPDATE calls SET heartbeat_at = ? WHERE id = ? AND status = 'active'",
                (time.time(), call_id),
            )

    def reap_stale_calls(self, max_silence_s: float) -> list[str]:
        """Mark active calls whose owner stopped heart-beating as failed."""
        cutoff = time.time() - max_silence_s
        stale = "status = 'active' AND COALESCE(heartbeat_at, started_at) < ?"
        # Pollers call this every second: read first, take the write lock only when needed.
        if not self._query(f"SELECT 1 FROM calls WHERE {stale} LIMIT 1", (cutoff,)):
            return []
        with self._tx() as tx:
            ids = [r["id"] for r in tx.execute(f"SELECT id FROM calls WHERE {stale}", (cutoff,)).fetchall()]
            tx.executemany(
                "UPDATE calls SET status = 'failed', ended_at = COALESCE(heartbeat_at, started_at), "
                "error = 'the process handling this call stopped unexpectedly' WHERE id = ?",
                [(call_id,) for call_id in ids],
            )
        return ids

    @staticmethod
    def _call(row: sqlite3.Row) -> CallRecord:
        return CallRecord(
            id=row["id"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            status=row["status"],
            source=row["source"],
            metadata=json.loads(row["metadata"] or "{}"),
            error=row["error"],
            heartbeat_at=row["heartbeat_at"],
            # sqlite3.Row: ``in`` tests values and there is no get(); the names are in keys()
            segment_count=row["segment_count"] if "segment_count" in row.keys() else 0,  # noqa: SIM118
        )

    _CALL_SELECT = (
        "SELECT c.*, (SELECT COUNT(*) FROM segments s WHERE s.call_id = c.id) AS segment_count "
        "FROM calls c"
    )

    def get_call(self, call_id: str) -> CallRecord | None:
        rows = self._query(f"{self._CALL_SELECT} WHERE c.id = ?", (call_id,))
        return self._call(rows[0]) if rows else None

    def list_calls(self, limit: int = 50, status: CallStatus | None = None) -> list[CallRecord]:
        if status is None:
            rows = self._query(f"{self._CALL_SELECT} ORDER BY c.started_at DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                f"{self._CALL_SELECT} WHERE c.status = ? ORDER BY c.started_at DESC LIMIT ?",
                (status, limit),
            )
        return [self._call(r) for r in rows]

    # --- segments -------------------------------------------------------------------
    def add_segment(
        self,
        call_id: str,
        speaker: Speaker,
        text: str,
        t_start_ms: float,
        t_end_ms: float,
        confidence: float | None = None,
    ) -> SegmentRecord:
        now = time.time()
        with self._tx() as tx:
            cur = tx.execute(
                "INSERT INTO segments (call_id, speaker, text, t_start_ms, t_end_ms, confidence, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (call_id, speaker, text, t_start_ms, t_end_ms, confidence, now),
            )
            seg_id = int(cur.lastrowid or 0)
        return SegmentRecord(seg_id, call_id, speaker, text, t_start_ms, t_end_ms, confidence, now)

    def segments(self, call_id: str, after_id: int = 0) -> list[SegmentRecord]:
        rows = self._query(
            "SELECT * FROM segments WHERE call_id = ? AND id > ? ORDER BY t_start_ms, id",
            (call_id, after_id),
        )
        return [self._segment(r) for r in rows]

    @staticmethod
    def _segment(r: sqlite3.Row) -> SegmentRecord:
        return SegmentRecord(
            r["id"], r["call_id"], r["speaker"], r["text"], r["t_start_ms"], r["t_end_ms"],
            r["confidence"], r["created_at"],
        )

    # --- events ---------------------------------------------------------------------
    def add_event(self, call_id: str, type: str, payload: dict[str, Any] | None = None) -> int:
        with self._tx() as tx:
            cur = tx.execute(
                "INSERT INTO events (call_id, ts, type, payload) VALUES (?, ?, ?, ?)",
                (call_id, time.time(), type, json.dumps(payload or {}, default=str)),
            )
            return int(cur.lastrowid or 0)

    def events(self, call_id: str, type: str | None = None) -> list[EventRecord]:
        if type is None:
            rows = self._query("SELECT * FROM events WHERE call_id = ? ORDER BY id", (call_id,))
        else:
            rows = self._query(
                "SELECT * FROM events WHERE call_id = ? AND type = ? ORDER BY id", (call_id, type)
            )
        return [self._event(r) for r in rows]

    @staticmethod
    def _event(r: sqlite3.Row) -> EventRecord:
        return EventRecord(r["id"], r["call_id"], r["ts"], r["type"], json.loads(r["payload"]))

    # --- timings --------------------------------------------------------------------
    def add_timing(self, timing: UtteranceTiming) -> None:
        with self._tx() as tx:
            tx.execute(
                "INSERT INTO utterance_timings (call_id, segment_id, speech_end_to_final_ms, "
                "endpoint_ms, stt_finalize_ms, decode_ms, audio_ms, rtf, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    timing.call_id, timing.segment_id, timing.speech_end_to_final_ms,
                    timing.endpoint_ms, timing.stt_finalize_ms, timing.decode_ms,
                    timing.audio_ms, timing.rtf, timing.created_at or time.time(),
                ),
            )

    def timings(self, call_id: str | None = None, limit: int = 1000) -> list[UtteranceTiming]:
        if call_id is None:
            rows = self._query("SELECT * FROM utterance_timings ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM utterance_timings WHERE call_id = ? ORDER BY id LIMIT ?",
                (call_id, limit),
            )
        return [self._timing(r) for r in rows]

    @staticmethod
    def _timing(r: sqlite3.Row) -> UtteranceTiming:
        return UtteranceTiming(
            speech_end_to_final_ms=r["speech_end_to_final_ms"],
            endpoint_ms=r["endpoint_ms"],
            stt_finalize_ms=r["stt_finalize_ms"],
            decode_ms=r["decode_ms"],
            audio_ms=r["audio_ms"],
            rtf=r["rtf"],
            segment_id=r["segment_id"],
            call_id=r["call_id"],
            created_at=r["created_at"],
        )

    # --- turns ----------------------------------------------------------------------
    _TURN_FIELDS = (
        "call_id", "turn_index", "caller_segment_id", "agent_segment_id", "caller_text",
        "agent_text", "endpoint_ms", "stt_ms", "reply_first_token_ms", "tts_first_audio_ms",
        "voice_to_voice_ms", "interrupted", "created_at",
    )

    def add_turn(self, turn: TurnRecord) -> None:
        values = [getattr(turn, f) for f in self._TURN_FIELDS]
        values[-2] = int(turn.interrupted)
        values[-1] = turn.created_at or time.time()
        with self._tx() as tx:
            tx.execute(
                f"INSERT INTO turns ({', '.join(self._TURN_FIELDS)}) "
                f"VALUES ({', '.join('?' * len(self._TURN_FIELDS))})",
                values,
            )

    def turns(self, call_id: str | None = None, limit: int = 1000) -> list[TurnRecord]:
        if call_id is None:
            rows = self._query("SELECT * FROM turns ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM turns WHERE call_id = ? ORDER BY turn_index, id LIMIT ?", (call_id, limit)
            )
        return [self._turn(r) for r in rows]

    @classmethod
    def _turn(cls, r: sqlite3.Row) -> TurnRecord:
        data = {f: r[f] for f in cls._TURN_FIELDS}
        data["interrupted"] = bool(data["interrupted"])
        return TurnRecord(**data)

    # --- across calls ---------------------------------------------------------------
    def search_calls(self, query: CallQuery) -> list[CallRecord]:
        where, params = ["1 = 1"], []
        if query.since is not None:
            where.append("c.started_at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("c.started_at < ?")
            params.append(query.until)
        if query.sources:
            where.append(f"c.source IN ({', '.join('?' * len(query.sources))})")
            params.extend(query.sources)
        if query.text.strip():
            escaped = query.text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(
                "EXISTS (SELECT 1 FROM segments s WHERE s.call_id = c.id "
                "AND lower(s.text) LIKE ? ESCAPE '\\')"
            )
            params.append(f"%{escaped}%")
        rows = self._query(
            f"{self._CALL_SELECT} WHERE {' AND '.join(where)} ORDER BY c.started_at DESC LIMIT ?",
            (*params, query.limit),
        )
        return [self._call(r) for r in rows]

    def _for_calls(self, sql: str, call_ids: Sequence[str], extra: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Run ``sql`` (with ``{ids}`` for the IN list) over ``call_ids`` in batches."""
        ids = list(dict.fromkeys(call_ids))
        rows: list[sqlite3.Row] = []
        for i in range(0, len(ids), IDS_PER_QUERY):
            batch = ids[i : i + IDS_PER_QUERY]
            rows += self._query(sql.format(ids=", ".join("?" * len(batch))), (*batch, *extra))
        return rows

    def segments_for_calls(self, call_ids: Sequence[str]) -> list[SegmentRecord]:
        sql = "SELECT * FROM segments WHERE call_id IN ({ids}) ORDER BY call_id, t_start_ms, id"
        return [self._segment(r) for r in self._for_calls(sql, call_ids)]

    def events_for_calls(self, call_ids: Sequence[str], types: Sequence[str] = ()) -> list[EventRecord]:
        sql = "SELECT * FROM events WHERE call_id IN ({ids})"
        if types:
            sql += f" AND type IN ({', '.join('?' * len(types))})"
        rows = self._for_calls(sql + " ORDER BY id", call_ids, tuple(types))
        return sorted((self._event(r) for r in rows), key=lambda e: e.id)

    def turns_for_calls(self, call_ids: Sequence[str]) -> list[TurnRecord]:
        sql = "SELECT * FROM turns WHERE call_id IN ({ids}) ORDER BY call_id, turn_index, id"
        return [self._turn(r) for r in self._for_calls(sql, call_ids)]

    def timings_for_calls(self, call_ids: Sequence[str]) -> list[UtteranceTiming]:
        sql = "SELECT * FROM utterance_timings WHERE call_id IN ({ids}) ORDER BY call_id, id"
        return [self._timing(r) for r in self._for_calls(sql, call_ids)]

    def shift_call(self, call_id: str, seconds: float) -> None:
        with self._tx() as tx:
            tx.execute(
                "UPDATE calls SET started_at = started_at + ?, ended_at = ended_at + ?, "
                "heartbeat_at = heartbeat_at + ? WHERE id = ?",
                (seconds, seconds, seconds, call_id),
            )
            for table, column in (
                ("segments", "created_at"), ("events", "ts"),
                ("utterance_timings", "created_at"), ("turns", "created_at"),
            ):
                tx.execute(f"UPDATE {table} SET {column} = {column} + ? WHERE call_id = ?", (seconds, call_id))

    # --- admin ----------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        t = time.perf_counter()
        problems = self.integrity_problems()
        try:
            calls: int | str = int(self._query("SELECT COUNT(*) AS n FROM calls")[0]["n"])
        except StoreError as exc:
            calls = f"unreadable: {exc}"
        return {
            "backend": "sqlite",
            "path": str(self.path),
            "schema_version": self.schema_version,
            "status": "damaged" if problems else "ok",
            "problems": problems,
            "calls": calls,
            "latency_ms": round((time.perf_counter() - t) * 1000, 2),
        }

    def integrity_problems(self, limit: int = INTEGRITY_PROBLEMS_SHOWN) -> list[str]:
        """What SQLite's quick check finds wrong with the file (empty: nothing)."""
        try:
            rows = self._conn().execute(f"PRAGMA quick_check({int(limit)})").fetchall()
        except sqlite3.Error as exc:
            return [str(exc)]  # e.g. "database disk image is malformed"
        found = [str(r[0]) for r in rows]
        return [] if found == ["ok"] else found

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()
