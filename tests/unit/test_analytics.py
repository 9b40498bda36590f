"""Metrics from stored records: percentiles, concurrency, dead air, funnel, cost."""

import csv
import io

import pytest

from core.config import DEFAULT_PRICES
from core.insights import analytics as an
from core.insights.costs import breaker_table, cost_per_call, provider_health
from core.store import CallRecord, TurnRecord, UtteranceTiming

T0 = 1_700_000_000.0  # a fixed instant: figures below do not depend on the clock


def _turn(call_id, i, v2v, interrupted=False, at=T0):
    return TurnRecord(call_id, i, None, None, "q", "a", 500, 100, 50, 40, v2v, interrupted, at)


def _seed_call(store, start_offset_s, v2vs, disposition=None, intent=None, overridden=False):
    call = store.create_call("demo")
    for text, speaker, t0, t1 in [
        ("my card was charged twice", "caller", 0, 2000),
        ("I can open a dispute", "agent", 2600, 5000),
        ("yes please", "caller", 9000, 10000),  # 4 s of dead air before this line
    ]:
        seg = store.add_segment(call.id, speaker, text, t0, t1)
        if speaker == "caller":
            store.add_timing(UtteranceTiming(600, 500, 100, 80, t1 - t0, 0.05, seg.id, call.id))
    for i, v in enumerate(v2vs):
        store.add_turn(_turn(call.id, i, v, interrupted=(i == 0)))
    if intent:
        store.add_event(call.id, "intent", {"label": intent, "confidence": 0.9, "out_of_scope": False})
        store.add_event(call.id, "intent", {"label": "greeting", "confidence": 0.3, "out_of_scope": False})
    if disposition:
        store.add_event(call.id, "disposition_proposed", {"disposition": "follow_up", "sub_disposition": ""})
        store.add_event(call.id, "disposition_confirmed", {
            "disposition": disposition, "sub_disposition": "dispute_opened", "notes": "n",
            "overridden": overridden, "confirmed_by": "demo",
        })
    store.add_event(call.id, "kb_shown", {"articles": ["a", "b", "c"]})
    store.add_event(call.id, "kb_opened", {"article": "a"})
    store.end_call(call.id)
    store.shift_call(call.id, start_offset_s)
    return call.id


def test_percentiles_and_share_over_target():
    turns = [_turn("c", i, v) for i, v in enumerate([400, 500, 600, 700, 900, 1000, 1200, 1500, 2000, 3000])]
    summary = an.latency_summary(turns, target_ms=800)
    row = summary.records()[-1]
    assert row["stage"] == "voice-to-voice" and row["turns"] == 10
    assert row["p50_ms"] == 950.0  # midway between 900 and 1000
    assert row["p95_ms"] == pytest.approx(2550.0)
    assert row["over_target"] == 6 and row["share_over_target"] == 0.6
    assert an.percentile([], 50) is None


def test_latency_over_time_buckets_turns_by_hour():
    turns = [_turn("c", 0, 600, at=T0), _turn("c", 1, 800, at=T0 + 60), _turn("c", 2, 2000, at=T0 + 2 * 3600)]
    t = an.latency_over_time(turns, an.HOUR_S)
    v2v = [r for r in t.rows if r[1] == "voice-to-voice"]
    assert [(r[2], r[3]) for r in v2v] == [(2, 700.0), (1, 2000.0)]
    assert an.bucket_s(T0, T0 + 86400) == an.HOUR_S and an.bucket_s(T0, T0 + 5 * 86400) == an.DAY_S


def test_concurrency_is_a_step_function_of_overlapping_calls():
    calls = [
        CallRecord("a", T0, T0 + 100, "ended", "demo"),
        CallRecord("b", T0 + 50, T0 + 150, "ended", "demo"),
        CallRecord("c", T0 + 100, None, "active", "demo"),  # starts when a ends
    ]
    t = an.concurrency(calls, now=T0 + 200)
    assert t.rows == ((T0, 1), (T0 + 50, 2), (T0 + 100, 2), (T0 + 150, 1), (T0 + 200, 0))
    assert an.peak_concurrency(calls, now=T0 + 200) == 2


def test_dead_air_finds_silences_over_the_threshold(store):
    call_id = _seed_call(store, 0, [700])
    segs = store.segments(call_id)
    gaps = an.dead_air(segs, min_gap_s=3.0)
    assert gaps.rows == ((call_id, 5.0, 4.0, "caller"),)
    assert len(an.dead_air(segs, min_gap_s=5.0)) == 0


def test_load_filters_and_outcomes(store):
    a = _seed_call(store, -3600, [600, 900], disposition="resolved", intent="duplicate_charge")
    b = _seed_call(store, -7200, [700], disposition="escalated", intent="scam_report", overridden=True)
    c = _seed_call(store, -86400 * 3, [1500])
    data = an.load(store)
    assert [s.call.id for s in data.summaries] == [a, b, c]
    assert data.by_call[a].intent == "duplicate_charge" and data.by_call[c].intent == an.UNKNOWN
    assert data.by_call[c].disposition == an.NOT_SET
    assert data.by_call[b].overridden and data.by_call[b].confirmed_by == "demo"
    mix = an.disposition_mix(data.summaries).to_dict()
    assert dict(zip(mix["disposition"], mix["calls"], strict=True)) == {"resolved": 1, "escalated": 1, an.NOT_SET: 1}
    ov = an.overrides(data.summaries)
    assert set(ov.rows) == {("follow_up", "resolved", "accepted", 1), ("follow_up", "escalated", "overridden", 1)}
    funnel = dict(an.kb_funnel(data.events).rows)
    assert funnel == {"shown": 9, "opened": 3, "helpful": 0, "reply used": 0}
    only = an.load(store, an.Filters(dispositions=("escalated",)))
    assert [s.call.id for s in only.summaries] == [b] and {t.call_id for t in only.turns} == {b}
    assert [s.call.id for s in an.load(store, an.Filters(intents=(an.UNKNOWN,))).summaries] == [c]
    assert an.average_handle_s(data.summaries) is not None
    assert sum(s.interrupted for s in data.summaries) == 3


def test_cost_per_call_from_derived_usage_and_a_price_table(store):
    call_id = _seed_call(store, 0, [700])
    data = an.load(store)
    embedded = cost_per_call(data, DEFAULT_PRICES)
    row = embedded.records()[0]
    # 3 s of caller audio recognised, 20 agent characters spoken; embedded costs nothing
    assert row["stt_seconds"] == 3.0 and row["tts_chars"] == 20 and row["cost_usd"] == 0.0
    cloud = cost_per_call(data, {"deepgram": {"stt_per_min": 0.6}, "elevenlabs": {"tts_per_1k_chars": 100.0}},
                          price_as={"stt": "deepgram", "tts": "elevenlabs"})
    assert cloud.records()[0]["cost_usd"] == pytest.approx(3 / 60 * 0.6 + 20 / 1000 * 100)
    # recorded usage wins over the derived figures
    store.add_event(call_id, "usage", {"stage": "llm", "provider": "openai", "llm_input_tokens": 1_000_000})
    recorded = cost_per_call(an.load(store), DEFAULT_PRICES)
    assert recorded.records()[0]["cost_usd"] == pytest.approx(0.15)


def test_provider_health_from_provider_calls_or_turns(store):
    call_id = _seed_call(store, 0, [700, 800])
    derived = provider_health(an.load(store))
    assert {(r[0], r[1], r[2]) for r in derived.rows} == {("stt", "moonshine", 2), ("llm", "embedded", 2),
                                                         ("tts", "piper", 2)}
    for ok, kind, fb in [(True, None, None), (False, "timeout", "whisper"), (False, "rate_limit", None)]:
        store.add_event(call_id, "provider_call", {"stage": "stt", "provider": "deepgram", "ok": ok, "kind": kind,
                                                   "ms": 200, "fallback_to": fb})
    recorded = provider_health(an.load(store))
    assert recorded.rows == (("stt", "deepgram", 3, 2, 1, 200.0, "provider calls"),)
    assert breaker_table(None) is None
    assert breaker_table({"deepgram": "open"}).rows == (("deepgram", "open"),)


def test_tables_download_as_csv_with_every_row():
    t = an.table(("a", "b"), [(1, "x,y"), (2, None)])
    rows = list(csv.reader(io.StringIO(t.to_csv())))
    assert rows == [["a", "b"], ["1", "x,y"], ["2", ""]]
