"""Domain vocabulary for the embedded neural recogniser: a small logit bonus for KB words.

Moonshine takes no prompt, so the KB's words are favoured inside its greedy decoder: each
step adds :data:`BOOST` to the logits of the tokens that spell a domain word whole
("▁card", "▁pin", "▁fee"). A domain word is one the KB and the pack's phrases use at
least :data:`MIN_USES` times and whose token is not among the :data:`COMMON_TOKENS`
most frequent pieces (the tokenizer lists pieces roughly by frequency: "▁the", "▁you"
are never boosted). Where the acoustics are clear the bonus changes nothing; where two
words sound alike ("card"/"car", "pin"/"pen") it tips the choice to the bank's word.

The settings were chosen on the pack's intent examples (Piper and espeak voices) and
measured on the 40 held-out caller sentences, which the vocabulary is not built from
(``docs/speech.md``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

BOOST = 1.0  # logit bonus (natural log units: ×2.7 in odds)
MIN_USES = 3
COMMON_TOKENS = 3000
_WORD = re.compile(r"[a-z][a-z']*")


class VocabularyBias:
    """The logit bonus applied at each decoding step (``apply(logits, ids_so_far)``).

    Attributes:
        token_ids: the boosted token ids.
        words: the domain words they spell.
    """

    def __init__(self, token_ids: Iterable[int], words: Iterable[str], boost: float = BOOST):
        self.token_ids = np.array(sorted(set(token_ids)), dtype=np.int64)
        self.words = sorted(set(words))
        self.boost = boost

    def __len__(self) -> int:
        return int(self.token_ids.size)

    def apply(self, logits: np.ndarray, ids_so_far: list[int]) -> np.ndarray:
        if not self.token_ids.size or self.boost == 0.0:
            return logits
        out = logits.copy()
        out[self.token_ids] += self.boost
        return out


def domain_words(texts: Iterable[str], min_uses: int = MIN_USES) -> list[str]:
    """Words used at least ``min_uses`` times in ``texts`` (lower case)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_WORD.findall(text.lower()))
    return [w for w, n in counts.items() if n >= min_uses]


def vocabulary_bias(model: Any, texts: Iterable[str], boost: float = BOOST,
                    min_uses: int = MIN_USES, common_tokens: int = COMMON_TOKENS) -> VocabularyBias:
    """The bias for ``model`` (``token_ids()``: piece → id) from the KB and phrase ``texts``."""
    pieces: dict[bytes, int] = model.token_ids()
    ids: list[int] = []
    kept: list[str] = []
    for word in domain_words(texts, min_uses):
        found = False
        for form in (word, word.capitalize()):
            token = pieces.get(("\u2581" + form).encode("utf-8"))
            if token is not None and token >= common_tokens:
                ids.append(token)
                found = True
        if found:
            kept.append(word)
    return VocabularyBias(ids, kept, boost)
