"""FTS5's ``bm25()`` computed with numpy over an in-memory inverted index.

FTS5 scores every row an ``OR`` query matches before it can sort them; at 100,000
passages a turn's ~20 terms match ~200,000 (row, term) pairs and a query took ~100 ms.
The same sum over postings held as numpy arrays takes a few milliseconds.

The formula is FTS5's own (``fts5_aux.c``), so rankings do not change::

    idf(t)   = ln((N − n(t) + 0.5) / (n(t) + 0.5)), or 1e-6 when that is ≤ 0
    f(t, r)  = Σ over occurrences of t in row r of its column's weight
    score(r) = Σ_t idf(t) · f(t, r)·(k1 + 1) / (f(t, r) + k1·(1 − b + b·|r| / avgdl))

with ``|r|`` the row's tokens over all columns, ``avgdl`` their mean, ``n(t)`` the rows
containing ``t``. Postings live in one compacted CSR block (per-term slices) plus a small
tail of recent additions; a removed row's postings stop counting at once (each posting
carries its row's generation) and are dropped at the next compaction.
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

K1 = 1.2  # FTS5's bm25() constants
B = 0.75
MIN_IDF = 1e-6
# Recent postings are scanned with a mask on every query term; after a batch of updates
# more than this many are merged into the compacted block (a sort of every posting,
# ~1 s at 100,000 passages), so single-article edits rarely pay for it.
SETTLED_TAIL_POSTINGS = 5_000


class Postings:
    """Weighted term frequencies per row, scored like FTS5's ``bm25()``."""

    def __init__(self, column_weights: Sequence[float]) -> None:
        self.column_weights = tuple(column_weights)
        self._vocab: dict[str, int] = {}
        self._row_len = np.zeros(0, np.float64)  # tokens per row (all columns)
        self._row_gen = np.zeros(0, np.int64)  # current generation of each row, -1 when gone
        self._gen = 0
        self._rows_alive = 0
        self._tokens_alive = 0.0
        # compacted block: postings sorted by term, term t at [indptr[t], indptr[t + 1])
        self._indptr = np.zeros(1, np.int64)
        self._rows = np.zeros(0, np.int64)
        self._freqs = np.zeros(0, np.float64)
        self._gens = np.zeros(0, np.int64)
        # recent additions, not yet compacted
        self._t_terms, self._t_rows, self._t_freqs, self._t_gens = array("q"), array("q"), array("d"), array("q")

    def __len__(self) -> int:
        return self._rows_alive

    def add(self, rowid: int, columns: Sequence[str]) -> None:
        """Index a row given its columns' analysed text (space-separated terms)."""
        if rowid >= self._row_len.size:
            grow = max(rowid + 1, 2 * self._row_len.size, 1024)
            self._row_len = np.concatenate([self._row_len, np.zeros(grow - self._row_len.size)])
            self._row_gen = np.concatenate([self._row_gen, np.full(grow - self._row_gen.size, -1, np.int64)])
        if self._row_gen[rowid] >= 0:
            self.remove(rowid)
        self._gen += 1
        freqs: defaultdict[str, float] = defaultdict(float)
        tokens = 0
        for weight, text in zip(self.column_weights, columns, strict=True):
            terms = text.split()
            tokens += len(terms)
            for term in terms:
                freqs[term] += weight
        self._row_len[rowid] = tokens
        self._row_gen[rowid] = self._gen
        self._rows_alive += 1
        self._tokens_alive += tokens
        for term, f in freqs.items():
            self._t_terms.append(self._vocab.setdefault(term, len(self._vocab)))
            self._t_rows.append(rowid)
            self._t_freqs.append(f)
            self._t_gens.append(self._gen)
        if len(self._t_terms) > max(SETTLED_TAIL_POSTINGS, self._rows.size):
            self.compact()  # during a bulk load: doubling keeps the total sorting O(n log n)

    def settle(self) -> None:
        """End of a batch of updates: compact if many postings are waiting."""
        if len(self._t_terms) > SETTLED_TAIL_POSTINGS:
            self.compact()

    def remove(self, rowid: int) -> None:
        if rowid < self._row_gen.size and self._row_gen[rowid] >= 0:
            self._row_gen[rowid] = -1
            self._rows_alive -= 1
            self._tokens_alive -= float(self._row_len[rowid])

    def compact(self) -> None:
        """Merge recent postings into the sorted block and drop those of removed rows."""
        terms = np.concatenate([np.repeat(np.arange(self._indptr.size - 1), np.diff(self._indptr)),
                                np.frombuffer(self._t_terms, np.int64)])
        rows = np.concatenate([self._rows, np.frombuffer(self._t_rows, np.int64)])
        freqs = np.concatenate([self._freqs, np.frombuffer(self._t_freqs, np.float64)])
        gens = np.concatenate([self._gens, np.frombuffer(self._t_gens, np.int64)])
        live = gens == self._row_gen[rows]
        terms, rows, freqs, gens = terms[live], rows[live], freqs[live], gens[live]
        order = np.argsort(terms, kind="stable")
        self._rows, self._freqs, self._gens = rows[order], freqs[order], gens[order]
        counts = np.bincount(terms, minlength=len(self._vocab))
        self._indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._t_terms, self._t_rows, self._t_freqs, self._t_gens = array("q"), array("q"), array("d"), array("q")

    def _postings(self, term_id: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        rows, freqs, gens = (self._rows, self._freqs, self._gens)
        if term_id + 1 < self._indptr.size:
            lo, hi = self._indptr[term_id], self._indptr[term_id + 1]
            rows, freqs, gens = rows[lo:hi], freqs[lo:hi], gens[lo:hi]
        else:
            rows, freqs, gens = rows[:0], freqs[:0], gens[:0]
        if self._t_terms:
            recent = np.frombuffer(self._t_terms, np.int64) == term_id
            if recent.any():
                rows = np.concatenate([rows, np.frombuffer(self._t_rows, np.int64)[recent]])
                freqs = np.concatenate([freqs, np.frombuffer(self._t_freqs, np.float64)[recent]])
                gens = np.concatenate([gens, np.frombuffer(self._t_gens, np.int64)[recent]])
        live = gens == self._row_gen[rows]
        return rows[live], freqs[live]

    def search(self, terms: Iterable[str], df: Mapping[str, int], limit: int) -> list[tuple[int, float]]:
        """The ``limit`` best rows for an ``OR`` of ``terms``: ``(rowid, bm25)``, best first.

        Args:
            terms: query terms (each counted once).
            df: rows containing each term (FTS5's ``n(t)``).
            limit: rows returned at most.
        """
        n_rows = self._rows_alive
        if n_rows == 0 or limit <= 0:
            return []
        norm = K1 * (1 - B + B * self._row_len / (self._tokens_alive / n_rows))
        scores = np.zeros(self._row_len.size)
        for term in dict.fromkeys(terms):
            term_id = self._vocab.get(term)
            if term_id is None:
                continue
            n = df.get(term, 0)
            idf = math.log((n_rows - n + 0.5) / (n + 0.5))
            rows, f = self._postings(term_id)
            scores[rows] += max(idf, MIN_IDF) * f * (K1 + 1) / (f + norm[rows])
        hit = np.flatnonzero(scores)
        if hit.size > limit:
            hit = hit[np.argpartition(-scores[hit], limit - 1)[:limit]]
        hit = hit[np.lexsort((hit, -scores[hit]))]
        return [(int(r), float(scores[r])) for r in hit]
