"""Zero-shot call disposition: which label fits a transcript, and which lines say so.

Nothing is trained per deployment. The labels are described by their names and, when a
taxonomy has them, their descriptions (``dispositions.yaml`` in a pack: dispositions,
each with sub-dispositions). A transcript line and a label are compared as sentence
vectors (MiniLM), or, without the embedding packages, by IDF-weighted shared stems.

Scoring, for every leaf label (a sub-disposition, or a label without children):

1. ``sim[line, label]``: the best cosine between the line and the label's texts (its
   name; its description). A parent's texts count at :data:`PARENT_WEIGHT`.
2. Centering: each line's mean similarity over all labels is subtracted, so lines that
   look alike to every label ("thank you for calling") carry no vote.
3. Speaker weight: caller lines count 1, agent lines :data:`AGENT_WEIGHT` (callers state
   the task; agents mostly ask and confirm).
4. The label's score is the mean of its :data:`TOP_LINES` best lines: one clear
   statement decides, a single stray line does not.

Scores become probabilities with a softmax (:data:`TEMPERATURE`); a parent's confidence
is the sum over its children, and the sub-label is the best child of the chosen parent.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.kb.lexical import analyze
from core.language.embeddings import Embedder, EmbeddingsUnavailable
from core.language.text import clean_hypothesis, is_junk

log = logging.getLogger(__name__)

AGENT_WEIGHT = 0.5  # an agent line's vote relative to a caller line
PARENT_WEIGHT = 0.5  # a parent label's name/description, relative to the child's own
TOP_LINES = 2  # a label's score is the mean over this many best lines
TEMPERATURE = 0.03  # softmax temperature over embedding scores (cosine units)
LEXICAL_TEMPERATURE = 0.5  # ...over lexical scores (IDF units)
SUPPORT_LINES = 3  # supporting lines returned
NAME_WEIGHT = 1.5  # lexical: a stem of the label name counts this much more than one of the description
_NOISE = re.compile(r"\[[^\]]*\]|<[^>]*>")

FloatArray = npt.NDArray[np.float32]


# --- labels ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Label:
    """A disposition or sub-disposition.

    Attributes:
        id: stable id (``card_replaced``); for an ad-hoc list, the name itself.
        name: short human name.
        description: one or two sentences saying when the label applies (may be empty).
        children: sub-labels (empty for a leaf).
    """

    id: str
    name: str
    description: str = ""
    children: tuple[Label, ...] = ()

    @property
    def texts(self) -> tuple[str, ...]:
        """What the label is compared with: its name and its description."""
        return tuple(t for t in (self.name, self.description) if t.strip())


@dataclass(frozen=True)
class Taxonomy:
    """Labels to choose from: flat (names only) or two levels (dispositions → subs)."""

    labels: tuple[Label, ...]

    @classmethod
    def from_names(cls, names: Iterable[str]) -> Taxonomy:
        """A flat label set described by names only (e.g. ``["replace card", "pay bill"]``)."""
        unique = dict.fromkeys(n.strip() for n in names if n.strip())
        return cls(tuple(Label(id=n, name=n) for n in unique))

    @classmethod
    def from_dispositions(cls, dispositions: Sequence[Mapping[str, Any]]) -> Taxonomy:
        """From a pack's ``dispositions`` list (``id, name, description, sub_dispositions``)."""

        def label(item: Mapping[str, Any]) -> Label:
            name = str(item.get("name") or item.get("id") or "")
            subs = tuple(label(s) for s in item.get("sub_dispositions") or ())
            return Label(str(item.get("id") or name), name, str(item.get("description") or ""), subs)

        return cls(tuple(label(d) for d in dispositions))

    @property
    def leaves(self) -> list[tuple[Label, Label | None]]:
        """``(leaf, parent)`` pairs; a label without children is its own leaf (parent None)."""
        out: list[tuple[Label, Label | None]] = []
        for label in self.labels:
            out.extend((c, label) for c in label.children) if label.children else out.append((label, None))
        return out


# --- transcript --------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One transcript segment: its index in the call, who spoke, and the words."""

    index: int
    speaker: str  # "caller" or "agent"
    text: str


def lines_from_segments(
    segments: Iterable[Mapping[str, Any]], text_key: str = "human_transcript"
) -> list[Line]:
    """Harper Valley style segments (``index, speaker_role, <text_key>``) as lines."""
    out = []
    for i, seg in enumerate(segments):
        speaker = str(seg.get("speaker_role") or seg.get("speaker") or "caller").lower()
        out.append(Line(int(seg.get("index", i)), speaker, str(seg.get(text_key) or seg.get("text") or "")))
    return out


def content_lines(lines: Iterable[Line]) -> list[Line]:
    """Lines with at least one content word; noise tags (``[noise]``, ``<unk>``) removed."""
    out = []
    for line in lines:
        text = " ".join(_NOISE.sub(" ", clean_hypothesis(line.text)).split())
        if text and not is_junk(text) and analyze(text):
            out.append(Line(line.index, line.speaker, text))
    return out


def _is_agent(speaker: str) -> bool:
    return speaker.lower() in ("agent", "assistant", "system", "bot")


# --- result ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DispositionProposal:
    """A proposed disposition with its evidence.

    Attributes:
        label: id of the disposition (the top-level label).
        confidence: its probability (0..1; the sum over its sub-labels).
        sub_label: id of the best sub-label of ``label`` (None for a flat label set).
        sub_confidence: probability of ``sub_label`` given ``label``.
        supporting_lines: ``(segment index, text, score)`` of the lines that most
            support the chosen (sub-)label, best first.
        scores: every leaf label's probability, best first (for display and audit).
        method: ``"embedding"`` or ``"lexical"``.
    """

    label: str
    confidence: float
    sub_label: str | None
    sub_confidence: float | None
    supporting_lines: list[tuple[int, str, float]]
    scores: dict[str, float] = field(default_factory=dict)
    method: str = "embedding"


# --- scoring -----------------------------------------------------------------------------
def _softmax(x: npt.NDArray[np.float64], temperature: float) -> npt.NDArray[np.float64]:
    z = (x - x.max()) / temperature
    e = np.exp(z)
    return e / e.sum()


def _aggregate(weighted: npt.NDArray[np.float64], top: int) -> npt.NDArray[np.float64]:
    """Per label (column): mean of the ``top`` largest values over lines (rows)."""
    top = max(1, min(top, weighted.shape[0]))
    part = -np.partition(-weighted, top - 1, axis=0)[:top]
    return part.mean(axis=0)


class DispositionClassifier:
    """Propose a disposition for a transcript from a :class:`Taxonomy`.

    Args:
        taxonomy: the labels.
        embedder: sentence encoder; ``"auto"`` (default) uses MiniLM when installed,
            ``None`` forces the lexical method.
    """

    def __init__(self, taxonomy: Taxonomy, embedder: Embedder | None | str = "auto") -> None:
        if not taxonomy.labels:
            raise ValueError("a taxonomy needs at least one label")
        self.taxonomy = taxonomy
        self._leaves = taxonomy.leaves
        self._embedder = self._resolve(embedder)
        self._label_vectors: list[FloatArray] | None = None
        self._parent_vectors: dict[str, FloatArray] = {}
        self._lexical_labels: list[Counter[str]] | None = None

    @staticmethod
    def _resolve(embedder: Embedder | None | str) -> Embedder | None:
        if embedder != "auto":
            return embedder if not isinstance(embedder, str) else None
        from core.language import embeddings
        if not embeddings.available():
            return None
        try:
            return embeddings.get_embedder()
        except EmbeddingsUnavailable as exc:
            log.warning("dispositions use the lexical method: %s", exc)
            return None

    @property
    def method(self) -> str:
        return "embedding" if self._embedder is not None else "lexical"

    def prepare(self) -> None:
        """Encode the label texts now (otherwise the first :meth:`propose` does it)."""
        if self._embedder is not None and self._label_vectors is None:
            self._embed_labels()

    # --- similarity matrices -------------------------------------------------------
    def _embed_labels(self) -> None:
        assert self._embedder is not None
        texts = list(
            dict.fromkeys(
                [t for leaf, _ in self._leaves for t in leaf.texts]
                + [t for p in self.taxonomy.labels for t in p.texts]
            )
        )
        vecs = dict(zip(texts, np.asarray(self._embedder.embed(texts), np.float32), strict=True))
        self._label_vectors = [np.stack([vecs[t] for t in leaf.texts]) for leaf, _ in self._leaves]
        self._parent_vectors = {
            p.id: np.stack([vecs[t] for t in p.texts]) for p in self.taxonomy.labels if p.texts
        }

    def line_vectors(self, lines: Sequence[Line]) -> FloatArray:
        """Sentence vectors of ``lines`` (each distinct text encoded once)."""
        assert self._embedder is not None
        texts = list(dict.fromkeys(line.text for line in lines))
        vecs = dict(zip(texts, np.asarray(self._embedder.embed(texts), np.float32), strict=True))
        return np.stack([vecs[line.text] for line in lines]) if lines else np.zeros((0, 384), np.float32)

    def _embedding_sims(self, lines: Sequence[Line], vectors: FloatArray | None) -> npt.NDArray[np.float64]:
        if self._label_vectors is None:
            self._embed_labels()
        assert self._label_vectors is not None
        v = self.line_vectors(lines) if vectors is None else vectors
        sims = np.zeros((len(lines), len(self._leaves)), np.float64)
        for j, (_, parent) in enumerate(self._leaves):
            sims[:, j] = (v @ self._label_vectors[j].T).max(axis=1)
            if parent is not None and parent.id in self._parent_vectors:
                sims[:, j] += PARENT_WEIGHT * (v @ self._parent_vectors[parent.id].T).max(axis=1)
        return sims

    def _lexical_sims(self, lines: Sequence[Line]) -> npt.NDArray[np.float64]:
        if self._lexical_labels is None:
            bags = []
            for leaf, parent in self._leaves:
                bag: Counter[str] = Counter()
                for term in analyze(leaf.description) + (analyze(parent.name) if parent else []):
                    bag[term] = max(bag[term], 1)
                for term in analyze(leaf.name):
                    bag[term] = NAME_WEIGHT  # type: ignore[assignment]
                bags.append(bag)
            self._lexical_labels = bags
        bags = self._lexical_labels
        df = Counter(t for bag in bags for t in bag)
        n = len(bags)
        sims = np.zeros((len(lines), n), np.float64)
        for i, line in enumerate(lines):
            terms = set(analyze(line.text))
            for j, bag in enumerate(bags):
                sims[i, j] = sum(bag[t] * math.log(1 + n / df[t]) for t in terms if t in bag)
        return sims

    # --- proposal --------------------------------------------------------------------
    def propose(self, lines: Sequence[Line], vectors: FloatArray | None = None) -> DispositionProposal:
        """The best disposition for a transcript.

        Args:
            lines: the call's segments in order (noise and empty lines are skipped).
            vectors: optional precomputed sentence vectors of ``content_lines(lines)``
                (a live copilot encodes each segment as it arrives).

        Returns:
            The proposal; with no usable line, the most generic answer at confidence 0.
        """
        kept = content_lines(lines)
        leaf_ids = [leaf.id for leaf, _ in self._leaves]
        if not kept:
            first, parent = self._leaves[0]
            top = parent or first
            return DispositionProposal(
                top.id, 0.0, first.id if parent else None, 0.0 if parent else None, [], {}, self.method
            )
        if self._embedder is not None:
            sims = self._embedding_sims(kept, vectors)
            temperature = TEMPERATURE
        else:
            sims = self._lexical_sims(kept)
            temperature = LEXICAL_TEMPERATURE
        centered = sims - sims.mean(axis=1, keepdims=True) if sims.shape[1] > 1 else sims
        weights = np.array([AGENT_WEIGHT if _is_agent(line.speaker) else 1.0 for line in kept])
        weighted = centered * weights[:, None]
        probs = _softmax(_aggregate(weighted, TOP_LINES), temperature)
        # Parent probability = sum over its children; the sub-label is the best child.
        parent_prob: dict[str, float] = {}
        for (leaf, parent), p in zip(self._leaves, probs, strict=True):
            key = parent.id if parent else leaf.id
            parent_prob[key] = parent_prob.get(key, 0.0) + float(p)
        label = max(parent_prob, key=lambda k: parent_prob[k])
        members = [
            j for j, (leaf, parent) in enumerate(self._leaves) if (parent.id if parent else leaf.id) == label
        ]
        best = max(members, key=lambda j: probs[j])
        leaf, parent = self._leaves[best]
        order = np.argsort(-weighted[:, best], kind="stable")
        support = [
            (kept[i].index, kept[i].text, round(float(weighted[i, best]), 4))
            for i in order[:SUPPORT_LINES]
            if weighted[i, best] > 0
        ]
        ranked = sorted(zip(leaf_ids, probs.tolist(), strict=True), key=lambda kv: -kv[1])
        return DispositionProposal(
            label=label,
            confidence=parent_prob[label],
            sub_label=leaf.id if parent else None,
            sub_confidence=float(probs[best] / parent_prob[label]) if parent else None,
            supporting_lines=support,
            scores=dict(ranked),
            method=self.method,
        )


def propose_disposition(
    lines: Sequence[Line],
    labels: Taxonomy | Sequence[Mapping[str, Any]] | Sequence[str],
    embedder: Embedder | None | str = "auto",
) -> DispositionProposal:
    """One-shot helper: a proposal for ``lines`` from a taxonomy, a pack's dispositions or names."""
    if isinstance(labels, Taxonomy):
        taxonomy = labels
    elif labels and isinstance(labels[0], str):
        taxonomy = Taxonomy.from_names(labels)  # type: ignore[arg-type]
    else:
        taxonomy = Taxonomy.from_dispositions(labels)  # type: ignore[arg-type]
    return DispositionClassifier(taxonomy, embedder).propose(lines)


__all__ = [
    "DispositionClassifier",
    "DispositionProposal",
    "Label",
    "Line",
    "Taxonomy",
    "content_lines",
    "lines_from_segments",
    "propose_disposition",
]
