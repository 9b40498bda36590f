"""Domain vocabulary for speech recognisers that accept boosted terms.

Deepgram's ``keyterm`` (nova-3) and ``keywords`` (older models) raise the odds of
domain words; the words come from the domain pack (phrases, KB titles).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

# Deepgram allows 500 tokens of keyterms per stream; stay below it with a margin.
MAX_KEYTERMS = 50
MAX_KEYTERM_TOKENS = 400
_TOKENS_PER_WORD = 1.5  # rough tokenizer ratio, so the estimate errs high
MIN_WORD_LETTERS = 4

# Words of four letters or more that say nothing about the domain (shorter ones are skipped).
# fmt: off
_STOPWORDS = frozenset(
    {"please", "that", "this", "what", "when", "where", "which", "will", "with", "your", "hello",
     "thanks", "thank", "about", "have", "from", "they", "there", "would", "could", "just", "like",
     "want", "need", "it's", "i'm", "can't", "don't", "today", "okay", "still", "good", "right",
     "last", "help", "calling", "question", "four", "five", "nine", "zero", "three", "seven",
     "eight", "hundred", "thousand", "dollars", "days", "number", "open", "change", "some"}
)
# fmt: on


def select_keyterms(texts: Iterable[str], max_terms: int = MAX_KEYTERMS) -> list[str]:
    """Domain words worth boosting: the most frequent non-trivial words of ``texts``.

    ``texts`` are e.g. the pack's phrases and KB titles. Ties keep first-seen order; the
    list stays within ``MAX_KEYTERM_TOKENS`` (estimated) so Deepgram accepts it.
    """
    counts: collections.Counter[str] = collections.Counter()
    order: dict[str, int] = {}
    for text in texts:
        for raw in text.lower().replace("/", " ").split():
            word = raw.strip(".,;:!?()[]\"'")
            if len(word) < MIN_WORD_LETTERS or word in _STOPWORDS or not word.replace("-", "").isalpha():
                continue
            counts[word] += 1
            order.setdefault(word, len(order))
    ranked = sorted(counts, key=lambda w: (-counts[w], order[w]))
    out: list[str] = []
    tokens = 0.0
    for word in ranked[:max_terms]:
        tokens += _TOKENS_PER_WORD
        if tokens > MAX_KEYTERM_TOKENS:
            break
        out.append(word)
    return out
