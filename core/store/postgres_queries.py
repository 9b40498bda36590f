"""Postgres queries across calls (metrics, call search) and moving a call in time.

Same results as the SQLite store's; id lists go to the server as one array parameter
(``= ANY(%s)``), so any number of ids is one query.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from core.store import CallQuery, CallRecord, EventRecord, SegmentRecord, TurnRecord, UtteranceTiming

# Tables whose rows carry a wall-clock time of their own, moved with their call.
_TIMESTAMPED = (("segments", "created_at"), ("events", "ts"), ("utterance_timings", "created_at"), ("turns", "created_at"))


class PostgresCallQueries:
    """The cross-call methods of :class:`core.store.Store`, mixed into the Postgres store."""

    _CALL_SELECT: str

    # The store supplies its plumbing and row conversions (see PostgresStore).
    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError("mix PostgresCallQueries into a store that defines _tx")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError("mix PostgresCallQueries into a store that defines _query")

    _call: Any
    _segment: Any
    _event: Any
    _turn: Any
    _timing: Any

    def search_calls(self, query: CallQuery) -> list[CallRecord]:
        where, params = ["TRUE"], []
        if query.since is not None:
            where.append("c.started_at >= %s")
            params.append(query.since)
        if query.until is not None:
            where.append("c.started_at < %s")
            params.append(query.until)
        if query.sources:
            where.append("c.source = ANY(%s)")
            params.append(list(query.sources))
        if query.text.strip():
            # strpos, not LIKE: the search text's % and _ are plain characters
            where.append(
                "EXISTS (SELECT 1 FROM segments s WHERE s.call_id = c.id "
                "AND strpos(lower(s.text), %s) > 0)"
            )
            params.append(query.text.strip().lower())
        rows = self._query(
            f"{self._CALL_SELECT} WHERE {' AND '.join(where)} ORDER BY c.started_at DESC LIMIT %s",
            (*params, query.limit),
        )
        return [self._call(r) for r in rows]

    def segments_for_calls(self, call_ids: Sequence[str]) -> list[SegmentRecord]:
        rows = self._query(
            "SELECT * FROM segments WHERE call_id = ANY(%s) ORDER BY call_id, t_start_ms, id",
            (list(call_ids),),
        )
        return [self._segment(r) for r in rows]

    def events_for_calls(self, call_ids: Sequence[str], types: Sequence[str] = ()) -> list[EventRecord]:
        if types:
            rows = self._query(
                "SELECT * FROM events WHERE call_id = ANY(%s) AND type = ANY(%s) ORDER BY id",
                (list(call_ids), list(types)),
            )
        else:
            rows = self._query("SELECT * FROM events WHERE call_id = ANY(%s) ORDER BY id", (list(call_ids),))
        return [self._event(r) for r in rows]

    def turns_for_calls(self, call_ids: Sequence[str]) -> list[TurnRecord]:
        rows = self._query(
            "SELECT * FROM turns WHERE call_id = ANY(%s) ORDER BY call_id, turn_index, id",
            (list(call_ids),),
        )
        return [self._turn(r) for r in rows]

    def timings_for_calls(self, call_ids: Sequence[str]) -> list[UtteranceTiming]:
        rows = self._query(
            "SELECT * FROM utterance_timings WHERE call_id = ANY(%s) ORDER BY call_id, id",
            (list(call_ids),),
        )
        return [self._timing(r) for r in rows]

    def shift_call(self, call_id: str, seconds: float) -> None:
        with self._tx() as tx:
            tx.execute(
                "UPDATE calls SET started_at = started_at + %s, ended_at = ended_at + %s, "
                "heartbeat_at = heartbeat_at + %s WHERE id = %s",
                (seconds, seconds, seconds, call_id),
            )
            for table, column in _TIMESTAMPED:
                tx.execute(f"UPDATE {table} SET {column} = {column} + %s WHERE call_id = %s", (seconds, call_id))
