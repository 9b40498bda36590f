"""KB chunking and the in-memory BM25 index: correctness, updates, and the bank pack."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import pytest
import yaml

from core.kb import Chunk, KBSearch
from core.kb.chunking import MAX_CHUNK_WORDS, chunk_article
from core.kb.lexical import BM25_B, BM25_K1, LexicalIndex, analyze, stem
from core.kb.pack import Article, Pack, load_pack

ROOT = Path(__file__).resolve().parents[2]
BANK = ROOT / "packs" / "bank"
MAX_QUERY_MS = 2.0

# First caller turns the lexical index cannot put at rank 1, and why (the hybrid index
# with sentence embeddings is expected to fix both; they must stay in the top 2).
KNOWN_LEXICAL_MISSES = {
    "lost_card_replacement": "'lost' is only in the title; 'wallet' and 'debit' pull the virtual card article",
    "transfer_wrong_account": "'typed' stems like 'types', so 'transfer types and timing' wins on shared words",
}


def art(id: str, body: str, title: str = "", tags: tuple[str, ...] = ()) -> Article:
    return Article(id=id, title=title, body=body, tags=tags)


@pytest.fixture(scope="module")
def pack() -> Pack:
    return load_pack(BANK)


@pytest.fixture(scope="module")
def index(pack: Pack) -> LexicalIndex:
    return LexicalIndex.from_pack(pack)


@pytest.fixture(scope="module")
def conversations() -> list[dict]:
    return yaml.safe_load((BANK / "eval" / "conversations.yaml").read_text())["conversations"]


# --- text analysis ---------------------------------------------------------------------
def test_stemming_joins_inflections_and_leaves_short_words_alone():
    assert {stem(w) for w in ("charge", "charges", "charged", "charging")} == {"charg"}
    assert stem("fees") == stem("fee")
    assert stem("cards") == stem("card")
    assert stem("canceled") == stem("cancelled") == stem("cancel")
    assert stem("lost") == stem("lose")
    assert stem("business") == stem("businesses")
    assert stem("bus") == "bus"


def test_analyze_drops_stopwords_fillers_and_spoken_numbers():
    assert analyze("um hi I was charged forty two dollars twice") == ["charg", "dollar", stem("twice")]
    assert analyze("$42") == ["dollar"]


# --- chunking ----------------------------------------------------------------------------
def test_articles_are_chunked_by_section_with_title_context():
    article = art("a", "Intro line.\n\n## Fees\n\nIt costs $5.\n\n## Timing\n\nIt takes a day.", "Wires")
    chunks = chunk_article(article)
    assert [(c.chunk_id, c.heading, c.text) for c in chunks] == [
        ("a#0", "", "Intro line."),
        ("a#1", "Fees", "It costs $5."),
        ("a#2", "Timing", "It takes a day."),
    ]
    assert chunks[1].context_text == "Wires. Fees.\nIt costs $5."


def test_long_sections_are_split_at_sentences_into_balanced_parts():
    sentence = "This sentence has exactly eight words in it."
    article = art("long", "## Big\n\n" + " ".join([sentence] * 40), "Long")  # 320 words
    chunks = chunk_article(article)
    sizes = [len(c.text.split()) for c in chunks]
    assert len(chunks) == 3 and all(size <= MAX_CHUNK_WORDS for size in sizes)
    assert max(sizes) - min(sizes) <= 2 * 8  # within two sentences of each other
    assert all(c.heading == "Big" and c.text.endswith("in it.") for c in chunks)


def test_every_bank_chunk_is_small(pack: Pack):
    chunks = [c for a in pack.articles for c in chunk_article(a)]
    assert len({c.chunk_id for c in chunks}) == len(chunks) > len(pack.articles)
    assert max(len(c.text.split()) for c in chunks) <= MAX_CHUNK_WORDS


# --- BM25 ----------------------------------------------------------------------------------
CORPUS = [
    art("d1", "apple banana apple cherry"),
    art("d2", "banana banana date elder fig grape"),
    art("d3", "cherry date"),
]


def okapi(term: str, body: str, corpus: list[Article]) -> float:
    """Textbook Okapi BM25 of one term, with the non-negative idf variant."""
    docs = [a.body.split() for a in corpus]
    avg = sum(map(len, docs)) / len(docs)
    df = sum(term in d for d in docs)
    idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
    words = body.split()
    tf = words.count(term)
    return idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * len(words) / avg))


def test_scores_match_textbook_okapi_bm25():
    index = LexicalIndex(CORPUS)
    for term in ("apple", "banana", "cherry", "date"):
        hits = {h.article_id: h.score for h in index.search(term, k=5)}
        expected = {a.id: okapi(term, a.body, CORPUS) for a in CORPUS if term in a.body.split()}
        assert hits == pytest.approx(expected, rel=1e-9), term
    both = {h.article_id: h.score for h in index.search("apple date", k=5)}
    assert both["d1"] == pytest.approx(okapi("apple", CORPUS[0].body, CORPUS))
    assert both["d2"] == pytest.approx(okapi("date", CORPUS[1].body, CORPUS))


def test_ranking_follows_term_frequency_rarity_and_length():
    index = LexicalIndex(CORPUS)
    assert [h.article_id for h in index.search("banana")] == ["d2", "d1"]  # tf 2 beats tf 1
    assert [h.article_id for h in index.search("cherry")] == ["d3", "d1"]  # same tf, shorter wins
    assert index.search("apple banana")[0].article_id == "d1"  # the rare term decides
    assert index.search("zebra") == [] and index.search("") == [] and index.search("apple", k=0) == []


def test_hits_explain_themselves_and_one_hit_per_article():
    index = LexicalIndex([art("a", "## One\n\nrefund fee.\n\n## Two\n\nrefund again."), art("b", "refund")])
    hits = index.search("refund fee", k=5)
    assert [h.article_id for h in hits] == ["a", "b"]
    assert hits[0].chunk.chunk_id == "a#0" and set(hits[0].matched_terms) == {"refund", "fee"}
    assert "refund" in hits[0].why and isinstance(hits[0].chunk, Chunk)


def test_title_and_tags_outrank_a_mention_in_the_body():
    index = LexicalIndex(
        [
            art("body", "wire details details", "Something else"),
            art("title", "wire details details", "Wire transfers"),
            art("tag", "wire details details", "Other", tags=("wire",)),
        ]
    )
    assert [h.article_id for h in index.search("wire")] == ["title", "tag", "body"]


def test_upsert_replaces_and_remove_drops_an_article_incrementally():
    index = LexicalIndex(CORPUS)
    before = index.search("date", k=5)
    index.upsert(art("d1", "kiwi lemon"))
    assert index.search("apple") == []
    assert [h.article_id for h in index.search("kiwi")] == ["d1"]
    assert len(index) == 3 and sorted(index.article_ids()) == ["d1", "d2", "d3"]
    index.upsert(art("d4", "date date date"))
    after = {h.article_id: h.score for h in index.search("date", k=5)}
    assert (
        after["d4"] > after["d3"] and after["d3"] < {h.article_id: h.score for h in before}["d3"]
    )  # idf fell
    index.remove("d4")
    index.remove("never-there")
    assert {h.article_id for h in index.search("date", k=5)} == {"d2", "d3"}
    index.remove("d1")
    assert index.search("kiwi") == [] and len(index) == 2


def test_upsert_matches_a_fresh_build():
    grown = LexicalIndex(CORPUS[:2])
    grown.upsert(art("d2", "old words"))
    grown.upsert(CORPUS[1])
    grown.upsert(CORPUS[2])
    fresh = LexicalIndex(CORPUS)
    for query in ("banana date", "cherry", "apple fig"):
        assert [(h.article_id, round(h.score, 9)) for h in grown.search(query)] == [
            (h.article_id, round(h.score, 9)) for h in fresh.search(query)
        ]


def test_lexical_index_satisfies_the_kb_search_protocol():
    index: KBSearch = LexicalIndex(CORPUS)
    assert index.search("apple", k=1, history=("banana",))


def test_a_recognition_slip_one_edit_away_still_matches(index: LexicalIndex):
    assert index.search("i have an overdaft fee")[0].article_id in (
        "fees-overdraft-refund",
        "account-overdraft",
    )


def test_history_keeps_a_short_follow_up_on_topic(index: LexicalIndex):
    follow_up = "how long will that take"
    alone = index.search(follow_up)[0].article_id
    with_history = index.search(follow_up, history=["i was charged twice for the same purchase"])
    assert alone != "payment-duplicate-charge"
    assert with_history[0].article_id == "payment-duplicate-charge"


def test_a_country_name_finds_international_articles(index: LexicalIndex):
    assert (
        index.search("i want to send money to my family in mexico")[0].article_id
        == "transfer-international-fees"
    )


# --- the bank pack ---------------------------------------------------------------------------
def test_first_caller_turns_retrieve_the_expected_article(index: LexicalIndex, conversations: list[dict]):
    ranks = {}
    for conv in conversations:
        ids = [h.article_id for h in index.search(conv["caller_turns"][0], k=3)]
        ranks[conv["id"]] = ids.index(conv["article"]) + 1 if conv["article"] in ids else None
    for conv_id, rank in ranks.items():
        if conv_id in KNOWN_LEXICAL_MISSES:
            assert rank is not None and rank <= 2, (conv_id, KNOWN_LEXICAL_MISSES[conv_id])
        else:
            assert rank == 1, conv_id
    assert sum(rank == 1 for rank in ranks.values()) >= len(conversations) - len(KNOWN_LEXICAL_MISSES)


def test_intent_examples_accuracy_and_latency(pack: Pack, index: LexicalIndex, capsys: pytest.CaptureFixture):
    """Measured, not asserted: each intents.yaml example against the article listing that intent."""
    article_of = {intent: a.id for a in pack.articles for intent in a.intents}
    top1 = top3 = total = 0
    timings_ms = []
    for intent in pack.intents:
        expected = article_of.get(intent["id"])
        for example in intent["examples"] if expected else ():
            start = time.perf_counter()
            ids = [h.article_id for h in index.search(example, k=3)]
            timings_ms.append((time.perf_counter() - start) * 1000)
            total += 1
            top1 += bool(ids) and ids[0] == expected
            top3 += expected in ids
    skipped = sum(len(i["examples"]) for i in pack.intents) - total
    median_ms = statistics.median(timings_ms)
    with capsys.disabled():
        print(
            f"\n[kb] intent examples: n={total} (+{skipped} greeting/thanks/human without an article) "
            f"top1={top1 / total:.1%} top3={top3 / total:.1%} "
            f"query median={median_ms:.3f} ms p95={sorted(timings_ms)[int(0.95 * total)]:.3f} ms "
            f"max={max(timings_ms):.3f} ms"
        )
    assert median_ms < MAX_QUERY_MS


def test_fuzzy_matching_follows_upserts_and_removals():
    index = LexicalIndex([art("a", "overdraft protection")])
    assert [h.article_id for h in index.search("overdaft")] == ["a"]
    index.remove("a")
    assert index.search("overdaft") == []
    index.upsert(art("b", "overdraft fees"))
    assert [h.article_id for h in index.search("overdaft")] == ["b"]
