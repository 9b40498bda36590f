"""SQLite FTS5 BM25 index over KB chunks, with per-term query weights.

The text goes through the same analyser as :mod:`core.kb.lexical` (normalised, stopwords
and spoken numbers dropped, light stemming) before FTS5 sees it, so both indexes agree on
what a term is, and FTS5 only has to split on spaces (``unicode61``).

FTS5's ``bm25()`` has no per-term weights, but BM25 is a sum over query terms. So a
weighted query is run as one ``MATCH`` per weight tier (the latest turn at 1.0, earlier
turns lower) and the tiers' scores are added up, each times its weight. Title, heading
and body are separate columns; ``bm25()`` column weights make a title occurrence count
as :data:`TITLE_WEIGHT` body occurrences.

The database is in memory by default, or a file (e.g. under the data directory) that
survives a restart: the chunks are stored next to the full-text table and read back on
open. Updates are per article and take effect for the next query.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.kb import Chunk
from core.kb.bm25 import Postings
from core.kb.lexical import NUMBER_WORDS, STOPWORDS, stem
from core.language.text import normalize

TITLE_WEIGHT = 2.0  # a title occurrence counts as this many body occurrences
HEADING_WEIGHT = 1.0
BODY_WEIGHT = 1.0
TAG_WEIGHT = 1.0  # tags and intent names go in the title column's neighbour
DEFAULT_LIMIT = 100  # rows per weight tier: enough for rank fusion, cheap to sort
# A term in more than this share of the chunks is left out of the query: its IDF is
# below log(2) (under half a rare term's weight) yet scoring it costs a visit to most rows.
MAX_DF_FRACTION = 0.5
MIN_CHUNKS_FOR_DF_CUT = 50  # in a small KB every term still tells chunks apart

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kb_chunk (
    rowid INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL,
    title TEXT NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS kb_chunk_article ON kb_chunk(article_id);
CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts USING fts5(
    title, tags, heading, body, tokenize = 'unicode61 remove_diacritics 2'
);
"""


@dataclass(frozen=True)
class FTSHit:
    """One chunk matched by a weighted query.

    Attributes:
        chunk: the passage.
        score: weighted BM25 (higher is better).
        rowid: the chunk's row (see :meth:`FTSIndex.matched_terms`).
    """

    chunk: Chunk
    score: float
    rowid: int


@functools.lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    return stem(word)


def _terms_text(text: str) -> str:
    """:func:`core.kb.lexical.analyze`, joined by spaces, with stems memoised (indexing
    10,000 passages stems a million words, most of them the same few thousand)."""
    return " ".join(
        _stem(w)
        for w in normalize(text).split()
        if w not in STOPWORDS and w not in NUMBER_WORDS and len(w) > 1
    )


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


class FTSIndex:
    """Chunks in an SQLite FTS5 table; queried with weighted stems.

    Args:
        path: ``":memory:"`` (default) or a database file; its folder is created.
        title_weight: ``bm25()`` weight of the title column (body is 1).
    """

    def __init__(self, path: str | Path = ":memory:", *, title_weight: float = TITLE_WEIGHT) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._weights = (title_weight, TAG_WEIGHT, HEADING_WEIGHT, BODY_WEIGHT)
        self._lock = threading.RLock()
        # Python-side mirror: rowid -> chunk and its term set (for "why" without more SQL).
        self._chunks: dict[int, Chunk] = {}
        self._rowid: dict[str, int] = {}
        self._terms: dict[int, frozenset[str]] = {}
        self._by_article: dict[str, list[int]] = defaultdict(list)
        self._df: Counter[str] = Counter()  # chunks containing each term
        self._bm25 = Postings(self._weights)  # FTS5's bm25() without a scan of every match
        self._load()

    def _load(self) -> None:
        rows = self._db.execute(
            "SELECT c.rowid, c.chunk_id, c.article_id, c.title, c.heading, c.text, f.title, f.tags, "
            "f.heading, f.body FROM kb_chunk c JOIN kb_fts f ON f.rowid = c.rowid ORDER BY c.rowid"
        )
        for rowid, chunk_id, article_id, title, heading, text, *terms in rows:
            chunk = Chunk(article_id=article_id, chunk_id=chunk_id, title=title, text=text, heading=heading)
            self._remember(rowid, chunk, terms)
        self._bm25.settle()

    def _remember(self, rowid: int, chunk: Chunk, columns: Sequence[str]) -> None:
        self._chunks[rowid] = chunk
        self._rowid[chunk.chunk_id] = rowid
        self._terms[rowid] = frozenset(" ".join(columns).split())
        self._bm25.add(rowid, columns)
        self._df.update(self._terms[rowid])
        self._by_article[chunk.article_id].append(rowid)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- maintenance --------------------------------------------------------------
    def upsert(self, article_id: str, chunks: Sequence[Chunk], tags: Iterable[str] = ()) -> None:
        """Replace every chunk of ``article_id`` with ``chunks`` (one transaction).

        Args:
            article_id: the article the chunks belong to.
            chunks: its passages, in reading order.
            tags: article tags and intent names (indexed like a second title).

        Raises:
            ValueError: a chunk belongs to another article.
        """
        self.upsert_many([(article_id, chunks, tags)])

    def upsert_many(self, items: Iterable[tuple[str, Sequence[Chunk], Iterable[str]]]) -> None:
        """:meth:`upsert` for ``(article_id, chunks, tags)`` triples, in one transaction."""
        items = list(items)
        for article_id, chunks, _ in items:
            if any(c.article_id != article_id for c in chunks):
                raise ValueError(f"every chunk upserted for {article_id!r} must have that article_id")
        with self._lock, self._db:
            for article_id, chunks, tags in items:
                self._upsert_locked(article_id, chunks, _terms_text(" ".join(tags)))
            self._bm25.settle()

    def _upsert_locked(self, article_id: str, chunks: Sequence[Chunk], tag_terms: str) -> None:
        self._remove_locked(article_id)
        for chunk in chunks:
            cur = self._db.execute(
                "INSERT INTO kb_chunk(chunk_id, article_id, title, heading, text) VALUES (?,?,?,?,?)",
                (chunk.chunk_id, article_id, chunk.title, chunk.heading, chunk.text),
            )
            rowid = int(cur.lastrowid or 0)
            cols = (_terms_text(chunk.title), tag_terms, _terms_text(chunk.heading), _terms_text(chunk.text))
            self._db.execute(
                "INSERT INTO kb_fts(rowid, title, tags, heading, body) VALUES (?,?,?,?,?)", (rowid, *cols)
            )
            self._remember(rowid, chunk, cols)

    def remove(self, article_id: str) -> None:
        """Drop every chunk of ``article_id``; unknown ids are ignored."""
        with self._lock, self._db:
            self._remove_locked(article_id)

    def _remove_locked(self, article_id: str) -> None:
        rowids = self._by_article.pop(article_id, [])
        if not rowids:
            return
        marks = ",".join("?" * len(rowids))
        self._db.execute(f"DELETE FROM kb_fts WHERE rowid IN ({marks})", rowids)
        self._db.execute(f"DELETE FROM kb_chunk WHERE rowid IN ({marks})", rowids)
        for rowid in rowids:
            self._bm25.remove(rowid)
            del self._rowid[self._chunks.pop(rowid).chunk_id]
            for term in self._terms.pop(rowid):
                self._df[term] -= 1
                if self._df[term] <= 0:
                    del self._df[term]

    def __len__(self) -> int:
        """Number of indexed chunks."""
        return len(self._chunks)

    def article_ids(self) -> list[str]:
        """Ids of the indexed articles."""
        with self._lock:
            return list(self._by_article)

    def chunks(self, article_id: str) -> list[Chunk]:
        """The chunks of one article in reading order (``[]`` if unknown)."""
        with self._lock:
            return [self._chunks[r] for r in self._by_article.get(article_id, ())]

    # --- search -------------------------------------------------------------------
    def search(self, weights: Mapping[str, float], limit: int = DEFAULT_LIMIT) -> list[FTSHit]:
        """Chunks ranked by ``Σ weight(term) · BM25(term, chunk)``, best first.

        Args:
            weights: query stems (as produced by :func:`core.kb.lexical.analyze`) and
                their weights; terms with weight ≤ 0 are ignored.
            limit: rows read per weight tier (the result may hold more than ``limit``).

        Returns:
            Hits with a positive score; ``[]`` for no usable term.
        """
        with self._lock:
            n = len(self._chunks)
            max_df = n * MAX_DF_FRACTION if n >= MIN_CHUNKS_FOR_DF_CUT else n
            tiers: dict[float, list[str]] = defaultdict(list)
            for term, weight in weights.items():
                if weight > 0 and 0 < self._df.get(term, 0) <= max_df:
                    tiers[round(weight, 4)].append(term)
            return self._search_locked(weights, tiers, limit)

    def _search_locked(
        self, weights: Mapping[str, float], tiers: Mapping[float, list[str]], limit: int
    ) -> list[FTSHit]:
        scores: dict[int, float] = defaultdict(float)
        for weight, terms in tiers.items():
            # the rows and scores FTS5's "MATCH t1 OR t2 ... ORDER BY bm25() LIMIT n" gives
            for rowid, bm25 in self._bm25.search(terms, self._df, limit):
                scores[rowid] += weight * bm25
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [FTSHit(self._chunks[rowid], score, rowid) for rowid, score in ranked if score > 0]

    def matched_terms(self, chunk_id: str, query_terms: Iterable[str]) -> tuple[str, ...]:
        """The query stems (in query order) found in a chunk's title, tags, heading or body."""
        with self._lock:
            rowid = self._rowid.get(chunk_id)
            terms = self._terms.get(rowid, frozenset()) if rowid is not None else frozenset()
        return tuple(t for t in query_terms if t in terms)


__all__ = ["FTSHit", "FTSIndex"]
