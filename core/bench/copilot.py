"""Copilot figures: intent and KB search latency, wrap-up time, store write throughput.

``python -m core.bench.copilot [--chunks 1000,10000,100000] [--json out.json]``

* **Intent**: :class:`~core.copilot.intent.IntentClassifier` trained from the pack, timed per
  ``predict`` on every caller turn of the pack's scripted conversations (sentence
  encoding included).
* **KB search** at N chunks: :func:`core.eval.kb.bench` (synthetic passages whose words
  follow the real KB's word frequencies, random passage vectors, real query encoding);
  queries are doc2dial's when ``../shared/data/kb`` has them, else snippets of passages.
  ``index`` = FTS5 + vectors + fusion with every turn's vector cached; ``live`` = the
  newest turn encoded, as in a call.
* **Wrap-up**: :func:`core.copilot.wrapup.propose_wrapup` (disposition, summary, notes) on calls
  of 1, 10 and 30 minutes. The transcripts are the pack's scripted conversations, the
  caller's turns answered by the offline agent (its real replies), repeated in turn
  until the spoken length (:data:`WORDS_PER_MINUTE`) reaches the call length. The
  sentence model is prepared first, as the app does when a call starts.
* **Store**: segments written one by one (one transaction each, as the session does)
  from one thread and from :data:`WRITER_THREADS` threads. SQLite always; Postgres
  when ``VC_TEST_DATABASE_URL`` / ``DATABASE_URL`` is set and this build has it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from core.bench.report import emit, pct
from core.bench.voice import caller_turns_of
from core.config import Settings
from core.kb.pack import Pack
from core.services import build_services, open_store
from core.store import Store

KB_CHUNKS = (1_000, 10_000, 100_000)
KB_QUERIES = 300
CALL_MINUTES = (1, 10, 30)
WORDS_PER_MINUTE = 150  # conversational speaking rate, both sides together
WRAPUP_RUNS = 5
STORE_SEGMENTS = 2_000
WRITER_THREADS = 8
SEGMENT_TEXT = "i think my card was charged twice for the same purchase at the grocery store"



def _timed(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1000.0


def intent(pack: Pack, texts: list[str]) -> dict[str, Any]:
    from core.copilot.intent import IntentClassifier

    t0 = time.perf_counter()
    model = IntentClassifier.from_pack(pack)
    train_s = time.perf_counter() - t0
    model.predict(texts[0])  # first call loads nothing new, but warms caches
    ms = [_timed(model.predict, t) for t in texts]
    return {"backend": model.backend, "train_s": train_s, "predictions": len(ms),
            "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95)}


def kb_search(chunks: tuple[int, ...], pack: Pack, queries: int = KB_QUERIES) -> list[dict[str, Any]]:
    from core.eval import DEFAULT_DATA_DIR
    from core.eval.kb import bench, load_docs, load_queries

    docs, qs = DEFAULT_DATA_DIR / "kb" / "doc2dial_docs.jsonl", DEFAULT_DATA_DIR / "kb" / "doc2dial_queries.jsonl"
    source = load_docs(docs) if docs.exists() else list(pack.articles)
    real_queries = load_queries(qs, limit=queries) if qs.exists() else []
    out = []
    for n in chunks:
        figures = bench(n, real_queries, source, semantic=True, n_queries=queries)
        figures["queries"] = "doc2dial" if real_queries else "passage snippets"
        out.append(figures)
    return out


def _transcript(services: Any, minutes: float) -> list[tuple[str, str]]:
    """(speaker, text) lines of a ``minutes``-long call (see the module doc)."""
    from core.conversation.reply import Conversation

    async def reply(conv: Conversation) -> str:
        return "".join([d async for d in services.new_responder().stream(conv)])

    lines: list[tuple[str, str]] = []
    words = 0
    convs = caller_turns_of(services)
    while words < minutes * WORDS_PER_MINUTE:
        for turns in convs:
            conv = Conversation()
            for text in turns:
                conv.add("caller", text)
                answer = asyncio.run(reply(conv)).strip() or "Okay."
                conv.add("agent", answer)
                lines += [("caller", text), ("agent", answer)]
                words += len(text.split()) + len(answer.split())
            if words >= minutes * WORDS_PER_MINUTE:
                break
    return lines


def wrapup(services: Any, minutes: tuple[int, ...], runs: int = WRAPUP_RUNS) -> list[dict[str, Any]]:
    from core.copilot.wrapup import propose_wrapup

    background = services.disposition_model()
    model = background.model if background.wait(120) else None
    out = []
    for m in minutes:
        lines = _transcript(services, m)
        ms = []
        for _ in range(runs):
            call = services.store.create_call("bench")
            t = 0.0
            for speaker, text in lines:
                seconds = len(text.split()) * 60.0 / WORDS_PER_MINUTE
                services.store.add_segment(call.id, speaker, text, t * 1000, (t + seconds) * 1000)
                t += seconds
            services.store.end_call(call.id)
            ms.append(_timed(propose_wrapup, services.store, call.id, model))
        out.append({"call_minutes": m, "lines": len(lines), "method": getattr(model, "method", "lexical"),
                    "p50_ms": pct(ms, 50), "max_ms": max(ms)})
    return out


def store_throughput(store: Store, segments: int = STORE_SEGMENTS, threads: int = WRITER_THREADS) -> dict[str, Any]:
    """Segments per second, written one per transaction, by one and by ``threads`` writers."""
    call = store.create_call("bench")
    t0 = time.perf_counter()
    for i in range(segments):
        store.add_segment(call.id, "caller", SEGMENT_TEXT, i * 1000.0, i * 1000.0 + 900.0)
    single = segments / (time.perf_counter() - t0)

    def writer(call_id: str) -> None:
        for i in range(segments // threads):
            store.add_segment(call_id, "caller", SEGMENT_TEXT, i * 1000.0, i * 1000.0 + 900.0)

    calls = [store.create_call("bench").id for _ in range(threads)]
    workers = [threading.Thread(target=writer, args=(c,)) for c in calls]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    multi = (segments // threads) * threads / (time.perf_counter() - t0)
    return {"segments_per_s_1_writer": single, f"segments_per_s_{threads}_writers": multi}


def stores(tmp: str) -> dict[str, Any]:
    out: dict[str, Any] = {"sqlite": store_throughput(open_store(Settings(data_dir=Path(tmp))))}
    url = os.environ.get("VC_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        out["postgres"] = "not measured: set VC_TEST_DATABASE_URL"
        return out
    try:
        store = open_store(Settings(data_dir=Path(tmp), store_provider="postgres", database_url=url))
    except (NotImplementedError, ValueError, TypeError) as exc:
        out["postgres"] = f"not measured: {exc}"
        return out
    out["postgres"] = store_throughput(store)
    return out


def run(chunks: tuple[int, ...] = KB_CHUNKS, minutes: tuple[int, ...] = CALL_MINUTES,
        kb_queries: int = KB_QUERIES, wrapup_runs: int = WRAPUP_RUNS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        services = build_services(Settings(data_dir=Path(tmp)))
        texts = [t for c in caller_turns_of(services) for t in c]
        results = {
            "intent": intent(services.pack, texts),
            "kb": kb_search(chunks, services.pack, kb_queries),
            "wrapup": wrapup(services, minutes, wrapup_runs),
            "store": stores(tmp),
        }
        getattr(services.store, "close", lambda: None)()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", default=",".join(map(str, KB_CHUNKS)))
    parser.add_argument("--minutes", default=",".join(map(str, CALL_MINUTES)))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    r = run(tuple(int(x) for x in args.chunks.split(",")), tuple(int(x) for x in args.minutes.split(",")))
    emit(r, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
