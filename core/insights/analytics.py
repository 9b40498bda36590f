"""Call metrics from stored records: latency, volumes, outcomes.

Pure functions over store records; every figure comes from what the pipeline stored
(turns, segments, timings, events). Results are :class:`Table` objects — named
columns and rows — that the UI charts and offers as CSV.

Intent of a call: the ``intent`` events written per caller line (the demo data writes
them with the pack's intent classifier); the call's intent is the first in-scope one
(the reason for calling). Calls without such events count as ``unknown``.
Disposition of a call: the last ``disposition_confirmed`` event, else the last
``disposition_proposed`` (shown as proposed), else ``not set``.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.store import CallQuery, CallRecord, EventRecord, SegmentRecord, Store, TurnRecord, UtteranceTiming

DEFAULT_LATENCY_TARGET_MS = 800.0
DEFAULT_DEAD_AIR_S = 3.0
HOUR_S = 3600.0
DAY_S = 86400.0
# Spans longer than this are bucketed per day, shorter ones per hour.
HOURLY_UP_TO_S = 2 * DAY_S
UNKNOWN = "unknown"
NOT_SET = "not set"
STAGES: tuple[tuple[str, str], ...] = (
    ("endpoint_ms", "endpointing"),
    ("stt_ms", "STT"),
    ("reply_first_token_ms", "reply first token"),
    ("tts_first_audio_ms", "TTS first audio"),
    ("voice_to_voice_ms", "voice-to-voice"),
)
KB_EVENTS = ("kb_shown", "kb_opened", "kb_helpful", "reply_used")
OUTCOME_EVENTS = ("disposition_proposed", "disposition_confirmed", "intent", *KB_EVENTS)


@dataclass(frozen=True)
class Table:
    """Named columns and rows: what one chart shows and its CSV download."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...] = ()

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def records(self) -> list[dict[str, Any]]:
        """One dict per row (column → value)."""
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def to_dict(self) -> dict[str, list[Any]]:
        """Column name → values (what plotly express takes)."""
        return {c: self.column(c) for c in self.columns}

    def to_csv(self) -> str:
        """The table as CSV; text cells that a spreadsheet would run as a formula are
        neutralised (see :func:`csv_safe`)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([csv_safe(c) for c in self.columns])
        writer.writerows([csv_safe(v) for v in row] for row in self.rows)
        return out.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "|")  # what spreadsheets read as a formula or DDE


def csv_safe(value: Any) -> Any:
    """A text cell that starts like a formula ("=HYPERLINK(...)", "+1", "@SUM", "-2+3")
    gets a leading apostrophe, so a spreadsheet shows it as text (OWASP's advice for CSV
    injection); numbers are left as numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    return Table(tuple(columns), tuple(tuple(r) for r in rows))


@dataclass(frozen=True)
class Filters:
    """What the user narrowed the calls to (empty = everything).

    Attributes:
        since / until: call start time bounds (Unix s; ``until`` exclusive).
        sources: call sources to keep.
        dispositions: confirmed-or-proposed dispositions to keep (``not set`` allowed).
        intents: call intents to keep (``unknown`` allowed).
        text: substring of any transcript line.
    """

    since: float | None = None
    until: float | None = None
    sources: tuple[str, ...] = ()
    dispositions: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()
    text: str = ""


@dataclass(frozen=True)
class CallSummary:
    """One call's outcome as the metrics and the Calls page see it."""

    call: CallRecord
    handle_s: float | None
    disposition: str
    sub_disposition: str
    confirmed: bool
    overridden: bool
    confirmed_by: str
    notes: str
    proposed: str
    intent: str
    turns: int
    interrupted: int


@dataclass(frozen=True)
class CallData:
    """The records of a set of calls, read in a few bulk queries."""

    calls: tuple[CallRecord, ...] = ()
    summaries: tuple[CallSummary, ...] = ()
    segments: tuple[SegmentRecord, ...] = ()
    events: tuple[EventRecord, ...] = ()
    turns: tuple[TurnRecord, ...] = ()
    timings: tuple[UtteranceTiming, ...] = ()
    by_call: dict[str, CallSummary] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.calls


def _last(events: Sequence[EventRecord], type_: str) -> EventRecord | None:
    found = [e for e in events if e.type == type_]
    return found[-1] if found else None


def call_intent(events: Sequence[EventRecord]) -> str:
    """The call's intent: the first in-scope ``intent`` event — callers say why they
    call first; later lines are follow-ups and thanks."""
    first = next(
        (e for e in events if e.type == "intent" and not e.payload.get("out_of_scope") and e.payload.get("label")),
        None,
    )
    return str(first.payload["label"]) if first else UNKNOWN


def summarise(call: CallRecord, events: Sequence[EventRecord], turns: Sequence[TurnRecord]) -> CallSummary:
    """Outcome of one call from its events and turns."""
    confirmed = _last(events, "disposition_confirmed")
    proposed = _last(events, "disposition_proposed")
    chosen = confirmed or proposed
    p = chosen.payload if chosen else {}
    return CallSummary(
        call=call,
        handle_s=(call.ended_at - call.started_at) if call.ended_at else None,
        disposition=str(p.get("disposition") or NOT_SET),
        sub_disposition=str(p.get("sub_disposition") or ""),
        confirmed=confirmed is not None,
        overridden=bool(confirmed and confirmed.payload.get("overridden")),
        confirmed_by=str(confirmed.payload.get("confirmed_by") or "") if confirmed else "",
        notes=str(p.get("notes") or ""),
        proposed=str(proposed.payload.get("disposition") or "") if proposed else "",
        intent=call_intent(events),
        turns=len(turns),
        interrupted=sum(t.interrupted for t in turns),
    )


def load(store: Store, filters: Filters = Filters(), limit: int = 5000) -> CallData:
    """Calls matching ``filters`` with their records (newest call first)."""
    calls = store.search_calls(
        CallQuery(since=filters.since, until=filters.until, sources=filters.sources, text=filters.text, limit=limit)
    )
    ids = [c.id for c in calls]
    events = store.events_for_calls(ids, OUTCOME_EVENTS + ("provider_call", "usage"))
    turns = store.turns_for_calls(ids)
    ev_by: dict[str, list[EventRecord]] = defaultdict(list)
    turns_by: dict[str, list[TurnRecord]] = defaultdict(list)
    for e in events:
        ev_by[e.call_id].append(e)
    for t in turns:
        turns_by[t.call_id].append(t)
    summaries = [summarise(c, ev_by[c.id], turns_by[c.id]) for c in calls]
    if filters.dispositions:
        summaries = [s for s in summaries if s.disposition in filters.dispositions]
    if filters.intents:
        summaries = [s for s in summaries if s.intent in filters.intents]
    keep = {s.call.id for s in summaries}
    kept_ids = [i for i in ids if i in keep]
    return CallData(
        calls=tuple(s.call for s in summaries),
        summaries=tuple(summaries),
        segments=tuple(store.segments_for_calls(kept_ids)),
        events=tuple(e for e in events if e.call_id in keep),
        turns=tuple(t for t in turns if t.call_id in keep),
        timings=tuple(store.timings_for_calls(kept_ids)),
        by_call={s.call.id: s for s in summaries},
    )


# --- latency ---------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (linear interpolation), None for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


def bucket_s(since: float, until: float) -> float:
    """Hourly buckets for spans up to two days, daily beyond."""
    return HOUR_S if until - since <= HOURLY_UP_TO_S else DAY_S


def _bucket(t: float, size_s: float) -> float:
    return float(np.floor(t / size_s) * size_s)


def latency_samples(turns: Sequence[TurnRecord]) -> Table:
    """Every measured stage time: (call_id, turn, at, stage, ms)."""
    rows = []
    for t in turns:
        for attr, name in STAGES:
            value = getattr(t, attr)
            if value is not None:
                rows.append((t.call_id, t.turn_index, t.created_at, name, round(float(value), 1)))
    return table(("call_id", "turn", "at", "stage", "ms"), rows)


def latency_summary(turns: Sequence[TurnRecord], target_ms: float = DEFAULT_LATENCY_TARGET_MS) -> Table:
    """p50/p95 per stage, turns measured, and the share of turns over ``target_ms``."""
    rows = []
    for attr, name in STAGES:
        values = [float(getattr(t, attr)) for t in turns if getattr(t, attr) is not None]
        over = sum(v > target_ms for v in values)
        rows.append((
            name, len(values), _round(percentile(values, 50)), _round(percentile(values, 95)),
            over, round(over / len(values), 3) if values else None,
        ))
    return table(("stage", "turns", "p50_ms", "p95_ms", "over_target", "share_over_target"), rows)


def latency_over_time(turns: Sequence[TurnRecord], size_s: float) -> Table:
    """p50 and p95 of each stage per time bucket (bucket start, Unix s)."""
    groups: dict[tuple[float, str], list[float]] = defaultdict(list)
    for t in turns:
        for attr, name in STAGES:
            value = getattr(t, attr)
            if value is not None:
                groups[(_bucket(t.created_at, size_s), name)].append(float(value))
    rows = [
        (start, name, len(v), _round(percentile(v, 50)), _round(percentile(v, 95)))
        for (start, name), v in sorted(groups.items())
    ]
    return table(("bucket_start", "stage", "turns", "p50_ms", "p95_ms"), rows)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# --- volumes ---------------------------------------------------------------------------
def calls_per_bucket(calls: Sequence[CallRecord], size_s: float) -> Table:
    counts = Counter(_bucket(c.started_at, size_s) for c in calls)
    return table(("bucket_start", "calls"), sorted(counts.items()))


def concurrency(calls: Sequence[CallRecord], now: float) -> Table:
    """Concurrent calls as a step function: (time, calls in progress from then on).

    A call still active counts until ``now``.
    """
    changes: list[tuple[float, int]] = []
    for c in calls:
        changes.append((c.started_at, 1))
        changes.append((c.ended_at if c.ended_at is not None else now, -1))
    changes.sort(key=lambda x: (x[0], x[1]))  # an end and a start at one instant: end first
    rows, level = [], 0
    for t, delta in changes:
        level += delta
        if rows and rows[-1][0] == t:
            rows[-1] = (t, level)
        else:
            rows.append((t, level))
    return table(("at", "concurrent_calls"), rows)


def peak_concurrency(calls: Sequence[CallRecord], now: float) -> int:
    return max(concurrency(calls, now).column("concurrent_calls"), default=0)


def average_handle_s(summaries: Sequence[CallSummary]) -> float | None:
    values = [s.handle_s for s in summaries if s.handle_s is not None]
    return float(np.mean(values)) if values else None


def dead_air(segments: Sequence[SegmentRecord], min_gap_s: float = DEFAULT_DEAD_AIR_S) -> Table:
    """Silences of at least ``min_gap_s`` between consecutive lines of a call (either side)."""
    by_call: dict[str, list[SegmentRecord]] = defaultdict(list)
    for s in segments:
        by_call[s.call_id].append(s)
    rows = []
    for call_id, segs in by_call.items():
        segs.sort(key=lambda s: (s.t_start_ms, s.id))
        heard_until = segs[0].t_end_ms
        for s in segs[1:]:
            gap_s = (s.t_start_ms - heard_until) / 1000.0
            if gap_s >= min_gap_s:
                rows.append((call_id, round(heard_until / 1000.0, 1), round(gap_s, 1), s.speaker))
            heard_until = max(heard_until, s.t_end_ms)
    return table(("call_id", "at_s", "silence_s", "broken_by"), rows)


# --- outcomes --------------------------------------------------------------------------
def disposition_mix(summaries: Sequence[CallSummary]) -> Table:
    counts = Counter((s.disposition, s.sub_disposition or "—") for s in summaries)
    return table(("disposition", "sub_disposition", "calls"), _flat(counts.most_common()))


def _flat(rows: Iterable[tuple[tuple[Any, ...], int]]) -> list[tuple[Any, ...]]:
    """((key parts), count) pairs → rows (key parts..., count)."""
    return [(*k, n) for k, n in rows]


def intent_mix(summaries: Sequence[CallSummary]) -> Table:
    counts = Counter(s.intent for s in summaries)
    return table(("intent", "calls"), counts.most_common())


def kb_funnel(events: Sequence[EventRecord]) -> Table:
    """Articles shown → opened → marked helpful → suggested replies used."""
    shown = sum(len(e.payload.get("articles") or ()) for e in events if e.type == "kb_shown")
    counts = Counter(e.type for e in events)
    return table(
        ("step", "count"),
        [("shown", shown), ("opened", counts["kb_opened"]), ("helpful", counts["kb_helpful"]),
         ("reply used", counts["reply_used"])],
    )


def overrides(summaries: Sequence[CallSummary]) -> Table:
    """Confirmed dispositions: proposed → confirmed, and whether the agent changed it."""
    counts = Counter(
        (s.proposed or NOT_SET, s.disposition, "overridden" if s.overridden else "accepted")
        for s in summaries
        if s.confirmed
    )
    return table(("proposed", "confirmed", "decision", "calls"), _flat(counts.most_common()))

