"""Zero-shot call disposition on Harper Valley-style calls: accuracy, macro-F1, latency.

The label set is every distinct ``task_type`` in the calls file, used by name only (no
descriptions, no training). Each call's ``segments[]`` (``index, speaker_role,
human_transcript``) go to :class:`core.copilot.disposition.DispositionClassifier`; the table
shows the prediction, its confidence and the lines that support it. A synthetic long
call (the file's segments concatenated and repeated up to ``--long-call-min`` minutes)
measures the time to propose a disposition at the end of a long call.

Example::

    python -m core.eval disposition --calls ../shared/data/calls/hvb_calls.jsonl
    python -m core.eval disposition --text machine_transcript --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.eval import DEFAULT_DATA_DIR, format_table, json_line, percentile

DEFAULT_CALLS = DEFAULT_DATA_DIR / "calls" / "hvb_calls.jsonl"
LONG_CALL_MIN = 10.0


@dataclass(frozen=True)
class Outcome:
    call_id: str
    gold: str
    predicted: str
    confidence: float
    support: list[tuple[int, str, str, float]]  # segment index, speaker, text, score
    ms: float


def load_calls(path: Path) -> list[dict[str, Any]]:
    """Calls with a ``task_type`` and ``segments``; other lines are skipped."""
    calls = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                call = json.loads(line)
                if call.get("task_type") and call.get("segments"):
                    calls.append(call)
    return calls


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Unweighted mean F1 over every label that is gold or predicted at least once."""
    labels = sorted(set(gold) | set(predicted))
    if not labels:
        return 0.0
    total = 0.0
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p == label)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if p == label != g)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label != p)
        total += 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return total / len(labels)


def long_call(calls: Sequence[dict[str, Any]], minutes: float) -> list[dict[str, Any]]:
    """The calls' segments back to back, repeated until the call lasts ``minutes``."""
    segments: list[dict[str, Any]] = []
    offset_ms = 0
    while offset_ms < minutes * 60_000:
        for call in calls:
            end = 0
            for seg in call["segments"]:
                start = offset_ms + int(seg.get("start_ms", 0))
                segments.append({**seg, "index": len(segments) + 1, "start_ms": start})
                end = max(end, start + int(seg.get("duration_ms", 0)))
            offset_ms = max(end, offset_ms + 1)
            if offset_ms >= minutes * 60_000:
                break
    return segments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calls", type=Path, default=DEFAULT_CALLS, help="calls JSONL (Harper Valley format)"
    )
    parser.add_argument(
        "--text",
        default="human_transcript",
        help="segment field to read (human_transcript or machine_transcript)",
    )
    parser.add_argument("--lexical-only", action="store_true", help="no embeddings: shared-stem scoring")
    parser.add_argument(
        "--long-call-min",
        type=float,
        default=LONG_CALL_MIN,
        help="length of the synthetic long call (0: skip)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")


def run(args: argparse.Namespace) -> int:
    from core.copilot.disposition import (
        DispositionClassifier,
        Line,
        Taxonomy,
        content_lines,
        lines_from_segments,
    )

    if not Path(args.calls).is_file():
        print(f"not found: {args.calls}", file=sys.stderr)
        return 2
    calls = load_calls(args.calls)
    if not calls:
        print(f"{args.calls}: no call with task_type and segments", file=sys.stderr)
        return 2
    names = sorted({str(c["task_type"]) for c in calls})
    clf = DispositionClassifier(Taxonomy.from_names(names), embedder=None if args.lexical_only else "auto")
    clf.prepare()
    print(f"{len(calls)} calls, {len(names)} labels by name only: {', '.join(names)}; method: {clf.method}")
    outcomes: list[Outcome] = []
    for call in calls:
        lines = lines_from_segments(call["segments"], args.text)
        speaker = {line.index: line.speaker for line in lines}
        start = time.perf_counter()
        proposal = clf.propose(lines)
        ms = (time.perf_counter() - start) * 1000
        support = [(i, speaker.get(i, "?"), text, score) for i, text, score in proposal.supporting_lines]
        outcomes.append(
            Outcome(
                str(call.get("sid", len(outcomes))),
                str(call["task_type"]),
                proposal.label,
                proposal.confidence,
                support,
                ms,
            )
        )
    rows = []
    for o in outcomes:
        lines_cell = " | ".join(f"#{i} {spk}: {text}" for i, spk, text, _ in o.support[:2])
        rows.append([o.call_id[:8], o.gold, o.predicted, o.confidence, f"{o.ms:.0f}", lines_cell])
    print(format_table(["call", "gold", "predicted", "conf", "ms", "supporting lines"], rows, max_width=110))
    gold = [o.gold for o in outcomes]
    predicted = [o.predicted for o in outcomes]
    times = [o.ms for o in outcomes]
    figures: dict[str, Any] = {
        "calls": len(outcomes),
        "accuracy": sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(outcomes),
        "macro_f1": macro_f1(gold, predicted),
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "top_support_from_caller": sum(1 for o in outcomes if o.support and o.support[0][1] == "caller"),
        "method": clf.method,
    }
    print(
        f"accuracy {figures['accuracy']:.3f}  macro-F1 {figures['macro_f1']:.3f}  "
        f"p50 {figures['p50_ms']:.0f} ms  p95 {figures['p95_ms']:.0f} ms  "
        f"top supporting line from the caller: {figures['top_support_from_caller']}/{len(outcomes)}"
    )
    if args.long_call_min > 0:
        segments = long_call(calls, args.long_call_min)
        lines = lines_from_segments(segments, args.text)
        start = time.perf_counter()
        proposal = clf.propose(lines)
        long_ms = (time.perf_counter() - start) * 1000
        kept = content_lines(lines)
        # Worst case for timing: every line distinct (a real call repeats little), so no
        # line is encoded once for several segments.
        unique_lines = [Line(x.index, x.speaker, f"{x.text} number {x.index}") for x in kept]
        start = time.perf_counter()
        clf.propose(unique_lines)
        unique_ms = (time.perf_counter() - start) * 1000
        minutes = max(int(s.get("start_ms", 0)) + int(s.get("duration_ms", 0)) for s in segments) / 60_000
        figures.update(
            long_call_minutes=minutes,
            long_call_segments=len(segments),
            long_call_distinct_lines=len({line.text for line in kept}),
            long_call_ms=long_ms,
            long_call_all_distinct_ms=unique_ms,
        )
        print(
            f"long call: {minutes:.1f} min, {len(segments)} segments ({len(kept)} with words, "
            f"{figures['long_call_distinct_lines']} distinct) → {proposal.label} in {long_ms:.0f} ms; "
            f"{unique_ms:.0f} ms with every line distinct ({len(unique_lines)} to encode)"
        )
    if args.json:
        print(json_line(figures))
    return 0
