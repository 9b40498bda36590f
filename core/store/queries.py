"""Queries across calls (metrics, call search) and moving a call in time.

Id lists are sent in batches of :data:`IDS_PER_QUERY` (an ``IN`` list of bound
parameters: well under SQLite's limit of 32,766 and Postgres's of 65,535).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, exists, func, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Executable

from core.store import CallQuery, CallRecord, EventRecord, SegmentRecord, TurnRecord, UtteranceTiming
from core.store.calls import (
    CALL_SELECT,
    EVENT_SELECT,
    SEGMENT_SELECT,
    TIMING_SELECT,
    TURN_SELECT,
    call_record,
    event_record,
    segment_record,
    timing_record,
    turn_record,
)
from core.store.tables import calls, events, segments, turns, utterance_timings

IDS_PER_QUERY = 900
R = TypeVar("R")
_IDS = bindparam("ids", expanding=True)
# Tables whose rows carry a wall-clock time of their own, moved with their call.
_TIMESTAMPED = ((segments, "created_at"), (events, "ts"), (utterance_timings, "created_at"), (turns, "created_at"))

_SEGMENTS = SEGMENT_SELECT.where(segments.c.call_id.in_(_IDS)).order_by(
    segments.c.call_id, segments.c.t_start_ms, segments.c.id
)
_TURNS = TURN_SELECT.where(turns.c.call_id.in_(_IDS)).order_by(turns.c.call_id, turns.c.turn_index, turns.c.id)
_TIMINGS = TIMING_SELECT.where(utterance_timings.c.call_id.in_(_IDS)).order_by(
    utterance_timings.c.call_id, utterance_timings.c.id
)


class CallQueries:
    """The cross-call methods of :class:`core.store.Store`, mixed into the store."""

    # The store supplies its transaction and read plumbing (see SqlStore).
    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError("mix CallQueries into a store that defines _tx")

    def _rows(self, statement: Executable | str, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        raise NotImplementedError("mix CallQueries into a store that defines _rows")

    def search_calls(self, query: CallQuery) -> list[CallRecord]:
        stmt = CALL_SELECT
        if query.since is not None:
            stmt = stmt.where(calls.c.started_at >= query.since)
        if query.until is not None:
            stmt = stmt.where(calls.c.started_at < query.until)
        if query.sources:
            stmt = stmt.where(calls.c.source.in_(query.sources))
        if query.text.strip():
            # autoescape: the search text's % and _ are plain characters
            said = func.lower(segments.c.text).contains(query.text.strip().lower(), autoescape=True)
            stmt = stmt.where(exists().where(segments.c.call_id == calls.c.id, said))
        return [call_record(r) for r in self._rows(stmt.order_by(calls.c.started_at.desc()).limit(query.limit))]

    def _for_calls(self, stmt: Select[Any], call_ids: Sequence[str], record: Callable[[Row[Any]], R],
                   **params: Any) -> list[R]:
        """Run ``stmt`` (``IN :ids``) over ``call_ids`` in batches."""
        ids = list(dict.fromkeys(call_ids))
        rows: list[Row[Any]] = []
        for i in range(0, len(ids), IDS_PER_QUERY):
            rows += self._rows(stmt, {"ids": ids[i : i + IDS_PER_QUERY], **params})
        return [record(r) for r in rows]

    def segments_for_calls(self, call_ids: Sequence[str]) -> list[SegmentRecord]:
        return self._for_calls(_SEGMENTS, call_ids, segment_record)

    def events_for_calls(self, call_ids: Sequence[str], types: Sequence[str] = ()) -> list[EventRecord]:
        stmt = EVENT_SELECT.where(events.c.call_id.in_(_IDS))
        if types:
            stmt = stmt.where(events.c.type.in_(list(types)))
        found = self._for_calls(stmt.order_by(events.c.id), call_ids, event_record)
        return sorted(found, key=lambda e: e.id)

    def turns_for_calls(self, call_ids: Sequence[str]) -> list[TurnRecord]:
        return self._for_calls(_TURNS, call_ids, turn_record)

    def timings_for_calls(self, call_ids: Sequence[str]) -> list[UtteranceTiming]:
        return self._for_calls(_TIMINGS, call_ids, timing_record)

    def shift_call(self, call_id: str, seconds: float) -> None:
        with self._tx() as tx:
            tx.execute(
                update(calls).where(calls.c.id == call_id).values(
                    started_at=calls.c.started_at + seconds, ended_at=calls.c.ended_at + seconds,
                    heartbeat_at=calls.c.heartbeat_at + seconds,
                )
            )
            for table, column in _TIMESTAMPED:
                tx.execute(update(table).where(table.c.call_id == call_id).values({column: table.c[column] + seconds}))
