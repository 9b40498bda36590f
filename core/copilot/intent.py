"""Intent detection from labelled examples, with calibrated confidence and out-of-scope.

:class:`IntentClassifier` learns from ``(text, label)`` pairs, for instance a pack's
``intents.yaml`` (:meth:`IntentClassifier.from_pack`). Texts are normalised the way the
recogniser writes them (:func:`core.language.text.normalize`: lowercase, no punctuation), so
written training examples and spoken transcripts look alike.

Two backends share one API:

* **embedding** (the default when ``core.language.embeddings`` is installed): the weighted average
  of three scorers' probabilities — multinomial logistic regression on MiniLM sentence
  vectors, logistic regression on TF-IDF word and character n-grams, and a
  similarity-weighted vote of the nearest training examples. On a Banking77 validation
  split the embedding regression alone is ~1 point less accurate: the lexical model
  keeps exact wording the sentence vector blurs, the vote keeps rare phrasings.
* **lexical** (no torch, or ``use_embeddings=False``): the TF-IDF regression alone (a
  nearest-example vote over TF-IDF vectors added nothing on Banking77 and cost two
  points on the bank pack); TF-IDF similarity still serves out-of-scope detection.

The averaged probability is temperature-scaled on held-out predictions
(cross-validation over the training examples), so ``confidence`` is a probability. A
prediction is ``out_of_scope`` when that confidence is below ``min_confidence`` or the
utterance is not similar enough to any training example (``min_similarity``, cosine).
Out-of-scope detection is much sharper with embeddings: TF-IDF similarity only sees
shared words and character n-grams.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from core.copilot.intent_scorers import (
    Features,
    FloatArray,
    IntArray,
    Lexical,
    Linear,
    Model,
    single_threaded,
    softmax,
    temperature,
)
from core.language.embeddings import Embedder
from core.language.text import normalize

log = logging.getLogger(__name__)

OUT_OF_SCOPE = "out_of_scope"
Backend = Literal["embedding", "lexical"]

# Regularisation of the two regressions (inverse strength), from a validation sweep on
# Banking77 (the training part of an 80/20 split); ``fit(..., tune=True)`` sweeps C_GRID.
EMBEDDING_C = 10.0
LEXICAL_C = 30.0
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
# Share of each scorer in the averaged probability: (embedding LR, lexical LR, neighbours).
EMBEDDING_WEIGHTS = (0.4, 0.4, 0.2)
LEXICAL_WEIGHTS = (0.0, 1.0, 0.0)
CALIBRATION_FOLDS = 3
VALIDATION_FRACTION = 0.15  # held out instead of folds when there are many examples
LARGE_TRAINING_SET = 2000
# Out of scope below these (calibrated probability; cosine to the nearest example). Chosen
# on the bank pack: held-out paraphrases stay above them, off-topic requests fall below.
MIN_CONFIDENCE = 0.30
MIN_SIMILARITY_EMBEDDING = 0.45
MIN_SIMILARITY_LEXICAL = 0.20
TOP_ALTERNATIVES = 3
HELDOUT_TOL = 1e-3  # models that only produce held-out predictions converge less tightly


@dataclass(frozen=True)
class IntentPrediction:
    """What the classifier thinks one utterance is about.

    Attributes:
        label: the intent id, or ``"out_of_scope"``.
        confidence: calibrated probability of the best in-scope intent (also when the
            utterance is out of scope, to show how close it came).
        alternatives: up to three ``(intent id, probability)``, best first, in-scope only.
        out_of_scope: confidence or similarity below the classifier's thresholds.
        similarity: cosine similarity to the nearest training example.
    """

    label: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...]
    out_of_scope: bool
    similarity: float = 0.0

    @property
    def best_intent(self) -> str | None:
        """The most likely in-scope intent, even when the prediction is out of scope."""
        return self.alternatives[0][0] if self.alternatives else None


def _heldout_splits(y: IntArray, seed: int) -> list[tuple[IntArray, IntArray]]:
    """Stratified (train, held-out) index pairs: one validation split for large sets,
    CALIBRATION_FOLDS folds otherwise; none if a class has a single example."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    smallest = int(np.bincount(y).min())
    if smallest < 2:
        return []
    idx = np.arange(y.size)
    if y.size >= LARGE_TRAINING_SET:
        tr, va = train_test_split(idx, test_size=VALIDATION_FRACTION, stratify=y, random_state=seed)
        return [(tr, va)]
    folds = StratifiedKFold(n_splits=min(CALIBRATION_FOLDS, smallest), shuffle=True, random_state=seed)
    return list(folds.split(idx, y))


@dataclass(frozen=True)
class HeldOut:
    """How the classifier did on its own held-out examples during training."""

    examples: int = 0
    accuracy: float = float("nan")
    false_out_of_scope: float = float("nan")  # share of in-scope examples rejected
    similarity_p05: float = float("nan")  # 5th percentile of nearest-example cosine
    c_scores: dict[str, dict[float, float]] = field(default_factory=dict)  # tune=True only


# --- the classifier ------------------------------------------------------------------------
class IntentClassifier:
    """Intent detection trained from labelled example utterances.

    Train once, then predict from any thread (prediction is read-only); to retrain,
    build a new classifier and swap it in rather than calling ``fit`` on a shared one.

    Args:
        embedder: sentence vectors to use (tests pass a fake); default: the process-wide
            MiniLM model when installed.
        use_embeddings: ``False`` forces the lexical backend, ``True`` requires
            embeddings (raises :class:`~core.language.embeddings.EmbeddingsUnavailable`), ``None``
            uses them when installed.
        min_confidence: calibrated probability below which an utterance is out of scope.
        min_similarity: cosine to the nearest example below which it is out of scope
            (default depends on the backend).
        c_embedding: regularisation of the embedding regression.
        c_lexical: regularisation of the TF-IDF regression.
        fine_tune_epochs: with at least :data:`LARGE_TRAINING_SET` examples, first
            fine-tune the encoder for this many epochs (:mod:`core.copilot.intent_tuning`) on the
            training part of the validation split, so that confidence is still calibrated
            on examples the encoder never saw; 0 (default) keeps the encoder as it is.
    """

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        use_embeddings: bool | None = None,
        min_confidence: float = MIN_CONFIDENCE,
        min_similarity: float | None = None,
        c_embedding: float = EMBEDDING_C,
        c_lexical: float = LEXICAL_C,
        fine_tune_epochs: int = 0,
    ):
        if use_embeddings is False:
            embedder = None
        elif embedder is None:
            embedder = _default_embedder(required=bool(use_embeddings))
        self._embedder = embedder
        self.backend: Backend = "embedding" if embedder is not None else "lexical"
        self.min_confidence = min_confidence
        if min_similarity is None:
            min_similarity = MIN_SIMILARITY_EMBEDDING if embedder is not None else MIN_SIMILARITY_LEXICAL
        self.min_similarity = min_similarity
        self.c_embedding = c_embedding
        self.c_lexical = c_lexical
        self.fine_tune_epochs = fine_tune_epochs
        self.fine_tuned = False
        self.temperature = 1.0
        self.labels: tuple[str, ...] = ()
        self.names: dict[str, str] = {}
        self.train_seconds = 0.0
        self.heldout = HeldOut()
        self._lexical: Lexical | None = None
        self._model: Model | None = None

    # -- training --------------------------------------------------------------------------
    @classmethod
    def from_examples(cls, pairs: Iterable[tuple[str, str]], **kwargs: Any) -> IntentClassifier:
        """Train on ``(text, label)`` pairs; ``kwargs`` go to the constructor."""
        pairs = list(pairs)
        return cls(**kwargs).fit([t for t, _ in pairs], [label for _, label in pairs])

    @classmethod
    def from_pack(cls, pack: Any, *, include_names: bool = True, **kwargs: Any) -> IntentClassifier:
        """Train on a pack's intents (``pack.intents``: dicts with ``id``, ``name``,
        ``examples``); each intent's name counts as one more example.

        Raises:
            ValueError: fewer than two intents have examples.
        """
        texts: list[str] = []
        labels: list[str] = []
        names: dict[str, str] = {}
        for intent in pack.intents:
            label = str(intent["id"])
            names[label] = str(intent.get("name") or label)
            examples = [str(e) for e in intent.get("examples") or ()]
            if include_names and intent.get("name") and examples:
                examples.append(str(intent["name"]))
            texts += examples
            labels += [label] * len(examples)
        model = cls(**kwargs).fit(texts, labels)
        model.names = names
        return model

    def fit(
        self, texts: Sequence[str], labels: Sequence[str], *, tune: bool = False, seed: int = 0
    ) -> IntentClassifier:
        """Train on parallel lists of texts and labels.

        Held-out predictions (cross-validation, or a validation split for large sets) fit
        the confidence temperature; with ``tune`` they also choose each regression's C
        from :data:`C_GRID`. The final scorers are trained on all examples.

        Raises:
            ValueError: fewer than two labels, or texts and labels differ in length.
        """
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        started = time.perf_counter()
        pairs = [(normalize(t), str(label)) for t, label in zip(texts, labels, strict=True)]
        pairs = [(t, label) for t, label in pairs if t]
        labels_found = sorted({label for _, label in pairs})
        if len(labels_found) < 2:
            raise ValueError("an intent classifier needs examples of at least two intents")
        index = {label: i for i, label in enumerate(labels_found)}
        norm = [t for t, _ in pairs]
        y = np.array([index[label] for _, label in pairs], dtype=np.int64)
        if self.fine_tune_epochs > 0:
            self._fine_tune(norm, y, len(labels_found), seed)
        with single_threaded():
            lexical = Lexical(norm)
            feats = self._features(norm, lexical)
            weights = EMBEDDING_WEIGHTS if feats.dense is not None else LEXICAL_WEIGHTS
            self._fit_scorers(feats, y, len(labels_found), weights, tune, seed)
            self._model = Model(feats, y, len(labels_found), weights, self.c_embedding, self.c_lexical)
        self._lexical = lexical
        self.labels = tuple(labels_found)
        self.train_seconds = time.perf_counter() - started
        log.info(
            "intent classifier trained",
            extra={
                "backend": self.backend,
                "intents": len(self.labels),
                "examples": int(y.size),
                "train_s": round(self.train_seconds, 3),
                "temperature": round(self.temperature, 3),
                "heldout_accuracy": round(self.heldout.accuracy, 4),
            },
        )
        return self

    def _fine_tune(self, norm: Sequence[str], y: IntArray, n: int, seed: int) -> None:
        """Swap in an encoder tuned on the part of the examples not held out for calibration."""
        if self._embedder is None:
            log.warning("fine-tuning skipped: no sentence encoder (lexical backend)")
            return
        splits = _heldout_splits(y, seed)
        if y.size < LARGE_TRAINING_SET or not splits:
            log.warning(
                "fine-tuning skipped: it needs %d examples and two of every intent (got %d)",
                LARGE_TRAINING_SET, y.size,
            )
            return
        from core.copilot.intent_tuning import fine_tune

        train = splits[0][0]
        self._embedder = fine_tune([norm[i] for i in train], y[train], n, epochs=self.fine_tune_epochs, seed=seed)
        self.fine_tuned = True

    def _fit_scorers(
        self,
        feats: Features,
        y: IntArray,
        n: int,
        weights: tuple[float, float, float],
        tune: bool,
        seed: int,
    ) -> None:
        """Tune C (optionally) and the temperature on held-out predictions."""
        splits = _heldout_splits(y, seed)
        if not splits:
            return
        c_scores = self._tune(feats, y, n, splits, weights) if tune else {}
        probs = np.zeros((y.size, n))
        best = np.zeros(y.size)
        for tr, va in splits:
            model = Model(feats.rows(tr), y[tr], n, weights, self.c_embedding, self.c_lexical, HELDOUT_TOL)
            probs[va], best[va] = model.proba(feats.rows(va))
        seen = np.concatenate([va for _, va in splits])
        probs, best, truth = probs[seen], best[seen], y[seen]
        self.temperature = temperature(probs, truth)
        calibrated = self._calibrate(probs)
        rejected = (calibrated.max(axis=1) < self.min_confidence) | (best < self.min_similarity)
        self.heldout = HeldOut(
            examples=int(seen.size),
            accuracy=float(np.mean(calibrated.argmax(axis=1) == truth)),
            false_out_of_scope=float(np.mean(rejected)),
            similarity_p05=float(np.percentile(best, 5)),
            c_scores=c_scores,
        )

    def _tune(
        self,
        feats: Features,
        y: IntArray,
        n: int,
        splits: list[tuple[IntArray, IntArray]],
        weights: tuple[float, float, float],
    ) -> dict[str, dict[float, float]]:
        """Held-out accuracy of each regression for each C; keeps the best C of each."""
        scores: dict[str, dict[float, float]] = {}
        total = sum(va.size for _, va in splits)
        if weights[0] > 0 and feats.dense is not None:
            scores["embedding"] = {}
            for c in C_GRID:
                hits = 0
                for tr, va in splits:
                    p = Linear(feats.dense[tr], y[tr], n, c).proba(feats.dense[va])
                    hits += int((p.argmax(axis=1) == y[va]).sum())
                scores["embedding"][c] = hits / total
            # ties go to the smaller C (stronger regularisation)
            self.c_embedding = max(C_GRID, key=lambda c: (scores["embedding"][c], -c))
        if weights[1] > 0:
            scores["lexical"] = {}
            for c in C_GRID:
                hits = 0
                for tr, va in splits:
                    p = Linear(feats.lexical[tr], y[tr], n, c).proba(feats.lexical[va])
                    hits += int((p.argmax(axis=1) == y[va]).sum())
                scores["lexical"][c] = hits / total
            self.c_lexical = max(C_GRID, key=lambda c: (scores["lexical"][c], -c))
        return scores

    # -- prediction ------------------------------------------------------------------------
    def predict(self, text: str) -> IntentPrediction:
        """Classify one utterance (a transcript or typed text)."""
        return self.predict_batch([text])[0]

    def predict_batch(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Classify several utterances at once (one embedding call).

        Raises:
            RuntimeError: the classifier has not been trained.
        """
        if self._model is None or self._lexical is None:
            raise RuntimeError("the intent classifier is not trained: call fit() or from_pack() first")
        norm = [normalize(t) for t in texts]
        live = [i for i, t in enumerate(norm) if t]
        out = [IntentPrediction(OUT_OF_SCOPE, 0.0, (), True, 0.0) for _ in texts]
        if live:
            with single_threaded():
                probs, best = self._model.proba(self._features([norm[i] for i in live], self._lexical))
            calibrated = self._calibrate(probs)
            for row, i in enumerate(live):
                out[i] = self._prediction(calibrated[row], float(best[row]))
        return out

    def _calibrate(self, probs: FloatArray) -> FloatArray:
        return softmax(np.log(np.clip(probs, 1e-12, 1.0)) / self.temperature)

    def _prediction(self, probs: FloatArray, similarity: float) -> IntentPrediction:
        order = np.argsort(-probs)[:TOP_ALTERNATIVES]
        confidence = float(probs[order[0]])
        oos = confidence < self.min_confidence or similarity < self.min_similarity
        return IntentPrediction(
            label=OUT_OF_SCOPE if oos else self.labels[order[0]],
            confidence=confidence,
            alternatives=tuple((self.labels[j], float(probs[j])) for j in order),
            out_of_scope=oos,
            similarity=similarity,
        )

    def _features(self, norm: Sequence[str], lexical: Lexical) -> Features:
        if self._embedder is not None:
            dense = np.asarray(self._embedder.embed(list(norm)), dtype=np.float32)
            known = np.ones(len(norm))
        else:
            dense = None
            known = np.array([lexical.known_share(t) for t in norm])
        return Features(lexical.transform(norm), dense, known)


def _default_embedder(required: bool) -> Embedder | None:
    from core.language import embeddings
    if not required and not embeddings.available():
        log.warning("sentence embeddings not installed: intent detection uses the lexical model")
        return None
    try:
        return embeddings.get_embedder()
    except embeddings.EmbeddingsUnavailable:
        if required:
            raise
        log.warning("sentence embeddings unavailable: intent detection uses the lexical model")
        return None
