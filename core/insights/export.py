"""One call in full (transcript, turn latency, KB shown, disposition) and exports.

Exports are what a supervisor or a CRM import needs: one call as JSON (everything) or
CSV (the transcript lines), a filtered list of calls as CSV or JSON (one row per call).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.insights.analytics import CallData, CallSummary, Table, summarise, table
from core.pipeline.recording import recording_path
from core.store import EventRecord, SegmentRecord, Store, TurnRecord

LIST_COLUMNS = (
    "call_id", "started_at", "source", "status", "handle_s", "turns", "interrupted", "intent",
    "disposition", "sub_disposition", "confirmed_by", "overridden",
)


@dataclass(frozen=True)
class CallDetail:
    summary: CallSummary
    segments: tuple[SegmentRecord, ...]
    turns: tuple[TurnRecord, ...]
    kb_shown: tuple[str, ...]
    events: tuple[EventRecord, ...]
    recording: Path | None


def call_detail(store: Store, call_id: str, recordings_dir: Path | None = None) -> CallDetail | None:
    """Everything stored about one call; None if the store does not have it."""
    call = store.get_call(call_id)
    if call is None:
        return None
    events = tuple(store.events(call_id))
    turns = tuple(store.turns(call_id))
    shown: list[str] = []
    for e in events:
        if e.type == "kb_shown":
            shown += [str(a) for a in e.payload.get("articles") or () if str(a) not in shown]
    audio = recording_path(recordings_dir, call_id) if recordings_dir else None
    return CallDetail(
        summary=summarise(call, events, turns),
        segments=tuple(store.segments(call_id)),
        turns=turns,
        kb_shown=tuple(shown),
        events=events,
        recording=audio if audio is not None and audio.is_file() else None,
    )


def _list_row(s: CallSummary) -> tuple[Any, ...]:
    c = s.call
    return (
        c.id, c.started_at, c.source, c.status, None if s.handle_s is None else round(s.handle_s, 1), s.turns,
        s.interrupted, s.intent, s.disposition, s.sub_disposition, s.confirmed_by, s.overridden,
    )


def call_list(data: CallData) -> Table:
    """One row per call, newest first."""
    return table(LIST_COLUMNS, [_list_row(s) for s in data.summaries])


def list_json(data: CallData) -> str:
    return json.dumps(call_list(data).records(), indent=1)


def transcript_table(detail: CallDetail) -> Table:
    return table(
        ("call_id", "t_start_s", "t_end_s", "speaker", "text"),
        [(s.call_id, round(s.t_start_ms / 1000, 2), round(s.t_end_ms / 1000, 2), s.speaker, s.text)
         for s in detail.segments],
    )


def turns_table(detail: CallDetail) -> Table:
    columns = ("turn_index", "caller_text", "agent_text", "endpoint_ms", "stt_ms", "reply_first_token_ms",
               "tts_first_audio_ms", "voice_to_voice_ms", "interrupted")
    return table(columns, [tuple(getattr(t, c) for c in columns) for t in detail.turns])


def call_json(detail: CallDetail) -> str:
    """The whole call: record, outcome, transcript, turns and events."""
    s = detail.summary
    doc = {
        "call": dict(zip(LIST_COLUMNS, _list_row(s), strict=True)) | {
            "ended_at": s.call.ended_at, "metadata": s.call.metadata, "notes": s.notes},
        "transcript": transcript_table(detail).records(),
        "turns": turns_table(detail).records(),
        "kb_shown": list(detail.kb_shown),
        "events": [{"ts": e.ts, "type": e.type, "payload": e.payload} for e in detail.events],
    }
    return json.dumps(doc, indent=1, default=str)
