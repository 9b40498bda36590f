"""KB retrieval on doc2dial-style data: recall@1/3/5, MRR and search latency.

Documents (``{doc_key, domain, title, doc_text}`` per line) are indexed as articles by
:class:`core.kb.hybrid.HybridSearch` (each document cut into passages; a document is
hit when any of its passages is). Each query line carries
``dialogue_history_latest_first: ["user:...", "agent:...", ...]``: the first entry is
the turn to answer, the rest is the history it is searched with. A query scores
``1/rank`` of its ``gold_doc_key`` in the top 5 (0 if absent).

Example::

    python -m core.eval kb --docs ../shared/data/kb/doc2dial_docs.jsonl \\
        --queries ../shared/data/kb/doc2dial_queries.jsonl
    python -m core.eval kb ... --lexical-only --json   # last line: JSON figures
    python -m core.eval kb ... --bench-chunks 10000    # + search latency at 10,000 passages

Timings are wall-clock per ``search`` call, query encoding included (each dialogue turn
is encoded once, as in a live call where only the newest turn is new).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.eval import DEFAULT_DATA_DIR, format_table, json_line, percentile
from core.kb.pack import Article

DEFAULT_DOCS = DEFAULT_DATA_DIR / "kb" / "doc2dial_docs.jsonl"
DEFAULT_QUERIES = DEFAULT_DATA_DIR / "kb" / "doc2dial_queries.jsonl"
TOP_K = 5
_SPEAKER = re.compile(r"^\s*(user|agent|caller|customer|system)\s*:\s*", re.I)
_KEY_SUFFIX = re.compile(r"#\d+(?:_\d+)?$")  # doc2dial keys end in "#3_0": not part of the title


@dataclass(frozen=True)
class Query:
    id: str
    domain: str
    gold: str
    text: str
    history: tuple[str, ...]  # oldest first


@dataclass(frozen=True)
class Result:
    query: Query
    rank: int | None  # 1-based rank of the gold document in the top TOP_K
    ms: float


def _read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def load_docs(path: Path) -> list[Article]:
    """Documents as articles: id = ``doc_key``, category = ``domain``."""
    articles = []
    for row in _read_jsonl(path):
        title = _KEY_SUFFIX.sub("", str(row.get("title") or row["doc_key"])).strip()
        articles.append(
            Article(
                id=str(row["doc_key"]),
                title=title or str(row["doc_key"]),
                body=str(row.get("doc_text") or title),
                category=str(row.get("domain") or ""),
            )
        )
    return articles


def load_queries(path: Path, limit: int | None = None) -> list[Query]:
    """Queries with the speaker prefixes stripped and the history turned oldest first."""
    queries: list[Query] = []
    for row in _read_jsonl(path, limit):
        turns = [_SPEAKER.sub("", str(t)) for t in row.get("dialogue_history_latest_first") or ()]
        if not turns:
            continue
        queries.append(
            Query(
                id=str(row.get("id", len(queries))),
                domain=str(row.get("domain") or ""),
                gold=str(row["gold_doc_key"]),
                text=turns[0],
                history=tuple(reversed(turns[1:])),
            )
        )
    return queries


def evaluate(index: Any, queries: Sequence[Query]) -> list[Result]:
    """Search every query (top :data:`TOP_K`) and note the gold document's rank and time."""
    results = []
    for q in queries:
        start = time.perf_counter()
        hits = index.search(q.text, k=TOP_K, history=q.history)
        ms = (time.perf_counter() - start) * 1000
        ids = [h.article_id for h in hits]
        results.append(Result(q, ids.index(q.gold) + 1 if q.gold in ids else None, ms))
    return results


def summarise(results: Sequence[Result]) -> dict[str, float]:
    """recall@1/3/5, MRR (cut at 5), p50/p95 search ms and the query count."""
    n = len(results) or 1

    def recall(k: int) -> float:
        return sum(1 for r in results if r.rank is not None and r.rank <= k) / n

    times = [r.ms for r in results]
    return {
        "queries": len(results),
        "recall_at_1": recall(1),
        "recall_at_3": recall(3),
        "recall_at_5": recall(5),
        "mrr": sum(1.0 / r.rank for r in results if r.rank) / n,
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
    }


# --- synthetic scale benchmark ------------------------------------------------------------
class _BenchEmbedder:
    """Random unit vectors for passages (search cost does not depend on their values) and,
    once :attr:`real` is set, the real model for queries."""

    dim = 384

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self.real: Any = None

    def embed(self, texts: Sequence[str]) -> Any:
        if self.real is not None:
            return self.real.embed(texts)
        v = self._rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def synthetic_articles(
    n_chunks: int, seed: int = 0, source: Sequence[Article] = (), sections: int = 5
) -> list[Article]:
    """Articles of ``sections`` ``##`` sections of 90 words each (``n_chunks`` passages).

    Words are drawn from the word frequencies of ``source`` (so terms are as common, and
    queries match as many passages, as in a real KB), or from a Zipf law over
    pseudo-words when no source is given.
    """
    rng = np.random.default_rng(seed)
    if source:
        tokens = " ".join(f"{a.title} {a.body}" for a in source).lower().split()
        vocab_arr, counts = np.unique(np.array(tokens), return_counts=True)
        vocab = [str(v) for v in vocab_arr]
        probs = counts / counts.sum()
    else:
        vocab = [
            f"{a}{b}{c}"
            for a in "bcdfgklmnprstvz"
            for b in "aeiou"
            for c in ("n", "r", "st", "l", "nd", "rk")
        ]
        probs = 1.0 / np.arange(1, len(vocab) + 1)
        probs /= probs.sum()
    articles = []
    for a in range(-(-n_chunks // sections)):
        body = []
        for s in range(sections):
            words = rng.choice(len(vocab), size=90, p=probs)
            body.append(f"## Section {s}\n" + " ".join(vocab[w] for w in words) + ".")
        title = " ".join(vocab[w] for w in rng.choice(len(vocab), size=5, p=probs))
        articles.append(Article(id=f"synthetic-{a}", title=title, body="\n\n".join(body)))
    return articles


def bench(
    n_chunks: int,
    queries: Sequence[Query] = (),
    source: Sequence[Article] = (),
    semantic: bool = True,
    n_queries: int = 300,
    seed: int = 0,
) -> dict[str, Any]:
    """Search latency over ``n_chunks`` synthetic passages (see :func:`synthetic_articles`).

    Passage vectors are random (the cost of a search does not depend on their values);
    query turns are encoded by the real model. Two passes over the same queries:

    * ``cold``: the turn cache starts empty and each search encodes every turn of its
      dialogue (a copilot attaching to a call half-way through);
    * ``live``: as in a call, the earlier turns were encoded when they were said, so each
      search encodes only the newest turn;
    * ``index``: every turn cached: the FTS5 + matrix + fusion work alone.

    Args:
        n_chunks: passages to index.
        queries: real queries (with history) to time; synthetic ones when empty.
        source: articles whose word frequencies the passages follow.
        semantic: hybrid (True) or lexical-only.
        n_queries: queries timed.
    """
    from core.kb.hybrid import HybridSearch

    embedder = _BenchEmbedder(seed) if semantic else None
    start = time.perf_counter()
    index = HybridSearch(synthetic_articles(n_chunks, seed, source), embedder=embedder)
    build_s = time.perf_counter() - start
    timed = [(q.text, q.history) for q in queries[:n_queries]]
    rng = np.random.default_rng(seed + 1)
    ids = index.article_ids()
    while len(timed) < n_queries:  # 8-word snippets of random passages, two earlier turns
        turns = []
        for _ in range(3):
            chunks = index.chunks(ids[int(rng.integers(len(ids)))])
            words = chunks[int(rng.integers(len(chunks)))].text.split()
            at = int(rng.integers(max(1, len(words) - 8)))
            turns.append(" ".join(words[at : at + 8]))
        timed.append((turns[-1], tuple(turns[:-1])))
    if embedder is not None:
        from core.language.embeddings import get_embedder

        embedder.real = get_embedder()
        index.query_vector([("warm up the model", 1.0)])
    cold = []
    for text, history in timed:
        t0 = time.perf_counter()
        index.search(text, k=5, history=history)
        cold.append((time.perf_counter() - t0) * 1000)
    live = []
    if embedder is not None:
        index.clear_query_cache()
        for text, history in timed:
            # In a call each earlier turn was the newest once, and was encoded then.
            index.query_vector([(h, 1.0) for h in history])
            t0 = time.perf_counter()
            index.search(text, k=5, history=history)
            live.append((time.perf_counter() - t0) * 1000)
    warm = []
    for text, history in timed:
        t0 = time.perf_counter()
        index.search(text, k=5, history=history)
        warm.append((time.perf_counter() - t0) * 1000)
    out: dict[str, Any] = {
        "bench_chunks": len(index),
        "bench_build_s": build_s,
        "bench_mode": "hybrid" if semantic else "lexical",
        "bench_index_p50_ms": percentile(warm, 50),
        "bench_index_p95_ms": percentile(warm, 95),
    }
    if semantic:
        out.update(
            bench_live_p50_ms=percentile(live, 50),
            bench_live_p95_ms=percentile(live, 95),
            bench_cold_p50_ms=percentile(cold, 50),
            bench_cold_p95_ms=percentile(cold, 95),
        )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="documents JSONL")
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES, help="queries JSONL")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N queries only")
    parser.add_argument("--lexical-only", action="store_true", help="FTS5 BM25 only, no embeddings")
    parser.add_argument("--max-words", type=int, default=None, help="passage size in words")
    parser.add_argument(
        "--bench-chunks",
        type=int,
        default=0,
        help="also time searches over this many synthetic passages (e.g. 10000)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")


def run(args: argparse.Namespace) -> int:
    from core.kb.hybrid import HybridSearch

    for path in (args.docs, args.queries):
        if not Path(path).is_file():
            print(f"not found: {path}", file=sys.stderr)
            return 2
    articles = load_docs(args.docs)
    queries = load_queries(args.queries, args.limit)
    options: dict[str, Any] = {}
    if args.lexical_only:
        options["embedder"] = None
    if args.max_words:
        options["max_words"] = args.max_words
    start = time.perf_counter()
    index = HybridSearch(**options)
    index.upsert_many(articles)
    build_s = time.perf_counter() - start
    mode = "hybrid (FTS5 BM25 + MiniLM, RRF)" if index.semantic else "lexical only (FTS5 BM25)"
    print(f"{len(articles)} documents → {len(index)} passages in {build_s:.1f} s; {mode}")
    if queries:  # the first search loads nothing more, but warm the caches' code paths
        index.search(queries[0].text, k=TOP_K, history=queries[0].history)
    results = evaluate(index, queries)
    overall = summarise(results)
    by_domain: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_domain[r.query.domain].append(r)
    rows = []
    for name, group in [*sorted(by_domain.items()), ("all", results)]:
        s = summarise(group)
        rows.append(
            [
                name,
                s["queries"],
                s["recall_at_1"],
                s["recall_at_3"],
                s["recall_at_5"],
                s["mrr"],
                s["p50_ms"],
                s["p95_ms"],
            ]
        )
    print(format_table(["domain", "queries", "R@1", "R@3", "R@5", "MRR", "p50 ms", "p95 ms"], rows))
    figures: dict[str, Any] = {}
    if args.bench_chunks:
        figures = bench(args.bench_chunks, queries, articles, semantic=index.semantic)
        line = (
            f"{figures['bench_chunks']} synthetic passages ({figures['bench_mode']}, built in "
            f"{figures['bench_build_s']:.1f} s): search p50 {figures['bench_index_p50_ms']:.1f} ms, "
            f"p95 {figures['bench_index_p95_ms']:.1f} ms with every turn's vector cached"
        )
        if index.semantic:
            line += (
                f"; live (newest turn encoded, as in a call): p50 {figures['bench_live_p50_ms']:.1f} ms, "
                f"p95 {figures['bench_live_p95_ms']:.1f} ms; cold (every turn encoded): "
                f"p50 {figures['bench_cold_p50_ms']:.1f} ms, p95 {figures['bench_cold_p95_ms']:.1f} ms"
            )
        print(line)
    if args.json:
        print(
            json_line(
                {
                    **figures,
                    **overall,
                    "mode": "hybrid" if index.semantic else "lexical",
                    "documents": len(articles),
                    "passages": len(index),
                    "build_s": build_s,
                    "per_domain": {d: summarise(g) for d, g in sorted(by_domain.items())},
                }
            )
        )
    return 0
