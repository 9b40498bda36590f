"""Postgres implementation of the store (psycopg 3), for several app processes or Supabase.

Same semantics as :mod:`core.store.sqlite`: epoch-second timestamps taken by the writer,
append-only versioned migrations (recorded in a ``schema_version`` table), heartbeats and
reaping of calls whose process stopped. Several processes may share one database: each
sees the others' calls as they are written.

One connection per thread, in autocommit mode with explicit transactions; a connection
that broke (server restart, idle timeout of a pooler) is replaced on next use. Server-side
prepared statements are off so transaction poolers (pgbouncer, Supabase port 6543) work.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from core.store import (
    CallRecord,
    CallStatus,
    EventRecord,
    SegmentRecord,
    Speaker,
    StoreError,
    TurnRecord,
    UtteranceTiming,
)
from core.store.postgres_articles import PostgresArticleTable
from core.store.postgres_conninfo import (
    CONNECT_TIMEOUT_S,
    describe_target,
    libpq_url,
    psycopg_module,
    translate_error,
)
from core.store.postgres_queries import PostgresCallQueries
from core.store.postgres_schema import MIGRATIONS

READ_ATTEMPTS = 2  # reads retry once on a fresh connection if theirs broke; writes never
# Any number unique to this product: serialises migrations between processes.
MIGRATION_LOCK_KEY = 0x76630001

class PostgresStore(PostgresArticleTable, PostgresCallQueries):
    """Store backed by a Postgres database (local, managed, or Supabase)."""

    backend = "postgres"

    def __init__(self, url: str, connect_timeout_s: int = CONNECT_TIMEOUT_S):
        self._url = libpq_url(url)
        self.target = describe_target(url)
        self._connect_timeout_s = connect_timeout_s
        self._local = threading.local()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()
        self._migrate()

    # --- plumbing -------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        psycopg = psycopg_module()
        from psycopg.rows import dict_row

        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                prepare_threshold=None,  # transaction poolers cannot keep prepared statements
                connect_timeout=self._connect_timeout_s,
                row_factory=dict_row,
                application_name="voice-copilot",
            )
        except psycopg.Error as exc:
            raise translate_error(exc, self.target) from exc
        self._local.conn = conn
        with self._conns_lock:
            self._conns = [c for c in self._conns if not c.closed]
            self._conns.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        psycopg = psycopg_module()
        conn = self._conn()
        try:
            with conn.transaction():
                yield conn
        except psycopg.Error as exc:
            raise translate_error(exc, self.target) from exc

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        psycopg = psycopg_module()
        for attempt in range(READ_ATTEMPTS):
            conn = self._conn()
            try:
                return conn.execute(sql, params).fetchall()
            except psycopg.OperationalError as exc:
                # A read is safe to repeat on a new connection when the old one died
                # (server restart, pooler or firewall dropping idle connections).
                if not conn.broken or attempt + 1 == READ_ATTEMPTS:
                    raise translate_error(exc, self.target) from exc
            except psycopg.Error as exc:
                raise translate_error(exc, self.target) from exc
        raise AssertionError("unreachable")

    def _read_version(self, conn: Any) -> int:
        if conn.execute("SELECT to_regclass('schema_version') AS t").fetchone()["t"] is None:
            return 0
        return int(conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version").fetchone()["v"])

    def _check_version(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the Postgres database {self.target} has schema version {version}, newer "
                f"than this release understands ({len(MIGRATIONS)}); upgrade Voice Copilot"
            )

    def _migrate(self) -> None:
        psycopg = psycopg_module()
        try:
            version = self._read_version(self._conn())
        except psycopg.Error as exc:
            raise translate_error(exc, self.target) from exc
        self._check_version(version)
        if version == len(MIGRATIONS):
            return  # up to date: no write, so a read-only replica still opens
        with self._tx() as tx:
            # Two processes starting together must not both apply a migration.
            tx.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = self._read_version(tx)
            self._check_version(version)
            for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in sql.split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute("DELETE FROM schema_version")
                tx.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))

    @property
    def schema_version(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")[0]["v"])

    @staticmethod
    def _json(value: dict[str, Any] | None) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value or {}, dumps=functools.partial(json.dumps, default=str))

    # --- calls ----------------------------------------------------------------------
    def create_call(
        self, source: str, metadata: dict[str, Any] | None = None, call_id: str | None = None
    ) -> CallRecord:
        now = time.time()
        call_id = call_id or uuid.uuid4().hex[:12]
        with self._tx() as tx:
            tx.execute(
                "INSERT INTO calls (id, started_at, status, source, metadata, heartbeat_at) "
                "VALUES (%s, %s, 'active', %s, %s, %s)",
                (call_id, now, source, self._json(metadata), now),
            )
        return CallRecord(call_id, now, None, "active", source, dict(metadata or {}), None, now)

    def end_call(self, call_id: str, status: CallStatus = "ended", error: str | None = None) -> None:
        with self._tx() as tx:
            tx.execute(
                "UPDATE calls SET status = %s, ended_at = COALESCE(ended_at, %s), error = %s "
                "WHERE id = %s",
                (status, time.time(), error, call_id),
            )

    def heartbeat(self, call_id: str) -> None:
        with self._tx() as tx:
            tx.execute(
                "UPDATE calls SET heartbeat_at = %s WHERE id = %s AND status = 'active'",
                (time.time(), call_id),
            )

    def reap_stale_calls(self, max_silence_s: float) -> list[str]:
        """Mark active calls whose owner stopped heart-beating as failed."""
        cutoff = time.time() - max_silence_s
        stale = "status = 'active' AND COALESCE(heartbeat_at, started_at) < %s"
        # Pollers call this every second: read first, write only when needed.
        if not self._query(f"SELECT 1 FROM calls WHERE {stale} LIMIT 1", (cutoff,)):
            return []
        with self._tx() as tx:
            # The condition is re-checked row by row, so a call that heart-beat meanwhile
            # (another process) is left alone.
            rows = tx.execute(
                "UPDATE calls SET status = 'failed', ended_at = COALESCE(heartbeat_at, started_at), "
                f"error = 'the process handling this call stopped unexpectedly' WHERE {stale} "
                "RETURNING id, started_at",
                (cutoff,),
            ).fetchall()
        return [r["id"] for r in sorted(rows, key=lambda r: (r["started_at"], r["id"]))]

    @staticmethod
    def _call(row: dict[str, Any]) -> CallRecord:
        return CallRecord(
            id=row["id"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            status=row["status"],
            source=row["source"],
            metadata=dict(row["metadata"] or {}),
            error=row["error"],
            heartbeat_at=row["heartbeat_at"],
            segment_count=int(row.get("segment_count") or 0),
        )

    _CALL_SELECT = (
        "SELECT c.*, (SELECT COUNT(*) FROM segments s WHERE s.call_id = c.id) AS segment_count "
        "FROM calls c"
    )

    def get_call(self, call_id: str) -> CallRecord | None:
        rows = self._query(f"{self._CALL_SELECT} WHERE c.id = %s", (call_id,))
        return self._call(rows[0]) if rows else None

    def list_calls(self, limit: int = 50, status: CallStatus | None = None) -> list[CallRecord]:
        # started_at ties (same clock tick) fall back to insertion order, like SQLite's rowid
        if status is None:
            rows = self._query(f"{self._CALL_SELECT} ORDER BY c.started_at DESC LIMIT %s", (limit,))
        else:
            rows = self._query(
                f"{self._CALL_SELECT} WHERE c.status = %s ORDER BY c.started_at DESC LIMIT %s",
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
            row = tx.execute(
                "INSERT INTO segments (call_id, speaker, text, t_start_ms, t_end_ms, confidence, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (call_id, speaker, text, t_start_ms, t_end_ms, confidence, now),
            ).fetchone()
        return SegmentRecord(int(row["id"]), call_id, speaker, text, t_start_ms, t_end_ms, confidence, now)

    def segments(self, call_id: str, after_id: int = 0) -> list[SegmentRecord]:
        rows = self._query(
            "SELECT * FROM segments WHERE call_id = %s AND id > %s ORDER BY t_start_ms, id",
            (call_id, after_id),
        )
        return [self._segment(r) for r in rows]

    @staticmethod
    def _segment(r: dict[str, Any]) -> SegmentRecord:
        return SegmentRecord(
            int(r["id"]), r["call_id"], r["speaker"], r["text"], r["t_start_ms"], r["t_end_ms"],
            r["confidence"], r["created_at"],
        )

    # --- events ---------------------------------------------------------------------
    def add_event(self, call_id: str, type: str, payload: dict[str, Any] | None = None) -> int:
        with self._tx() as tx:
            row = tx.execute(
                "INSERT INTO events (call_id, ts, type, payload) VALUES (%s, %s, %s, %s) RETURNING id",
                (call_id, time.time(), type, self._json(payload)),
            ).fetchone()
        return int(row["id"])

    def events(self, call_id: str, type: str | None = None) -> list[EventRecord]:
        if type is None:
            rows = self._query("SELECT * FROM events WHERE call_id = %s ORDER BY id", (call_id,))
        else:
            rows = self._query(
                "SELECT * FROM events WHERE call_id = %s AND type = %s ORDER BY id", (call_id, type)
            )
        return [self._event(r) for r in rows]

    @staticmethod
    def _event(r: dict[str, Any]) -> EventRecord:
        return EventRecord(int(r["id"]), r["call_id"], r["ts"], r["type"], dict(r["payload"]))

    # --- timings --------------------------------------------------------------------
    _TIMING_FIELDS = (
        "call_id", "segment_id", "speech_end_to_final_ms", "endpoint_ms", "stt_finalize_ms",
        "decode_ms", "audio_ms", "rtf", "created_at",
    )

    def add_timing(self, timing: UtteranceTiming) -> None:
        values = [getattr(timing, f) for f in self._TIMING_FIELDS]
        values[-1] = timing.created_at or time.time()
        with self._tx() as tx:
            tx.execute(
                f"INSERT INTO utterance_timings ({', '.join(self._TIMING_FIELDS)}) "
                f"VALUES ({', '.join(['%s'] * len(self._TIMING_FIELDS))})",
                values,
            )

    def timings(self, call_id: str | None = None, limit: int = 1000) -> list[UtteranceTiming]:
        if call_id is None:
            rows = self._query("SELECT * FROM utterance_timings ORDER BY id DESC LIMIT %s", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM utterance_timings WHERE call_id = %s ORDER BY id LIMIT %s",
                (call_id, limit),
            )
        return [self._timing(r) for r in rows]

    @classmethod
    def _timing(cls, r: dict[str, Any]) -> UtteranceTiming:
        return UtteranceTiming(**{f: r[f] for f in cls._TIMING_FIELDS})

    # --- turns ----------------------------------------------------------------------
    _TURN_FIELDS = (
        "call_id", "turn_index", "caller_segment_id", "agent_segment_id", "caller_text",
        "agent_text", "endpoint_ms", "stt_ms", "reply_first_token_ms", "tts_first_audio_ms",
        "voice_to_voice_ms", "interrupted", "created_at",
    )

    def add_turn(self, turn: TurnRecord) -> None:
        values = [getattr(turn, f) for f in self._TURN_FIELDS]
        values[-2] = bool(turn.interrupted)
        values[-1] = turn.created_at or time.time()
        with self._tx() as tx:
            tx.execute(
                f"INSERT INTO turns ({', '.join(self._TURN_FIELDS)}) "
                f"VALUES ({', '.join(['%s'] * len(self._TURN_FIELDS))})",
                values,
            )

    def turns(self, call_id: str | None = None, limit: int = 1000) -> list[TurnRecord]:
        if call_id is None:
            rows = self._query("SELECT * FROM turns ORDER BY id DESC LIMIT %s", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM turns WHERE call_id = %s ORDER BY turn_index, id LIMIT %s",
                (call_id, limit),
            )
        return [self._turn(r) for r in rows]

    @classmethod
    def _turn(cls, r: dict[str, Any]) -> TurnRecord:
        return TurnRecord(**{f: r[f] for f in cls._TURN_FIELDS})

    # --- admin ----------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        t = time.perf_counter()
        problems = self.integrity_problems()
        try:
            calls: int | str = int(self._query("SELECT COUNT(*) AS n FROM calls")[0]["n"])
        except StoreError as exc:
            calls = f"unreadable: {exc}"
        return {
            "backend": "postgres",
            "target": self.target,
            "schema_version": self.schema_version,
            "status": "damaged" if problems else "ok",
            "problems": problems,
            "calls": calls,
            "latency_ms": round((time.perf_counter() - t) * 1000, 2),
        }

    def integrity_problems(self) -> list[str]:
        """Tables the server cannot read (Postgres checks its own pages; this finds a
        missing or unreadable table)."""
        problems = []
        for table in ("calls", "segments", "events", "utterance_timings", "turns", "articles"):
            try:
                self._query(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608 - fixed table names
            except StoreError as exc:
                problems.append(f"{table}: {exc}")
        return problems

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with suppress(Exception):  # a dead connection has nothing left to release
                    conn.close()
            self._conns.clear()
        self._local = threading.local()
