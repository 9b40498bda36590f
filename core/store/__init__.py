"""Persistence interface: calls, segments, events, per-utterance timings and KB articles.

Callers depend on :class:`Store` only. One implementation over SQLAlchemy Core
(:mod:`core.store.sql_store`, tables in :mod:`core.store.tables`) serves the embedded SQLite
file (:mod:`core.store.sqlite`) and Postgres (:mod:`core.store.postgres`); the schema is
migrated at start-up by Alembic (:mod:`core.store.migrate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

CallStatus = Literal["active", "ended", "failed"]
Speaker = Literal["caller", "agent", "system"]


class StoreError(RuntimeError):
    """The store cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class CallRecord:
    id: str
    started_at: float
    ended_at: float | None
    status: CallStatus
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    heartbeat_at: float | None = None
    segment_count: int = 0


@dataclass(frozen=True)
class CallQuery:
    """Which calls to return from :meth:`Store.search_calls` (every field optional).

    Attributes:
        since: calls started at or after this Unix time (s).
        until: calls started before this Unix time (s).
        sources: only these sources (``talk``, ``browser``, ``demo`` ...).
        text: case-insensitive substring of any transcript line.
        limit: at most this many calls, newest first.
    """

    since: float | None = None
    until: float | None = None
    sources: tuple[str, ...] = ()
    text: str = ""
    limit: int = 5000


@dataclass(frozen=True)
class SegmentRecord:
    id: int
    call_id: str
    speaker: Speaker
    text: str
    t_start_ms: float
    t_end_ms: float
    confidence: float | None
    created_at: float


@dataclass(frozen=True)
class EventRecord:
    id: int
    call_id: str
    ts: float
    type: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class UtteranceTiming:
    """Where the time went for one utterance (all ms; rtf = decode time / audio time)."""

    speech_end_to_final_ms: float
    endpoint_ms: float
    stt_finalize_ms: float
    decode_ms: float
    audio_ms: float
    rtf: float
    segment_id: int | None = None
    call_id: str = ""
    created_at: float = 0.0


@dataclass(frozen=True)
class TurnRecord:
    """One caller → agent exchange and where its time went (ms; None = did not happen)."""

    call_id: str
    turn_index: int
    caller_segment_id: int | None
    agent_segment_id: int | None
    caller_text: str
    agent_text: str
    endpoint_ms: float | None
    stt_ms: float | None
    reply_first_token_ms: float | None
    tts_first_audio_ms: float | None
    voice_to_voice_ms: float | None
    interrupted: bool
    created_at: float = 0.0


@dataclass(frozen=True)
class ArticleRecord:
    """A knowledge-base article as stored (the editable copy; the pack only seeds it).

    Attributes:
        id: stable identifier (a slug); the key for updates and deletes.
        title: unique among live articles, ignoring case.
        body: Markdown; ``##`` headings split it into passages for search.
        tags: free-form labels.
        intents: ids of the pack's intents the article answers.
        category: optional grouping (the pack's ``category``).
        source: where it came from (``pack:<file>``, ``editor``, ``import:<file>``).
        created_at, updated_at: Unix seconds, set by the store.
        deleted_at: Unix seconds for a deleted article (kept as a tombstone so the pack
            does not bring it back), ``None`` for a live one.
    """

    id: str
    title: str
    body: str
    tags: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()
    category: str = ""
    source: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    deleted_at: float | None = None


class Store(Protocol):
    def create_call(
        self, source: str, metadata: dict[str, Any] | None = None, call_id: str | None = None
    ) -> CallRecord: ...
    def end_call(self, call_id: str, status: CallStatus = "ended", error: str | None = None) -> None: ...
    def heartbeat(self, call_id: str) -> None: ...
    def get_call(self, call_id: str) -> CallRecord | None: ...
    def list_calls(self, limit: int = 50, status: CallStatus | None = None) -> list[CallRecord]: ...
    def reap_stale_calls(self, max_silence_s: float) -> list[str]: ...
    def add_segment(
        self,
        call_id: str,
        speaker: Speaker,
        text: str,
        t_start_ms: float,
        t_end_ms: float,
        confidence: float | None = None,
    ) -> SegmentRecord: ...
    def segments(self, call_id: str, after_id: int = 0) -> list[SegmentRecord]: ...
    def add_event(self, call_id: str, type: str, payload: dict[str, Any] | None = None) -> int: ...
    def events(self, call_id: str, type: str | None = None) -> list[EventRecord]: ...
    def add_timing(self, timing: UtteranceTiming) -> None: ...
    def timings(self, call_id: str | None = None, limit: int = 1000) -> list[UtteranceTiming]: ...
    def add_turn(self, turn: TurnRecord) -> None: ...
    def turns(self, call_id: str | None = None, limit: int = 1000) -> list[TurnRecord]: ...
    def list_articles(self, include_deleted: bool = False) -> list[ArticleRecord]:
        """Articles ordered by title (case-insensitive); tombstones only when asked."""
        ...
    def get_article(self, article_id: str) -> ArticleRecord | None:
        """A live article, or None (unknown or deleted)."""
        ...
    def save_articles(self, articles: Sequence[ArticleRecord]) -> list[ArticleRecord]:
        """Insert or replace articles by id, all in one transaction (all or nothing).

        ``created_at`` of an existing id is kept, ``updated_at`` is now, and saving a
        deleted id brings it back. Two live articles whose titles differ only in case
        make the whole batch fail.

        Raises:
            StoreError: nothing was saved; the message says why.
        """
        ...
    def delete_article(self, article_id: str) -> bool:
        """Mark an article deleted (a tombstone); False if it was not live."""
        ...
    # --- across calls (metrics, call search); ``call_ids`` may be long -------------
    def search_calls(self, query: CallQuery) -> list[CallRecord]: ...
    def segments_for_calls(self, call_ids: Sequence[str]) -> list[SegmentRecord]: ...
    def events_for_calls(
        self, call_ids: Sequence[str], types: Sequence[str] = ()
    ) -> list[EventRecord]: ...
    def turns_for_calls(self, call_ids: Sequence[str]) -> list[TurnRecord]: ...
    def timings_for_calls(self, call_ids: Sequence[str]) -> list[UtteranceTiming]: ...
    def shift_call(self, call_id: str, seconds: float) -> None:
        """Move every timestamp of a call by ``seconds`` (demo calls are recorded now
        and placed in the past; times within the call are unchanged)."""
        ...
    def health(self) -> dict[str, Any]:
        """Backend, schema version, ``status`` ("ok" or "damaged") with ``problems``, and
        how quickly the store answered."""
        ...

    def integrity_problems(self) -> list[str]:
        """What is damaged in the store (empty: nothing found)."""
        ...

    def close(self) -> None: ...
