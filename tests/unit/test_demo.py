"""Demo history: scripted calls through the real pipeline, placed in the past."""

import time

import pytest

from core.config import Settings
from core.insights import analytics as an
from core.insights.demo import DAY_S, DEMO_SOURCE, generate, schedule
from core.services import build_services


def test_schedule_spreads_calls_over_past_days_in_office_hours_with_overlaps():
    now = 1_763_700_000.0  # fixed: the schedule is a pure function of it
    starts = schedule(9, days=4, now=now)
    assert all(now - 4 * DAY_S - DAY_S <= s < now for s in starts)
    assert len({int(s // DAY_S) for s in starts}) == 4
    assert all(9 <= (s % DAY_S) / 3600 < 17 for s in starts)
    gaps = sorted(b - a for a in starts for b in starts if 0 < b - a < 60)
    assert gaps  # some calls start seconds apart, so they overlap
    assert schedule(9, days=4, now=now) == starts


@pytest.mark.slow
def test_one_demo_call_produces_turns_intents_and_a_confirmed_disposition(data_dir):
    services = build_services(Settings())
    made = generate(services, calls=1, days=2)
    store = services.store
    data = an.load(store)
    call = data.calls[0]
    assert [c.call_id for c in made] == [call.id] and call.source == DEMO_SOURCE
    assert call.started_at < time.time() - DAY_S  # placed in the past
    assert len(data.turns) >= 4 and all(t.voice_to_voice_ms for t in data.turns)
    summary = data.by_call[call.id]
    # the first scripted conversation is a duplicate charge the agent resolves
    assert summary.intent == "duplicate_charge"
    assert summary.confirmed and summary.confirmed_by == "demo" and not summary.overridden
    assert summary.disposition in {"resolved", "follow_up", "escalated"}
    assert store.events(call.id, "kb_shown")
    assert "charged twice" in " ".join(s.text for s in data.segments)
