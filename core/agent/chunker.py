"""Cut streaming reply text into speakable pieces as soon as each is complete.

A piece ends at a sentence end (. ! ?) or, once it is long enough to be worth
synthesising on its own, at a clause boundary (, ; : —). The first piece of a reply
is allowed to be short so audio starts as early as possible.
"""

from __future__ import annotations

import re

FIRST_PIECE_MIN_WORDS = 3
CLAUSE_MIN_WORDS = 8
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:\u2014])\s+")
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
        for match in _SENTENCE_END.finditer(self._buf):
            head = self._buf[: match.start()].strip()
            if head.lower().endswith(_ABBREVIATIONS) or re.search(r"\d\.$", head) and not match.group(0).strip():
                continue
            return self._cut(match.end())
        min_words = FIRST_PIECE_MIN_WORDS if self._emitted == 0 else CLAUSE_MIN_WORDS
        for match in _CLAUSE_END.finditer(self._buf):
            if len(self._buf[: match.start()].split()) >= min_words:
                return self._cut(match.end())
        return None

    def _cut(self, end: int) -> str | None:
        piece, self._buf = self._buf[:end].strip(), self._buf[end:]
        if not piece:
            return None
        self._emitted += 1
        return piece
