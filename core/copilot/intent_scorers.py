"""The scorers behind :class:`~core.copilot.intent.IntentClassifier`, and the one-thread
guard its fits and predictions run under.

Three scorers share one feature batch (:class:`Features`): logistic regression on
sentence vectors and on TF-IDF n-grams (:class:`Linear`, applied with plain numpy), and a
similarity-weighted vote of the nearest training examples (:func:`vote`); :class:`Model`
averages them. :func:`temperature` calibrates the average on held-out predictions.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
NEIGHBOURS = 10  # training examples that vote
NEIGHBOUR_TEMPERATURE = 0.05  # a neighbour's vote is exp(cosine / T): the nearest count most
MAX_ITER = 3000

# --- threads --------------------------------------------------------------------------------
_limit_lock = threading.RLock()
_controller: Any = None
_controller_saw_torch = False


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run a block with BLAS and OpenMP (numpy, scikit-learn, torch) on one thread.

    On a busy 2-core machine their worker threads spin against other processes: a
    single-utterance embedding went from 8 ms to ~500 ms and a 0.1 s regression fit to
    4 s. One thread costs little for single utterances and keeps latency predictable.
    The limits are process-wide, so blocks are serialised: two overlapping blocks
    restoring each other's settings could leave the process at one thread for good.
    """
    global _controller, _controller_saw_torch
    from threadpoolctl import ThreadpoolController

    with _limit_lock:
        # scanning the loaded libraries takes ~3 ms: once, and again after torch loads
        if _controller is None or _controller_saw_torch != ("torch" in sys.modules):
            _controller = ThreadpoolController()
            _controller_saw_torch = "torch" in sys.modules
        with _controller.limit(limits=1):
            yield


# --- scorers ------------------------------------------------------------------------------
def softmax(z: FloatArray) -> FloatArray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


class Linear:
    """A fitted multinomial logistic regression applied with plain numpy (scikit-learn's
    per-call validation would cost more than the arithmetic for one utterance)."""

    def __init__(self, features: Any, y: IntArray, n_classes: int, c: float, tol: float = 1e-4):
        from sklearn.linear_model import LogisticRegression

        present = np.unique(y)
        self._coef_t: FloatArray | None = None
        self.coef = np.zeros((n_classes, features.shape[1]))
        self.intercept = np.full(n_classes, -1e4)  # a class absent from a fold: never predicted
        if present.size == 1:
            self.intercept[present[0]] = 0.0
            return
        model = LogisticRegression(C=c, max_iter=MAX_ITER, tol=tol).fit(features, y)
        coef, intercept = model.coef_, model.intercept_
        if present.size == 2:  # sklearn keeps one row: softmax([-z/2, z/2]) == sigmoid(z)
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        self.coef[present] = coef
        self.intercept[present] = intercept

    def proba(self, features: Any) -> FloatArray:
        if self._coef_t is None:  # contiguous (features, classes): a sparse row then reads
            self._coef_t = np.ascontiguousarray(self.coef.T)  # only its own rows, no copy
        return softmax(np.asarray(features @ self._coef_t, dtype=np.float64) + self.intercept)


def vote(similarities: FloatArray, y: IntArray, n_classes: int) -> FloatArray:
    """Each of the NEIGHBOURS nearest examples adds exp(cosine / T) to its class."""
    k = min(NEIGHBOURS, similarities.shape[1])
    top = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
    sims = np.take_along_axis(similarities, top, axis=1)
    weights = np.exp((sims - sims.max(axis=1, keepdims=True)) / NEIGHBOUR_TEMPERATURE)
    votes = np.zeros((similarities.shape[0], n_classes))
    np.add.at(votes, (np.arange(similarities.shape[0])[:, None], y[top]), weights)
    return votes / votes.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


class Lexical:
    """TF-IDF word (1-2) and character (2-5, within words) n-grams, each block L2-normalised."""

    def __init__(self, texts: Sequence[str]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts)
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True).fit(texts)
        self._analyze = self.words.build_analyzer()
        self._idf = dict(zip(self.words.get_feature_names_out(), self.words.idf_, strict=True))
        self._unseen_idf = float(self.words.idf_.max())

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return sparse.hstack([self.words.transform(texts), self.chars.transform(texts)]).tocsr()

    def known_share(self, text: str) -> float:
        """Norm of the query's word vector over its norm had unseen words been counted
        (at the highest IDF): "tell me a joke" shares "tell me" with many examples, but
        "joke" must lower its similarity to all of them."""
        counts = Counter(self._analyze(text))
        known = unseen = 0.0
        for gram, n in counts.items():
            tf = 1.0 + np.log(n)
            if gram in self._idf:
                known += (tf * self._idf[gram]) ** 2
            else:
                unseen += (tf * self._unseen_idf) ** 2
        return float(np.sqrt(known / (known + unseen))) if known + unseen else 0.0


@dataclass
class Features:
    """An utterance batch as each scorer sees it."""

    lexical: sparse.csr_matrix
    dense: npt.NDArray[np.float32] | None  # sentence vectors (embedding backend)
    known: FloatArray  # lexical backend: share of each query's words the examples know

    def rows(self, index: IntArray) -> Features:
        dense = None if self.dense is None else self.dense[index]
        return Features(self.lexical[index], dense, self.known[index])


class Model:
    """The scorers fitted on one training set; ``proba`` averages them."""

    def __init__(
        self,
        feats: Features,
        y: IntArray,
        n_classes: int,
        weights: tuple[float, float, float],
        c_embedding: float,
        c_lexical: float,
        tol: float = 1e-4,
    ):
        self.n_classes = n_classes
        self.weights = weights
        self.y = y
        use_dense = feats.dense is not None and weights[0] > 0
        self.embedding = Linear(feats.dense, y, n_classes, c_embedding, tol) if use_dense else None
        self.lexical = Linear(feats.lexical, y, n_classes, c_lexical, tol) if weights[1] > 0 else None
        # training examples as columns, stored that way once: transposing a sparse matrix
        # on every call cost 6 ms of a lexical prediction on Banking77
        self.space_t: Any = feats.dense.T if feats.dense is not None else feats.lexical.T.tocsr()

    def _similarities(self, feats: Features) -> FloatArray:
        if feats.dense is not None:
            return np.asarray(feats.dense @ self.space_t, dtype=np.float64)
        # two L2-normalised blocks: the dot product is the sum of the two cosines
        return np.asarray((feats.lexical @ self.space_t).toarray(), dtype=np.float64) / 2.0

    def proba(self, feats: Features) -> tuple[FloatArray, FloatArray]:
        """Averaged probabilities, and each utterance's cosine to its nearest example."""
        sims = self._similarities(feats)
        total = np.zeros((sims.shape[0], self.n_classes))
        if self.weights[2] > 0:
            total += self.weights[2] * vote(sims, self.y, self.n_classes)
        if self.embedding is not None and feats.dense is not None:
            total += self.weights[0] * self.embedding.proba(feats.dense)
        if self.lexical is not None:
            total += self.weights[1] * self.lexical.proba(feats.lexical)
        return total, sims.max(axis=1) * feats.known


def temperature(probs: FloatArray, y: IntArray) -> float:
    """The T minimising the log loss of softmax(log p / T) on held-out predictions."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(probs, 1e-12, 1.0))

    def nll(log_t: float) -> float:
        p = softmax(logp / np.exp(log_t))
        return float(-np.mean(np.log(np.clip(p[np.arange(y.size), y], 1e-12, 1.0))))

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))
