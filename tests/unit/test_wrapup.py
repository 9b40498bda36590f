"""After-call wrap-up: proposal recorded with evidence, the agent's filing and overrides."""

import pytest

from core.copilot.disposition import DispositionClassifier, Taxonomy
from core.copilot.wrapup import confirm_wrapup, confirmed_disposition, propose_wrapup, stored_proposal
from core.kb.pack import load_pack
from tests.conftest import ROOT

PACK = load_pack(ROOT / "packs" / "bank")
TAXONOMY = Taxonomy.from_dispositions(PACK.dispositions)


def _call(store):
    call = store.create_call("talk")
    for i, (who, text) in enumerate(
        [
            ("caller", "hello i want to book an appointment at the downtown branch"),
            ("system", "[call transferred]"),
            ("agent", "i have booked you in at the downtown branch on friday the twelfth at ten"),
            ("caller", "great thanks"),
        ]
    ):
        store.add_segment(call.id, who, text, i * 2000, i * 2000 + 1500)
    store.end_call(call.id)
    return call


def test_proposal_is_recorded_with_supporting_lines_and_notes(store):
    call = _call(store)
    wrap = propose_wrapup(store, call.id, DispositionClassifier(TAXONOMY, embedder=None))
    assert (wrap.disposition, wrap.sub_disposition) == ("resolved", "appointment_booked")
    assert 0 < wrap.confidence <= 1 and wrap.ms > 0
    segs = {s.id: s for s in store.segments(call.id)}
    assert wrap.support and all(segs[s.segment_id].text == s.text for s in wrap.support)
    assert all(s.speaker != "system" for s in wrap.support)
    assert any("appointment" in n for n in wrap.notes)
    assert stored_proposal(store, call.id) == wrap  # round-trips through the store as JSON


def test_filing_records_the_final_labels_and_whether_the_agent_overrode(store):
    call = _call(store)
    wrap = propose_wrapup(store, call.id, DispositionClassifier(TAXONOMY, embedder=None))
    assert confirmed_disposition(store, call.id) is None
    same = confirm_wrapup(store, wrap, wrap.disposition, wrap.sub_disposition, "s", "n", "dana", TAXONOMY)
    assert not same.overridden
    other_top = next(label for label in TAXONOMY.labels if label.id != wrap.disposition)
    sub = other_top.children[0].id if other_top.children else None
    changed = confirm_wrapup(store, wrap, other_top.id, sub, "s2", "n2", "dana", TAXONOMY)
    assert changed.overridden
    latest = confirmed_disposition(store, call.id)
    assert latest is not None and latest.disposition == other_top.id and latest.notes == "n2"


def test_labels_outside_the_taxonomy_are_refused_and_nothing_is_filed(store):
    call = _call(store)
    wrap = propose_wrapup(store, call.id, DispositionClassifier(TAXONOMY, embedder=None))
    with pytest.raises(ValueError, match="unknown disposition 'sorted'"):
        confirm_wrapup(store, wrap, "sorted", None, "", "", "dana", TAXONOMY)
    with pytest.raises(ValueError, match="is not a sub-disposition of 'resolved'"):
        confirm_wrapup(store, wrap, "resolved", "callback_scheduled", "", "", "dana", TAXONOMY)
    assert confirmed_disposition(store, call.id) is None


def test_unknown_call_is_a_key_error(store):
    with pytest.raises(KeyError):
        propose_wrapup(store, "nope", DispositionClassifier(TAXONOMY, embedder=None))
