"""Queries across calls (metrics, call search) and moving a call in time."""

import time

from core.store import CallQuery, TurnRecord, UtteranceTiming


def _call(store, source, text, started_ago_s):
    call = store.create_call(source)
    seg = store.add_segment(call.id, "caller", text, 0, 1500)
    store.add_segment(call.id, "agent", "let me help with that", 1800, 3000)
    store.add_event(call.id, "kb_shown", {"articles": ["a1"]})
    store.add_event(call.id, "partial", {"text": text[:5]})
    store.add_timing(UtteranceTiming(600, 500, 100, 80, 1500, 0.05, seg.id, call.id))
    store.add_turn(TurnRecord(call.id, 0, seg.id, None, text, "ok", 500, 100, 40, 30, 680, False))
    store.end_call(call.id)
    store.shift_call(call.id, -started_ago_s)
    return call.id


def test_search_calls_filters_by_date_source_and_transcript_text(store):
    now = time.time()
    old = _call(store, "demo", "I lost my card on the bus", 3 * 86400)
    new = _call(store, "talk", "What is the fee for 100% of a wire_transfer", 3600)
    assert [c.id for c in store.search_calls(CallQuery())] == [new, old]  # newest first
    assert [c.id for c in store.search_calls(CallQuery(since=now - 86400))] == [new]
    assert [c.id for c in store.search_calls(CallQuery(until=now - 86400))] == [old]
    assert [c.id for c in store.search_calls(CallQuery(sources=("demo",)))] == [old]
    assert [c.id for c in store.search_calls(CallQuery(text="LOST my"))] == [old]
    # LIKE wildcards in the search text are literal characters
    assert [c.id for c in store.search_calls(CallQuery(text="100%"))] == [new]
    assert store.search_calls(CallQuery(text="wire_t")) and not store.search_calls(CallQuery(text="w_re"))
    assert len(store.search_calls(CallQuery(limit=1))) == 1


def test_shift_call_moves_every_timestamp_but_keeps_times_within_the_call(store):
    before = store.create_call("demo")
    store.add_segment(before.id, "caller", "hello", 100, 900)
    store.end_call(before.id)
    original = store.get_call(before.id)
    store.shift_call(before.id, -7200)
    moved = store.get_call(before.id)
    assert moved.started_at == original.started_at - 7200
    assert moved.ended_at == original.ended_at - 7200
    seg = store.segments(before.id)[0]
    assert (seg.t_start_ms, seg.t_end_ms) == (100, 900)
    assert seg.created_at < time.time() - 7000


def test_bulk_reads_return_records_of_the_requested_calls_only(store):
    a = _call(store, "demo", "my card was charged twice", 100)
    b = _call(store, "demo", "branch opening hours", 200)
    c = _call(store, "demo", "unrelated", 300)
    assert {s.call_id for s in store.segments_for_calls([a, b])} == {a, b}
    assert len(store.segments_for_calls([a, b])) == 4
    events = store.events_for_calls([a, b, c], types=["kb_shown"])
    assert len(events) == 3 and {e.type for e in events} == {"kb_shown"}
    assert len(store.events_for_calls([a])) == 2
    assert [t.call_id for t in store.turns_for_calls([b])] == [b]
    assert store.turns_for_calls([b])[0].voice_to_voice_ms == 680
    assert {t.call_id for t in store.timings_for_calls([a, c])} == {a, c}
    assert store.segments_for_calls([]) == []


def test_bulk_reads_handle_more_ids_than_one_query_takes(store):
    from core.store.queries import IDS_PER_QUERY

    ids = [store.create_call("demo").id for _ in range(3)]
    many = ids + [f"missing{i}" for i in range(IDS_PER_QUERY + 5)]
    for call_id in ids:
        store.add_event(call_id, "intent", {"label": "x"})
    assert len(store.events_for_calls(many, types=["intent"])) == 3
