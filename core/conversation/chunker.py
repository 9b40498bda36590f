"""Cut streaming reply text into speakable pieces as soon as each is complete.

A piece ends at a sentence end (. ! ?) or, once it is long enough to be worth
synthesising on its own, at a clause boundary (, ; : —). The first piece of a reply
is allowed to be short so audio starts as early as possible: it ends at the first
clause mark after three words, or, when the opening sentence runs on without one, just
before a word that opens a new phrase ("and", "if", "to", "with"...) once it has four
words. A language model writes ~15 ms per word, so without that phrase cut a long
unpunctuated first sentence kept the caller waiting for all of it (p95 18 words, ~270 ms
of silence before the first audio); with it the first piece is at most ~10 words in the
benchmark's replies, cut where a speaker could pause for breath.

Text that arrives all at once (a non-streaming reply) is cut at its marks, except that an
opening sentence of more than :data:`FIRST_PIECE_MAX_WORDS` words is cut at a phrase opener
too: the first audio of a neural voice waits for the whole first piece.
"""

from __future__ import annotations

import re

FIRST_PIECE_MIN_WORDS = 3
FIRST_PHRASE_MIN_WORDS = 4
# A first piece longer than this is cut at a phrase opener even when its sentence is already
# complete: a neural voice (Piper) takes ~40 ms plus ~20 ms per word before its first
# sample, so a 13-word opening sentence waited ~300 ms for its first audio.
FIRST_PIECE_MAX_WORDS = 8
CLAUSE_MIN_WORDS = 8
# Words that open a phrase: a break before one sounds like a breath, not a stumble.
PHRASE_OPENERS = frozenset(
    "and but or so because if when while unless until before after since as than that "
    "which who whose where then to for with from about at by on in into of".split()
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:\u2014])\s+")
_COMPLETE_WORD = re.compile(r"\S+(?=\s)")  # a word the stream has moved past
_ABBREVIATIONS = ("e.g.", "i.e.", "mr.", "mrs.", "ms.", "dr.", "st.", "no.", "vs.", "etc.")


class SentenceChunker:
    """Feed text deltas; get back complete pieces in order. ``flush`` returns the rest."""

    def __init__(self) -> None:
        self._buf = ""
        self._emitted = 0

    def feed(self, delta: str) -> list[str]:
        self._buf += delta
        pieces: list[str] = []
        while True:
            piece = self._next_piece()
            if piece is None:
                break
            pieces.append(piece)
        return pieces

    def flush(self) -> list[str]:
        rest = self._buf.strip()
        self._buf = ""
        if rest:
            self._emitted += 1
            return [rest]
        return []

    def _next_piece(self) -> str | None:
        end = self._mark_end()
        if self._emitted == 0 and (end is None or len(self._buf[:end].split()) > FIRST_PIECE_MAX_WORDS):
            cut = self._phrase_cut(end)  # a run-on opening sentence: stop at a phrase opener
            if cut is not None:
                return cut
        return self._cut(end) if end is not None else None

    def _mark_end(self) -> int | None:
        """Where the next piece ends at a sentence or clause mark (None: no mark yet)."""
        for match in _SENTENCE_END.finditer(self._buf):
            head = self._buf[: match.start()].strip()
            if head.lower().endswith(_ABBREVIATIONS) or re.search(r"\d\.$", head) and not match.group(0).strip():
                continue
            return match.end()
        min_words = FIRST_PIECE_MIN_WORDS if self._emitted == 0 else CLAUSE_MIN_WORDS
        for match in _CLAUSE_END.finditer(self._buf):
            if len(self._buf[: match.start()].split()) >= min_words:
                return match.end()
        return None

    def _phrase_cut(self, before: int | None) -> str | None:
        """The first piece up to a phrase opener (before the mark at ``before``, if any)."""
        for i, word in enumerate(_COMPLETE_WORD.finditer(self._buf)):
            if before is not None and word.start() >= before:
                break
            if i >= FIRST_PHRASE_MIN_WORDS and word.group(0).lower() in PHRASE_OPENERS:
                return self._cut(word.start())
        return None

    def _cut(self, end: int) -> str | None:
        piece, self._buf = self._buf[:end].strip(), self._buf[end:]
        if not piece:
            return None
        self._emitted += 1
        return piece
