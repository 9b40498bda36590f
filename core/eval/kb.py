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

from core.eval import DEFAULT_DATA_DIR, format_table, json_line, percentile
from core.pack import Article

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
    queries = []
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="documents JSONL")
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES, help="queries JSONL")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N queries only")
    parser.add_argument("--lexical-only", action="store_true", help="FTS5 BM25 only, no embeddings")
    parser.add_argument("--max-words", type=int, default=None, help="passage size in words")
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
            [name, s["queries"], s["recall_at_1"], s["recall_at_3"], s["recall_at_5"], s["mrr"], s["p50_ms"], s["p95_ms"]]
        )
    print(format_table(["domain", "queries", "R@1", "R@3", "R@5", "MRR", "p50 ms", "p95 ms"], rows))
    if args.json:
        print(
            json_line(
                {
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
