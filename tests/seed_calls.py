"""Stored calls for page tests: transcripts, turns, timings and outcome events.

These are test fixtures (the product's demo history comes from real pipeline runs,
see core.insights.demo); figures are chosen so tests can assert exact numbers.
"""

from __future__ import annotations

import time

from core.store import Store, TurnRecord, UtteranceTiming

DAY_S = 86_400.0
CALLS = [
    # (days ago, source, caller line, voice-to-voice ms per turn, disposition, intent)
    (1, "demo", "hi i think my card was charged twice", [600, 900], "resolved", "duplicate_charge"),
    (2, "demo", "i lost my wallet on the bus", [700], "resolved", "card_lost_stolen"),
    (3, "talk", "someone called saying they were from the bank", [1500, 650], "escalated", "scam_report"),
]


def seed(store: Store, now: float | None = None) -> list[str]:
    """Three ended calls over the last three days; returns their ids, newest first."""
    now = now or time.time()
    ids = []
    for days_ago, source, text, v2vs, disposition, intent in CALLS:
        call = store.create_call(source, {"demo": source == "demo"})
        seg = store.add_segment(call.id, "caller", text, 500, 2500)
        store.add_timing(UtteranceTiming(600, 500, 100, 80, 2000, 0.05, seg.id, call.id))
        agent = store.add_segment(call.id, "agent", "I can help you with that right away.", 3100, 5200)
        store.add_segment(call.id, "caller", "thank you", 10_000, 10_600)  # 4.8 s of dead air before
        for i, v2v in enumerate(v2vs):
            store.add_turn(TurnRecord(call.id, i, seg.id, agent.id, text, "I can help", 500, 120, 60, 40, v2v,
                                      False))
        store.add_event(call.id, "intent", {"label": intent, "confidence": 0.9, "out_of_scope": False})
        store.add_event(call.id, "kb_shown", {"articles": [f"{intent}-article"]})
        store.add_event(call.id, "disposition_proposed", {"disposition": disposition, "sub_disposition": None})
        store.add_event(call.id, "disposition_confirmed", {
            "disposition": disposition, "sub_disposition": None, "notes": "Card: debit",
            "overridden": False, "confirmed_by": "agent-7",
        })
        store.end_call(call.id)
        store.shift_call(call.id, -(days_ago * DAY_S) - (time.time() - now))
        ids.append(call.id)
    return ids
