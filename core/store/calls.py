"""Calls and what is recorded during one: lines (segments), events, utterance timings and
turns; the row-to-record conversions the other queries share.

Statements are built once, at import, so SQLAlchemy compiles each once per database.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Executable

from core.store import (
    CallRecord,
    CallStatus,
    EventRecord,
    SegmentRecord,
    Speaker,
    TurnRecord,
    UtteranceTiming,
)
from core.store.tables import calls, events, segments, turns, utterance_timings

TIMING_FIELDS = tuple(f for f in UtteranceTiming.__dataclass_fields__)
TURN_FIELDS = tuple(f for f in TurnRecord.__dataclass_fields__)

SEGMENT_COUNT = (
    select(func.count()).where(segments.c.call_id == calls.c.id).scalar_subquery().label("segment_count")
)
CALL_SELECT = select(calls, SEGMENT_COUNT)
SEGMENT_SELECT = select(*(segments.c[f] for f in SegmentRecord.__dataclass_fields__))
EVENT_SELECT = select(*(events.c[f] for f in EventRecord.__dataclass_fields__))
TIMING_SELECT = select(*(utterance_timings.c[f] for f in TIMING_FIELDS))
TURN_SELECT = select(*(turns.c[f] for f in TURN_FIELDS))
STALE = (calls.c.status == "active") & (
    func.coalesce(calls.c.heartbeat_at, calls.c.started_at) < bindparam("cutoff")
)

_INSERT_SEGMENT = insert(segments)
_INSERT_EVENT = insert(events)
_SEGMENTS_OF_CALL = SEGMENT_SELECT.where(
    segments.c.call_id == bindparam("call_id"), segments.c.id > bindparam("after_id")
).order_by(segments.c.t_start_ms, segments.c.id)
_REAP = (
    update(calls)
    .where(STALE)
    .values(status="failed", ended_at=func.coalesce(calls.c.heartbeat_at, calls.c.started_at),
            error="the process handling this call stopped unexpectedly")
    .returning(calls.c.id, calls.c.started_at)
)


def call_record(row: Row[Any]) -> CallRecord:
    r = row._mapping
    return CallRecord(
        id=r["id"], started_at=r["started_at"], ended_at=r["ended_at"], status=r["status"],
        source=r["source"], metadata=dict(r["metadata"] or {}), error=r["error"],
        heartbeat_at=r["heartbeat_at"], segment_count=int(r["segment_count"] or 0),
    )


def segment_record(row: Row[Any]) -> SegmentRecord:
    return SegmentRecord(*row)


def event_record(row: Row[Any]) -> EventRecord:
    return EventRecord(*row)


def timing_record(row: Row[Any]) -> UtteranceTiming:
    return UtteranceTiming(*row)


def turn_record(row: Row[Any]) -> TurnRecord:
    return TurnRecord(*row)


class CallLog:
    """The per-call methods of :class:`core.store.Store`, mixed into the store."""

    # The store supplies its transaction and read plumbing (see SqlStore).
    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError("mix CallLog into a store that defines _tx")

    def _rows(self, statement: Executable | str, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        raise NotImplementedError("mix CallLog into a store that defines _rows")

    # --- calls ----------------------------------------------------------------------
    def create_call(
        self, source: str, metadata: dict[str, Any] | None = None, call_id: str | None = None
    ) -> CallRecord:
        now = time.time()
        call_id = call_id or uuid.uuid4().hex[:12]
        with self._tx() as tx:
            tx.execute(insert(calls), {"id": call_id, "started_at": now, "status": "active", "source": source,
                                       "metadata": metadata or {}, "heartbeat_at": now})
        return CallRecord(call_id, now, None, "active", source, dict(metadata or {}), None, now)

    def end_call(self, call_id: str, status: CallStatus = "ended", error: str | None = None) -> None:
        with self._tx() as tx:
            tx.execute(
                update(calls).where(calls.c.id == call_id).values(
                    status=status, ended_at=func.coalesce(calls.c.ended_at, time.time()), error=error
                )
            )

    def heartbeat(self, call_id: str) -> None:
        with self._tx() as tx:
            tx.execute(
                update(calls).where(calls.c.id == call_id, calls.c.status == "active").values(heartbeat_at=time.time())
            )

    def reap_stale_calls(self, max_silence_s: float) -> list[str]:
        """Mark active calls whose owner stopped heart-beating as failed."""
        cutoff = {"cutoff": time.time() - max_silence_s}
        # Pollers call this every second: read first, take the write lock only when needed.
        if not self._rows(select(calls.c.id).where(STALE).limit(1), cutoff):
            return []
        with self._tx() as tx:
            # The condition is re-checked row by row, so a call that heart-beat meanwhile
            # (another process) is left alone.
            rows = tx.execute(_REAP, cutoff).all()
        return [r.id for r in sorted(rows, key=lambda r: (r.started_at, r.id))]

    def get_call(self, call_id: str) -> CallRecord | None:
        rows = self._rows(CALL_SELECT.where(calls.c.id == call_id))
        return call_record(rows[0]) if rows else None

    def list_calls(self, limit: int = 50, status: CallStatus | None = None) -> list[CallRecord]:
        query = CALL_SELECT if status is None else CALL_SELECT.where(calls.c.status == status)
        return [call_record(r) for r in self._rows(query.order_by(calls.c.started_at.desc()).limit(limit))]

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
        values = {"call_id": call_id, "speaker": speaker, "text": text, "t_start_ms": t_start_ms,
                  "t_end_ms": t_end_ms, "confidence": confidence, "created_at": now}
        with self._tx() as tx:
            seg_id = int(tx.execute(_INSERT_SEGMENT, values).inserted_primary_key[0])
        return SegmentRecord(seg_id, call_id, speaker, text, t_start_ms, t_end_ms, confidence, now)

    def segments(self, call_id: str, after_id: int = 0) -> list[SegmentRecord]:
        return [segment_record(r) for r in self._rows(_SEGMENTS_OF_CALL, {"call_id": call_id, "after_id": after_id})]

    # --- events ---------------------------------------------------------------------
    def add_event(self, call_id: str, type: str, payload: dict[str, Any] | None = None) -> int:
        values = {"call_id": call_id, "ts": time.time(), "type": type, "payload": payload or {}}
        with self._tx() as tx:
            return int(tx.execute(_INSERT_EVENT, values).inserted_primary_key[0])

    def events(self, call_id: str, type: str | None = None) -> list[EventRecord]:
        query = EVENT_SELECT.where(events.c.call_id == call_id)
        if type is not None:
            query = query.where(events.c.type == type)
        return [event_record(r) for r in self._rows(query.order_by(events.c.id))]

    # --- timings --------------------------------------------------------------------
    def add_timing(self, timing: UtteranceTiming) -> None:
        values = {f: getattr(timing, f) for f in TIMING_FIELDS}
        values["created_at"] = timing.created_at or time.time()
        with self._tx() as tx:
            tx.execute(insert(utterance_timings), values)

    def timings(self, call_id: str | None = None, limit: int = 1000) -> list[UtteranceTiming]:
        if call_id is None:
            query = TIMING_SELECT.order_by(utterance_timings.c.id.desc())
        else:
            query = TIMING_SELECT.where(utterance_timings.c.call_id == call_id).order_by(utterance_timings.c.id)
        return [timing_record(r) for r in self._rows(query.limit(limit))]

    # --- turns ----------------------------------------------------------------------
    def add_turn(self, turn: TurnRecord) -> None:
        values = {f: getattr(turn, f) for f in TURN_FIELDS}
        values["interrupted"] = bool(turn.interrupted)
        values["created_at"] = turn.created_at or time.time()
        with self._tx() as tx:
            tx.execute(insert(turns), values)

    def turns(self, call_id: str | None = None, limit: int = 1000) -> list[TurnRecord]:
        if call_id is None:
            query = TURN_SELECT.order_by(turns.c.id.desc())
        else:
            query = TURN_SELECT.where(turns.c.call_id == call_id).order_by(turns.c.turn_index, turns.c.id)
        return [turn_record(r) for r in self._rows(query.limit(limit))]
