"""Hybrid KB retrieval: FTS5 BM25 and MiniLM sentence vectors, fused by reciprocal rank.

Two retrievers look at the same chunks:

* **lexical**: :class:`core.kb.fts.FTSIndex`, weighted BM25 over stems (exact words,
  names, numbers-as-words; titles count double);
* **semantic**: every chunk's ``context_text`` as an L2-normalised MiniLM vector in one
  numpy matrix, scored with one matrix-vector product (under a millisecond for 10,000
  chunks); an article scores its best chunk's cosine plus its centroid's.

Each retriever ranks *articles* and the two rankings are fused with reciprocal rank
fusion, ``Σ w / (RRF_K + rank)``. RRF needs no calibration between BM25 and cosine, and
an article both retrievers like beats one that only one of them likes. The semantic vote
counts half (:data:`SEMANTIC_WEIGHT`): on doc2dial MiniLM alone finds the right document
in the top 3 for 0.84 of the queries against 0.91 for BM25, and at equal weight it pulls
good lexical answers down as often as it rescues paraphrases; at half it rescues them
without that cost (also on the bank pack's conversations). The passage returned for an
article is its chunk with the best fused chunk-level rank.

Dialogue history: the latest turn counts 1, the exchange before it 0.7 (0.9 when the
latest turn is a short follow-up), older turns 0.5 (see :func:`turn_weights`). The same
weights drive both sides: BM25 term weights, and a weighted mean of per-turn query
vectors. Per-turn vectors are cached, so during a call only the newest turn is encoded.

Updates are incremental: an upsert re-embeds only chunks whose text changed, and a
removed article's matrix rows are reused. Without the embedding packages (or with
``embedder=None``) the index is lexical-only, and a search whose query cannot be
encoded falls back to lexical-only rather than failing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.kb import Chunk, SearchHit
from core.kb.chunking import MAX_CHUNK_WORDS, chunk_article
from core.kb.fts import FTSIndex
from core.kb.lexical import analyze, analyze_pairs
from core.kb.pack import Article, Pack
from core.kb.vectors import Ranked, VectorStore
from core.language.embeddings import EMBEDDING_DIM, Embedder, EmbeddingsUnavailable

log = logging.getLogger(__name__)

RRF_K = 60  # the constant of Cormack et al. (2009): damps the head of each ranking
SEMANTIC_WEIGHT = 0.5  # the semantic ranking's vote in the fusion (lexical: 1)
CANDIDATES = 100  # chunks read from each retriever before fusion
HISTORY_MAX_TURNS = 8  # earlier turns looked at (four exchanges)
RECENT_TURNS = 2  # the exchange before the latest turn: the other side's turn and the one before
RECENT_WEIGHT = 0.7
FOLLOW_UP_WEIGHT = 0.9  # recent weight when the latest turn is short ("how long will that take")
FOLLOW_UP_MAX_TERMS = 3  # content words in a "short" turn
OLDER_WEIGHT = 0.5  # turns further back: the topic of a call rarely changes
QUERY_CACHE_SIZE = 2048  # per-turn query vectors kept



def turn_weights(query: str, history: Sequence[str]) -> list[tuple[str, float]]:
    """``(text, weight)`` for the latest turn and the earlier ones, latest first.

    Three tiers: the latest turn (1), the exchange before it (:data:`RECENT_TURNS` turns
    at :data:`RECENT_WEIGHT`, or :data:`FOLLOW_UP_WEIGHT` after a short follow-up), and
    older turns up to :data:`HISTORY_MAX_TURNS` back (:data:`OLDER_WEIGHT`). Few tiers keep
    the lexical side to at most three FTS5 queries.

    Args:
        query: the latest turn.
        history: earlier turns, oldest first.
    """
    turns = [(query, 1.0)]
    short = len(set(analyze(query))) <= FOLLOW_UP_MAX_TERMS
    recent = FOLLOW_UP_WEIGHT if short else RECENT_WEIGHT
    earlier = [t for t in history if t.strip()][-HISTORY_MAX_TURNS:] if HISTORY_MAX_TURNS else []
    for back, text in enumerate(reversed(earlier)):
        turns.append((text, recent if back < RECENT_TURNS else OLDER_WEIGHT))
    return turns


def term_weights(turns: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Stem → weight: the highest weight of any turn the stem occurs in."""
    weights: dict[str, float] = {}
    for text, weight in turns:
        for term in analyze(text):
            weights[term] = max(weights.get(term, 0.0), weight)
    return weights


def rrf(
    rankings: Sequence[Sequence[str]], k: float = RRF_K, weights: Sequence[float] | None = None
) -> dict[str, float]:
    """Reciprocal rank fusion: ``Σ_r w_r / (k + rank_r(item))`` with ranks from 1.

    Args:
        rankings: item ids, best first, one sequence per retriever.
        k: damping constant; larger flattens the difference between ranks.
        weights: per-ranking weight (default 1 each).

    An item missing from a ranking gets nothing from it.
    """
    fused: dict[str, float] = defaultdict(float)
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, item in enumerate(ranking, 1):
            fused[item] += weight / (k + rank)
    return dict(fused)


def _digest(chunk: Chunk) -> bytes:
    return hashlib.blake2b(chunk.context_text.encode("utf-8"), digest_size=16).digest()


class HybridSearch:
    """FTS5 + embedding retrieval with rank fusion; implements :class:`core.kb.KBSearch`.

    Args:
        articles: articles to index straight away.
        embedder: sentence encoder; ``"auto"`` (default) loads MiniLM if installed and
            falls back to lexical-only otherwise; ``None`` is lexical-only.
        path: FTS5 database, ``":memory:"`` or a file (e.g. under the data directory).
        max_words: chunk size (see :func:`core.kb.chunking.chunk_article`).
        rrf_k: the RRF constant.
        semantic_weight: the semantic ranking's weight in the fusion (lexical counts 1).
        candidates: chunks and articles read from each retriever.
    """

    def __init__(
        self,
        articles: Iterable[Article] = (),
        *,
        embedder: Embedder | None | str = "auto",
        path: str | Path = ":memory:",
        max_words: int = MAX_CHUNK_WORDS,
        rrf_k: float = RRF_K,
        semantic_weight: float = SEMANTIC_WEIGHT,
        candidates: int = CANDIDATES,
    ) -> None:
        self.max_words = max_words
        self.rrf_k = rrf_k
        self.semantic_weight = semantic_weight
        self.candidates = candidates
        self._lock = threading.RLock()
        self._cache_lock = threading.Lock()
        self._fts = FTSIndex(path)
        self._embedder = self._resolve_embedder(embedder)
        self._vectors = VectorStore(int(getattr(self._embedder, "dim", EMBEDDING_DIM)))
        self._query_cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._chunks: dict[str, Chunk] = {}
        self._by_article: dict[str, list[str]] = {}
        for article_id in self._fts.article_ids():  # a database file from an earlier run
            chunks = self._fts.chunks(article_id)
            self._by_article[article_id] = [c.chunk_id for c in chunks]
            self._chunks.update((c.chunk_id, c) for c in chunks)
            if self._embedder is not None:
                vectors = self._embedder.embed([c.context_text for c in chunks])
                self._vectors.put(article_id, [c.chunk_id for c in chunks], list(vectors))
        self.upsert_many(articles)

    @classmethod
    def from_pack(cls, pack: Pack, **kwargs: Any) -> HybridSearch:
        """An index over every article of ``pack``."""
        return cls(pack.articles, **kwargs)

    @staticmethod
    def _resolve_embedder(embedder: Embedder | None | str) -> Embedder | None:
        if embedder != "auto":
            return embedder if not isinstance(embedder, str) else None
        from core.language import embeddings
        if not embeddings.available():
            log.info("sentence embeddings not installed: KB search is lexical-only")
            return None
        try:
            return embeddings.get_embedder()
        except EmbeddingsUnavailable as exc:
            log.warning("KB search is lexical-only: %s", exc)
            return None

    @property
    def semantic(self) -> bool:
        """True when the embedding retriever takes part."""
        return self._embedder is not None

    def enable_semantic(self, embedder: Embedder) -> None:
        """Add the embedding retriever to a lexical-only index, in place.

        Meant for a background thread: every chunk is encoded outside the lock while
        searches go on lexical-only, then the vectors are swapped in at once. Articles
        upserted during the encoding are caught up before the swap.
        """
        if self._embedder is not None:
            return
        vectors: dict[bytes, npt.NDArray[np.float32]] = {}
        while True:
            with self._lock:
                snapshot = {a: [self._chunks[c] for c in ids] for a, ids in self._by_article.items()}
            missing = {
                key: c.context_text
                for chunks in snapshot.values()
                for c in chunks
                if (key := _digest(c)) not in vectors
            }
            if missing:
                encoded = embedder.embed(list(missing.values()))
                vectors.update(zip(missing, (np.asarray(v, np.float32) for v in encoded), strict=True))
            with self._lock:
                current = {a: [self._chunks[c] for c in ids] for a, ids in self._by_article.items()}
                if any(_digest(c) not in vectors for chunks in current.values() for c in chunks):
                    continue  # an edit landed while encoding: encode the new text too
                store = VectorStore(int(getattr(embedder, "dim", EMBEDDING_DIM)))
                for article_id, chunks in current.items():
                    store.put(article_id, [c.chunk_id for c in chunks], [vectors[_digest(c)] for c in chunks])
                self._vectors = store
                self._embedder = embedder
                return

    # --- maintenance --------------------------------------------------------------
    def upsert(self, article: Article) -> None:
        """Add ``article``, or replace every chunk of the article with the same id.

        Only chunks whose text changed are embedded; the others keep their vectors.
        """
        self.upsert_many([article])

    def upsert_many(self, articles: Iterable[Article]) -> None:
        """:meth:`upsert` for many articles, embedding all new chunk texts in one batch."""
        batch = [(a, chunk_article(a, self.max_words)) for a in articles]
        if not batch:
            return
        vectors: dict[bytes, npt.NDArray[np.float32]] = {}
        if self._embedder is not None:
            with self._lock:
                for article, _ in batch:
                    vectors.update(self._current_vectors(article.id))
            missing = {}
            for _, chunks in batch:
                for chunk in chunks:
                    if (key := _digest(chunk)) not in vectors:
                        missing[key] = chunk.context_text
            if missing:  # outside the lock: encoding is the slow part
                for key, vector in zip(missing, self._embedder.embed(list(missing.values())), strict=True):
                    vectors[key] = np.asarray(vector, np.float32)
        with self._lock:
            self._fts.upsert_many(
                (a.id, chunks, [*a.tags, *(i.replace("_", " ") for i in a.intents)]) for a, chunks in batch
            )
            for article, chunks in batch:
                self._remove_locked(article.id, fts=False)
                ids = [c.chunk_id for c in chunks]
                self._by_article[article.id] = ids
                self._chunks.update(zip(ids, chunks, strict=True))
                if self._embedder is not None:
                    late = {k: c.context_text for c in chunks if (k := _digest(c)) not in vectors}
                    if late:  # semantic search was enabled while this batch was prepared
                        vectors.update(zip(late, self._embedder.embed(list(late.values())), strict=True))
                    self._vectors.put(article.id, ids, [vectors[_digest(c)] for c in chunks])

    def remove(self, article_id: str) -> None:
        """Drop every chunk of ``article_id``; unknown ids are ignored."""
        with self._lock:
            self._remove_locked(article_id)

    def _remove_locked(self, article_id: str, fts: bool = True) -> None:
        if fts:
            self._fts.remove(article_id)
        ids = self._by_article.pop(article_id, [])
        self._vectors.drop(article_id, ids)
        for chunk_id in ids:
            self._chunks.pop(chunk_id, None)

    def _current_vectors(self, article_id: str) -> dict[bytes, npt.NDArray[np.float32]]:
        """Text digest → vector of the article's indexed chunks (reused when text is unchanged)."""
        out = {}
        for chunk_id in self._by_article.get(article_id, ()):
            vector = self._vectors.vector(chunk_id)
            if vector is not None:
                out[_digest(self._chunks[chunk_id])] = vector
        return out

    def __len__(self) -> int:
        """Number of indexed chunks."""
        return len(self._chunks)

    def article_ids(self) -> list[str]:
        """Ids of the indexed articles."""
        with self._lock:
            return list(self._by_article)

    def chunks(self, article_id: str) -> list[Chunk]:
        """The indexed chunks of one article, in reading order (``[]`` if unknown)."""
        with self._lock:
            return [self._chunks[c] for c in self._by_article.get(article_id, ())]

    # --- search -------------------------------------------------------------------
    def query_vector(self, turns: Sequence[tuple[str, float]]) -> npt.NDArray[np.float32] | None:
        """Weighted mean of the turns' vectors, normalised (None without an embedder).

        Each turn is encoded once and cached, so during a call only the newest is new;
        calling this as soon as a turn is final takes the encoding off the search path.
        """
        if self._embedder is None:
            return None
        texts = list(dict.fromkeys(t for t, _ in turns if t.strip()))
        with self._cache_lock:
            known = {t: self._query_cache[t] for t in texts if t in self._query_cache}
        new = [t for t in texts if t not in known]
        if new:
            try:
                encoded = np.asarray(self._embedder.embed(new), np.float32)
            except Exception:  # a broken encoder must not take KB search down with it
                log.exception("query encoding failed: this search is lexical-only")
                return None
            known.update(zip(new, encoded, strict=True))
        with self._cache_lock:
            for text in texts:
                self._query_cache[text] = known[text]
                self._query_cache.move_to_end(text)
            while len(self._query_cache) > QUERY_CACHE_SIZE:
                self._query_cache.popitem(last=False)
        total = np.zeros(self._vectors.dim, np.float32)
        for text, weight in turns:
            if text in known:
                total += weight * known[text]
        norm = float(np.linalg.norm(total))
        return total / norm if norm > 0 else None

    def clear_query_cache(self) -> None:
        """Forget every cached turn vector (benchmarks; a KB never needs it)."""
        with self._cache_lock:
            self._query_cache.clear()

    def _lexical(self, weights: dict[str, float]) -> Ranked:
        hits = self._fts.search(weights, limit=self.candidates)
        chunks = [h.chunk.chunk_id for h in hits]
        scores = {h.chunk.chunk_id: h.score for h in hits}
        best: dict[str, float] = {}
        for h in hits:  # hits are best first: an article's first hit is its best chunk
            best.setdefault(h.chunk.article_id, h.score)
        return Ranked(chunks, scores, list(best), best)

    def search(self, query: str, k: int = 3, history: Sequence[str] = ()) -> list[SearchHit]:
        """Best chunk of each of the ``k`` best articles by fused rank, best first.

        Args:
            query: the latest turn (recogniser output or typed text).
            k: how many articles to return at most.
            history: earlier turns, oldest first (down-weighted, the oldest most).

        Returns:
            Hits whose ``score`` is the fused RRF score, ``matched_terms`` the query stems
            in the passage, and ``why`` the lexical and semantic evidence.
        """
        if k <= 0:
            return []
        turns = turn_weights(query, history)
        weights = term_weights(turns)
        surface = {stem: word for text, _ in reversed(turns) for stem, word in analyze_pairs(text)}
        vector = self.query_vector(turns)  # outside the lock: encoding is the slow part
        with self._lock:
            if not self._chunks:
                return []
            lexical = self._lexical(weights)
            semantic = (
                self._vectors.search(vector, self.candidates)
                if vector is not None
                else Ranked([], {}, [], {})
            )
            weights_by_list = (1.0, self.semantic_weight)
            fused = rrf([lexical.articles, semantic.articles], self.rrf_k, weights_by_list)
            passages = rrf([lexical.chunks, semantic.chunks], self.rrf_k, weights_by_list)
            best_chunk: dict[str, str] = {}
            for chunk_id, _ in sorted(passages.items(), key=lambda kv: (-kv[1], kv[0])):
                best_chunk.setdefault(self._chunks[chunk_id].article_id, chunk_id)
            ranked = sorted(fused, key=lambda a: (-fused[a], a))[:k]
            hits = []
            for article_id in ranked:
                chunk_id = best_chunk.get(article_id) or self._by_article[article_id][0]
                terms = self._fts.matched_terms(chunk_id, weights)
                said = [surface.get(t, t) for t in terms]
                hits.append(
                    SearchHit(
                        chunk=self._chunks[chunk_id],
                        score=fused[article_id],
                        matched_terms=terms,
                        why=_why(article_id, said, lexical, semantic),
                    )
                )
            return hits


def _why(article_id: str, words: Sequence[str], lexical: Ranked, semantic: Ranked) -> str:
    """``words #2 on lost, card; meaning #1 (similarity 0.62)``."""
    parts = []
    if article_id in lexical.article_scores:
        said = f" on {', '.join(words)}" if words else ""
        parts.append(f"words #{lexical.articles.index(article_id) + 1}{said}")
    if article_id in semantic.article_scores:
        rank = semantic.articles.index(article_id) + 1
        parts.append(f"meaning #{rank} (similarity {semantic.article_scores[article_id]:.2f})")
    return "; ".join(parts)


__all__ = ["HybridSearch", "rrf", "term_weights", "turn_weights"]
