"""The store's tables, once for every database (SQLAlchemy Core).

Column types render as the hand-written schema of earlier releases did: ``REAL`` and
``TEXT`` (JSON as text) on SQLite; ``DOUBLE PRECISION``, ``JSONB``, ``BOOLEAN`` and identity
columns on Postgres. Timestamps are epoch seconds taken by the writer on both, so both
return identical records. The migrations (``core/store/migrations``) create these tables;
a test checks the two agree.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


def dumps(value: Any) -> str:
    """JSON text of a payload; what JSON cannot hold is stored as its ``str``."""
    return json.dumps(value, default=str)


class _PerDatabase(TypeDecorator[Any]):
    """A column type that is one type on SQLite and another on Postgres."""

    on_sqlite: TypeEngine[Any]
    on_postgres: TypeEngine[Any]

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(self.on_sqlite if dialect.name == "sqlite" else self.on_postgres)


class Seconds(_PerDatabase):
    """A float: ``REAL`` on SQLite, ``DOUBLE PRECISION`` on Postgres."""

    impl = Double
    cache_ok = True  # set on each class: SQLAlchemy does not inherit it
    on_sqlite, on_postgres = REAL(), Double()


class Document(_PerDatabase):
    """A JSON value: ``TEXT`` on SQLite, ``JSONB`` on Postgres (queryable in place)."""

    impl = Text
    cache_ok = True  # set on each class: SQLAlchemy does not inherit it
    on_sqlite, on_postgres = Text(), JSONB()

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return value if dialect.name == "postgresql" else dumps(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return value if dialect.name == "postgresql" or value is None else json.loads(value)


class Flag(_PerDatabase):
    """A boolean: ``INTEGER`` 0/1 on SQLite, ``BOOLEAN`` on Postgres."""

    impl = Boolean
    cache_ok = True  # set on each class: SQLAlchemy does not inherit it
    on_sqlite, on_postgres = Integer(), Boolean()

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else (int(value) if dialect.name == "sqlite" else bool(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else bool(value)


RowId = BigInteger().with_variant(Integer(), "sqlite")


def row_id() -> Column[int]:
    """``INTEGER PRIMARY KEY AUTOINCREMENT`` on SQLite (with ``NOT NULL``, which a rowid
    column is anyway), a ``BIGINT`` identity on Postgres."""
    return Column("id", RowId, Identity(), primary_key=True)


def seconds(name: str, nullable: bool = False) -> Column[float]:
    return Column(name, Seconds(), nullable=nullable)


def call_ref(name: str = "call_id") -> Column[str]:
    return Column(name, Text, ForeignKey("calls.id", ondelete="CASCADE"), nullable=False)


def segment_ref(name: str) -> Column[int]:
    return Column(name, RowId, ForeignKey("segments.id", ondelete="SET NULL"))


metadata = MetaData()

# Text keys say nothing about NULL, as the hand-written schema did (Postgres adds NOT NULL
# to any primary key; SQLite would not have).
calls = Table(
    "calls", metadata,
    Column("id", Text, primary_key=True, nullable=True),
    seconds("started_at"),
    seconds("ended_at", nullable=True),
    Column("status", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("metadata", Document(), nullable=False, server_default=text("'{}'")),
    Column("error", Text),
    seconds("heartbeat_at", nullable=True),
    CheckConstraint("status IN ('active', 'ended', 'failed')", name="calls_status_check"),
)
Index("calls_status", calls.c.status, calls.c.started_at)
Index("calls_started", calls.c.started_at)

segments = Table(
    "segments", metadata,
    row_id(),
    call_ref(),
    Column("speaker", Text, nullable=False),
    Column("text", Text, nullable=False),
    seconds("t_start_ms"),
    seconds("t_end_ms"),
    seconds("confidence", nullable=True),
    seconds("created_at"),
    sqlite_autoincrement=True,
)
Index("segments_call", segments.c.call_id, segments.c.id)

events = Table(
    "events", metadata,
    row_id(),
    call_ref(),
    seconds("ts"),
    Column("type", Text, nullable=False),
    Column("payload", Document(), nullable=False, server_default=text("'{}'")),
    sqlite_autoincrement=True,
)
Index("events_call", events.c.call_id, events.c.type, events.c.id)

utterance_timings = Table(
    "utterance_timings", metadata,
    row_id(),
    call_ref(),
    segment_ref("segment_id"),
    *(seconds(name) for name in ("speech_end_to_final_ms", "endpoint_ms", "stt_finalize_ms", "decode_ms",
                                 "audio_ms", "rtf", "created_at")),
    sqlite_autoincrement=True,
)
Index("timings_call", utterance_timings.c.call_id, utterance_timings.c.id)

turns = Table(
    "turns", metadata,
    row_id(),
    call_ref(),
    Column("turn_index", Integer, nullable=False),
    segment_ref("caller_segment_id"),
    segment_ref("agent_segment_id"),
    Column("caller_text", Text, nullable=False),
    Column("agent_text", Text, nullable=False),
    *(seconds(name, nullable=True) for name in ("endpoint_ms", "stt_ms", "reply_first_token_ms",
                                                "tts_first_audio_ms", "voice_to_voice_ms")),
    Column("interrupted", Flag(), nullable=False),
    seconds("created_at"),
    sqlite_autoincrement=True,
)
Index("turns_call", turns.c.call_id, turns.c.turn_index)

articles = Table(
    "articles", metadata,
    Column("id", Text, primary_key=True, nullable=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("tags", Document(), nullable=False, server_default=text("'[]'")),
    Column("intents", Document(), nullable=False, server_default=text("'[]'")),
    Column("category", Text, nullable=False, server_default=text("''")),
    Column("source", Text, nullable=False, server_default=text("''")),
    seconds("created_at"),
    seconds("updated_at"),
    seconds("deleted_at", nullable=True),
)
Index(
    "articles_live_title", func.lower(articles.c.title), unique=True,
    sqlite_where=articles.c.deleted_at.is_(None), postgresql_where=articles.c.deleted_at.is_(None),
)
