"""The numpy BM25 scorer ranks exactly as SQLite FTS5's bm25() does."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.kb.fts import FTSIndex, _quote
from core.kb.hybrid import term_weights, turn_weights
from core.kb.pack import load_pack

ROOT = Path(__file__).resolve().parents[2]
SQL = "SELECT rowid, bm25(kb_fts, ?, ?, ?, ?) FROM kb_fts WHERE kb_fts MATCH ? ORDER BY 2 LIMIT ?"
QUERIES = [
    "i lost my debit card on the bus",
    "how much is the overdraft fee",
    "can i send money abroad to the philippines",
    "my card was charged twice for the same purchase",
    "where is the nearest branch open on saturday",
]


@pytest.fixture(scope="module")
def index():
    from core.kb.chunking import chunk_article

    pack = load_pack(ROOT / "packs" / "bank")
    fts = FTSIndex()
    fts.upsert_many((a.id, chunk_article(a), a.tags) for a in pack.articles)
    # edits: rows removed and re-added must count once, with their new text
    for a in pack.articles[:3]:
        fts.remove(a.id)
    fts.upsert_many((a.id, chunk_article(a), a.tags) for a in pack.articles[:3])
    yield fts
    fts.close()


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("limit", [5, 100])
def test_scores_and_rows_match_fts5(index, query, limit):
    terms = [t for t in term_weights(turn_weights(query, ())) if index._df.get(t)]
    expected = index._db.execute(SQL, (*index._weights, " OR ".join(map(_quote, terms)), limit)).fetchall()
    got = index._bm25.search(terms, index._df, limit)
    assert len(got) == len(expected) > 0
    assert [round(s, 9) for _, s in got] == [round(-s, 9) for _, s in expected]
    assert {r for r, _ in got} == {r for r, _ in expected}


def test_removed_rows_stop_counting_at_once(index):
    terms = ["card", "lost"]
    rows = {r for r, _ in index._bm25.search(terms, index._df, 100)}
    article = index._chunks[min(rows)].article_id
    gone = set(index._by_article[article])
    index.remove(article)
    after = {r for r, _ in index._bm25.search(terms, index._df, 100)}
    assert after and not after & gone
