"""Intent detection: accuracy, macro-F1, per-class F1 and latency on a labelled CSV.

Trains :class:`core.copilot.intent.IntentClassifier` on one CSV (``text,category``) and scores
it on another, or on a stratified holdout of the same file (``--split``). Each test
utterance goes through ``predict()`` on its own, as in a live call, so the reported
p50/p95 is the single-utterance latency (embedding included). Accuracy is closed-set
(the best in-scope intent, as the data has no out-of-scope class); how many test
utterances the classifier would have called out of scope is reported separately.

The regressions' C is chosen on a validation split of the training part, never on the
test set (``--no-tune`` keeps the product defaults).

Examples::

    python -m core.eval intent --train ../shared/data/intent/banking77_train.csv --split 0.2
    python -m core.eval intent --train train.csv --test test.csv --json
    python -m core.eval intent --train train.csv --split 0.2 --no-embeddings --limit 500
    python -m core.eval intent --train train.csv --test test.csv --fine-tune 2

``--fine-tune EPOCHS`` first tunes the encoder on the training part
(:mod:`core.copilot.intent_tuning`); worth it with thousands of examples.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.copilot.intent_tuning import Example, load_csv
from core.eval import DEFAULT_DATA_DIR, format_table, json_line, percentile

DEFAULT_TRAIN = DEFAULT_DATA_DIR / "intent" / "banking77_train.csv"
WORST_CLASSES = 10
CALIBRATION_BINS = 10



def stratified_split(
    rows: Sequence[Example], fraction: float, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(train, test): ``fraction`` of each label's rows held out, seeded.

    Labels with a single row stay in training.
    """
    from sklearn.model_selection import train_test_split

    counts = Counter(label for _, label in rows)
    single = [r for r in rows if counts[r[1]] < 2]
    multi = [r for r in rows if counts[r[1]] >= 2]
    train, test = train_test_split(
        multi, test_size=fraction, stratify=[label for _, label in multi], random_state=seed
    )
    return [*single, *train], list(test)


@dataclass(frozen=True)
class ClassScore:
    label: str
    precision: float
    recall: float
    f1: float
    support: int
    confused_with: str  # the most frequent wrong prediction for this class


@dataclass(frozen=True)
class Report:
    accuracy: float
    macro_f1: float
    accuracy_in_scope_only: float  # out-of-scope verdicts counted as errors
    out_of_scope_rate: float
    calibration_error: float  # expected calibration error of the confidence
    latencies_ms: tuple[float, ...]
    classes: tuple[ClassScore, ...]
    examples: int


def evaluate(classifier: Any, test: Sequence[Example]) -> Report:
    """Predict each test utterance singly (timed) and score the best in-scope intent."""
    from sklearn.metrics import precision_recall_fscore_support

    if not test:
        raise ValueError("no test utterances")
    classifier.predict(test[0][0])  # warm-up: first-call allocations are not per-utterance cost
    truth: list[str] = []
    guess: list[str] = []
    confidence: list[float] = []
    oos: list[bool] = []
    latencies: list[float] = []
    for text, label in test:
        started = time.perf_counter()
        pred = classifier.predict(text)
        latencies.append((time.perf_counter() - started) * 1000.0)
        truth.append(label)
        guess.append(pred.best_intent or "")
        confidence.append(pred.confidence)
        oos.append(pred.out_of_scope)
    correct = np.array([g == t for g, t in zip(guess, truth, strict=True)])
    labels = sorted(set(truth))
    p, r, f, s = precision_recall_fscore_support(truth, guess, labels=labels, zero_division=0)
    confusions: dict[str, Counter[str]] = {label: Counter() for label in labels}
    for g, t in zip(guess, truth, strict=True):
        if g != t:
            confusions[t][g] += 1
    classes = tuple(
        ClassScore(
            label,
            float(p[i]),
            float(r[i]),
            float(f[i]),
            int(s[i]),
            confusions[label].most_common(1)[0][0] if confusions[label] else "",
        )
        for i, label in enumerate(labels)
    )
    return Report(
        accuracy=float(correct.mean()),
        macro_f1=float(np.mean(f)),
        accuracy_in_scope_only=float((correct & ~np.array(oos)).mean()),
        out_of_scope_rate=float(np.mean(oos)),
        calibration_error=expected_calibration_error(np.array(confidence), correct),
        latencies_ms=tuple(latencies),
        classes=classes,
        examples=len(test),
    )


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(float(correct[mask].mean()) - float(confidence[mask].mean()))
    return total / max(len(confidence), 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--train", type=Path, default=DEFAULT_TRAIN, help=f"training CSV (default {DEFAULT_TRAIN})"
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--test", type=Path, help="test CSV")
    src.add_argument(
        "--split", type=float, help="hold out this fraction of --train per label as the test set"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for --split, --limit and validation (default 0)"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="score at most N test utterances (seeded sample)"
    )
    parser.add_argument("--text-column", default="text", help="default: text")
    parser.add_argument("--label-column", default="category", help="default: category")
    parser.add_argument("--no-embeddings", action="store_true", help="the lexical fallback (TF-IDF) only")
    parser.add_argument(
        "--no-tune", action="store_true", help="product default C instead of a validation sweep"
    )
    parser.add_argument(
        "--fine-tune", type=int, default=0, metavar="EPOCHS",
        help="fine-tune the sentence encoder on the training part first (needs 2,000+ "
        "examples; ~2.5 min per epoch of 7,000 on 2 cores); default 0: off",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")


def run(args: argparse.Namespace) -> int:
    from core.copilot.intent import IntentClassifier

    if args.test is None and args.split is None:
        print("give --test FILE or --split FRACTION", file=sys.stderr)
        return 2
    for path in (args.train, args.test):
        if path is not None and not Path(path).exists():
            print(f"{path} not found", file=sys.stderr)
            return 2
    rows = load_csv(args.train, args.text_column, args.label_column)
    if args.test is not None:
        train, test = rows, load_csv(args.test, args.text_column, args.label_column)
        source = f"train {args.train} | test {args.test}"
    else:
        if not 0.0 < args.split < 1.0:
            print("--split must be between 0 and 1", file=sys.stderr)
            return 2
        train, test = stratified_split(rows, args.split, args.seed)
        source = f"{args.train} | stratified holdout {args.split:g}, seed {args.seed}"
    if args.limit is not None and args.limit < len(test):
        pick = np.random.default_rng(args.seed).choice(len(test), size=args.limit, replace=False)
        test = [test[i] for i in sorted(pick)]

    load_s = 0.0
    if not args.no_embeddings:
        from core.language import embeddings
        if embeddings.available():
            started = time.perf_counter()
            embeddings.get_embedder()
            load_s = time.perf_counter() - started
    classifier = IntentClassifier(
        use_embeddings=False if args.no_embeddings else None, fine_tune_epochs=args.fine_tune
    )
    if args.fine_tune > 0 and not args.no_embeddings:
        print(
            f"fine-tuning the sentence encoder on {len(train)} utterances for {args.fine_tune} "
            f"epochs (on 2 cores about {2.5 * args.fine_tune * len(train) / 7000:.0f} min)...",
            file=sys.stderr, flush=True,
        )
    classifier.fit(
        [t for t, _ in train], [label for _, label in train], tune=not args.no_tune, seed=args.seed
    )
    report = evaluate(classifier, test)

    worst = sorted(report.classes, key=lambda c: (c.f1, c.label))[:WORST_CLASSES]
    print(f"worst {len(worst)} of {len(report.classes)} classes by F1")
    print(
        format_table(
            ("intent", "precision", "recall", "f1", "support", "most confused with"),
            [(c.label, c.precision, c.recall, c.f1, c.support, c.confused_with) for c in worst],
        )
    )
    lat = report.latencies_ms
    tuned = "" if args.no_tune else " (tuned on a validation split of the training part)"
    if classifier.fine_tuned:
        tuned += f" | encoder fine-tuned for {args.fine_tune} epochs"
    print(
        f"\n{source}\n"
        f"backend {classifier.backend} | {len(train)} training, {report.examples} test utterances, "
        f"{len(classifier.labels)} intents | C embedding {classifier.c_embedding:g}, "
        f"lexical {classifier.c_lexical:g}{tuned}\n"
        f"accuracy {report.accuracy:.4f}  macro-F1 {report.macro_f1:.4f}  "
        f"out of scope {100 * report.out_of_scope_rate:.1f}% (accuracy counting those wrong "
        f"{report.accuracy_in_scope_only:.4f})  calibration error {report.calibration_error:.3f}\n"
        f"predict() p50 {percentile(lat, 50):.1f} ms  p95 {percentile(lat, 95):.1f} ms | "
        f"training {classifier.train_seconds:.1f} s | model load {load_s:.1f} s"
    )
    if args.json:
        out = {
            "accuracy": round(report.accuracy, 4),
            "macro_f1": round(report.macro_f1, 4),
            "p50_ms": round(percentile(lat, 50), 2),
            "p95_ms": round(percentile(lat, 95), 2),
            "train_s": round(classifier.train_seconds, 2),
            "model_load_s": round(load_s, 2),
            "accuracy_in_scope_only": round(report.accuracy_in_scope_only, 4),
            "out_of_scope_rate": round(report.out_of_scope_rate, 4),
            "calibration_error": round(report.calibration_error, 4),
            "backend": classifier.backend,
            "fine_tuned_epochs": args.fine_tune if classifier.fine_tuned else 0,
            "train_examples": len(train),
            "test_examples": report.examples,
            "intents": len(classifier.labels),
            "c_embedding": classifier.c_embedding,
            "c_lexical": classifier.c_lexical,
            "temperature": round(classifier.temperature, 4),
            "validation": {
                "accuracy": round(classifier.heldout.accuracy, 4),
                "c_scores": {
                    name: {f"{c:g}": round(a, 4) for c, a in scores.items()}
                    for name, scores in classifier.heldout.c_scores.items()
                },
            },
            "source": source,
            "per_class": [
                {"intent": c.label, "f1": round(c.f1, 4), "support": c.support} for c in report.classes
            ],
        }
        print(json_line(out))
    return 0
