"""Fine-tuning the sentence encoder on an intent taxonomy's own examples.

With a few examples per intent (the bank pack), a regression on frozen MiniLM vectors
is the right model. With thousands (Banking77: ~8,000 for 77 intents) it stops
improving, because the general-purpose vectors place different banking requests close
together ("card not working" / "card swallowed" / "card declined"). Training the encoder
itself for two epochs on the examples, with a cosine-softmax head over the intents,
moves them apart; the classifier then works on the tuned vectors as before. On 80/20
splits of ``banking77_train.csv`` (seeds 0-3) this took the classifier's accuracy from
0.9255 / 0.9325 / 0.9365 / 0.9270 to 0.9310 / 0.9390 / 0.9380 / 0.9300; the
single-utterance cost is unchanged (same network, p95 17-18 ms).

The tuned encoder is used for intent detection only: the knowledge base keeps the
general model, which the tuning would bend towards the 77 labels.

:func:`fine_tune` trains on CPU with every core (about 2.5 minutes per epoch of 7,000
examples on 2 cores) and returns a :class:`TunedEncoder`; :meth:`TunedEncoder.save`
writes it as a sentence-transformers folder, and ``VC_INTENT_ENCODER`` names such a
folder for the app. ``python -m core.intent_tuning --train train.csv --out DIR`` builds
one from a ``text,category`` CSV.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.language.embeddings import EMBEDDING_DIM, MiniLMEmbedder, load_sentence_model

log = logging.getLogger(__name__)

EPOCHS = 2
BATCH_SIZE = 32
ENCODER_LR = 5e-5
HEAD_LR = 1e-3
WEIGHT_DECAY = 0.01
WARMUP_SHARE = 0.06  # of all steps, linear warm-up then linear decay
LOGIT_SCALE = 20.0  # cosine similarities (-1..1) times this are the head's logits
ENCODE_BATCH = 128


class TunedEncoder(MiniLMEmbedder):
    """An encoder fine-tuned on intent examples; an :class:`~core.language.embeddings.Embedder`."""

    def __init__(self, model: Any):
        super().__init__(model)
        self._model.eval()

    @classmethod
    def load(cls, path: str | Path) -> TunedEncoder:
        """Raises:
        FileNotFoundError: ``path`` is not a saved encoder folder.
        """
        folder = Path(path)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"{folder} is not a saved intent encoder (no config.json)")
        return cls(load_sentence_model(str(folder)))

    def save(self, path: str | Path) -> None:
        self._model.save(str(path))


def fine_tune(
    texts: Sequence[str],
    y: npt.NDArray[np.int64],
    n_classes: int,
    *,
    epochs: int = EPOCHS,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> TunedEncoder:
    """Fine-tune MiniLM so that ``texts`` separate by class ``y`` (0..n_classes-1).

    The head starts at each class's mean vector (so the first steps refine a working
    classifier instead of undoing random logits) and is thrown away afterwards.
    ``progress(step, steps, loss)`` is called every 50 steps.

    Raises:
        ValueError: no texts, or fewer than two classes.
        EmbeddingsUnavailable: torch or the model is not installed.
    """
    if len(texts) == 0 or len(texts) != len(y):
        raise ValueError(f"{len(texts)} texts for {len(y)} labels")
    if len(np.unique(y)) < 2:
        raise ValueError("fine-tuning needs examples of at least two intents")
    import torch
    import torch.nn.functional as F  # noqa: N812

    previous_threads = torch.get_num_threads()
    model = load_sentence_model()  # (sets torch to the single thread calls use)
    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    try:
        torch.manual_seed(seed)
        labels = torch.as_tensor(np.asarray(y, dtype=np.int64))

        def encode(batch: Sequence[str]) -> Any:
            features = model.preprocess(list(batch))
            return F.normalize(model(features)["sentence_embedding"], dim=-1)

        head = torch.nn.Linear(EMBEDDING_DIM, n_classes, bias=False)
        with torch.no_grad():
            model.eval()
            vectors = torch.cat([encode(texts[i : i + ENCODE_BATCH]) for i in range(0, len(texts), ENCODE_BATCH)])
            centroids = torch.zeros(n_classes, EMBEDDING_DIM).index_add_(0, labels, vectors)
            head.weight.copy_(F.normalize(centroids, dim=-1))
        optimizer = torch.optim.AdamW(
            [{"params": model.parameters(), "lr": ENCODER_LR}, {"params": head.parameters(), "lr": HEAD_LR}],
            weight_decay=WEIGHT_DECAY,
        )
        n = len(texts)
        steps = epochs * ((n + BATCH_SIZE - 1) // BATCH_SIZE)
        warmup = max(1.0, WARMUP_SHARE * steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / steps)
        )
        generator = torch.Generator().manual_seed(seed)
        step = 0
        model.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, BATCH_SIZE):
                ids = order[start : start + BATCH_SIZE]
                logits = LOGIT_SCALE * encode([texts[i] for i in ids]) @ F.normalize(head.weight, dim=-1).T
                loss = F.cross_entropy(logits, labels[ids])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                step += 1
                if progress is not None and step % 50 == 0:
                    progress(step, steps, float(loss.item()))
    finally:
        torch.set_num_threads(previous_threads)
    log.info(
        "intent encoder fine-tuned",
        extra={"examples": len(texts), "intents": n_classes, "epochs": epochs,
               "train_s": round(time.perf_counter() - started, 1)},
    )
    return TunedEncoder(model)


Example = tuple[str, str]


def load_csv(path: Path, text_column: str = "text", label_column: str = "category") -> list[Example]:
    """``(text, label)`` rows of a CSV with a header; empty rows are skipped.

    Raises:
        ValueError: a column is missing.
    """
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {text_column, label_column} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        rows = [(r[text_column] or "", r[label_column] or "") for r in reader]
    return [(t.strip(), label.strip()) for t, label in rows if t.strip() and label.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    from core.language.text import normalize

    parser = argparse.ArgumentParser(
        prog="python -m core.intent_tuning",
        description="Fine-tune the intent encoder on a text,category CSV; point VC_INTENT_ENCODER at --out.",
    )
    parser.add_argument("--train", type=Path, required=True, help="CSV with text and category columns")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the encoder to")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"default {EPOCHS}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.train.exists():
        print(f"{args.train} not found", file=sys.stderr)
        return 2
    try:
        rows = [(normalize(t), label) for t, label in load_csv(args.train)]
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    rows = [(t, label) for t, label in rows if t]
    names = sorted({label for _, label in rows})
    if len(names) < 2:
        print(f"{args.train}: fewer than two intents", file=sys.stderr)
        return 2
    index = {label: i for i, label in enumerate(names)}
    y = np.array([index[label] for _, label in rows], dtype=np.int64)
    print(f"{len(rows)} examples, {len(names)} intents, {args.epochs} epochs", flush=True)
    encoder = fine_tune(
        [t for t, _ in rows], y, len(names), epochs=args.epochs, seed=args.seed,
        progress=lambda s, total, loss: print(f"step {s}/{total} loss {loss:.3f}", flush=True),
    )
    encoder.save(args.out)
    print(f"saved to {args.out}: VC_INTENT_ENCODER={args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
