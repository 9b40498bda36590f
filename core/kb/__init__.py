"""Knowledge-base retrieval interface.

Articles from a domain pack are cut into :class:`Chunk` s (one ``##`` section each, long
sections split further) and indexed by a :class:`KBSearch` implementation. Today that is
the in-memory BM25 index in :mod:`core.kb.lexical`; an SQLite FTS5 + sentence-embedding
hybrid with rank fusion can drop in behind the same three methods.

Contract every implementation keeps:

* ``search`` returns at most one hit per article (its best chunk), best first, so the
  top two hits are two different articles (what a clarifying question needs).
* ``history`` holds earlier caller turns, oldest first. They are down-weighted, so a
  follow-up like "how long will that take" stays on the topic of the call.
* ``upsert``/``remove`` take effect for the next ``search`` (no rebuild step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.kb.pack import Article


@dataclass(frozen=True)
class Chunk:
    """One passage of an article, small enough to score and to quote.

    Attributes:
        article_id: id of the article the passage comes from.
        chunk_id: ``"<article_id>#<n>"``, unique across the KB and stable for a given body.
        title: the article title.
        text: the passage (Markdown, without its heading line).
        heading: the ``##`` section heading, ``""`` for text before the first heading.
    """

    article_id: str
    chunk_id: str
    title: str
    text: str
    heading: str = ""

    @property
    def context_text(self) -> str:
        """Title and heading prepended to the text: what an indexer or embedder should see."""
        head = f"{self.title}. {self.heading}." if self.heading else f"{self.title}."
        return f"{head}\n{self.text}"


@dataclass(frozen=True)
class SearchHit:
    """A chunk and why it matched.

    Attributes:
        chunk: the best-scoring passage of its article.
        score: implementation-specific relevance (higher is better; comparable only
            between hits of one search).
        matched_terms: normalised query terms found in the chunk, title or tags.
        why: a short human-readable explanation for the copilot panel and logs.
    """

    chunk: Chunk
    score: float
    matched_terms: tuple[str, ...] = ()
    why: str = ""

    @property
    def article_id(self) -> str:
        return self.chunk.article_id


class KBSearch(Protocol):
    """Retrieval over a pack's articles; incremental, in-process, thread-compatible reads."""

    def search(self, query: str, k: int = 3, history: Sequence[str] = ()) -> list[SearchHit]:
        """Best chunks for ``query`` (at most one per article), best first.

        Args:
            query: the caller's latest words (recogniser output or typed text).
            k: how many articles to return at most.
            history: earlier caller turns, oldest first; they count for less.
        """
        ...

    def upsert(self, article: Article) -> None:
        """Add an article, or replace every chunk of the article with the same id."""
        ...

    def remove(self, article_id: str) -> None:
        """Drop an article; unknown ids are ignored."""
        ...


class MirroredIndex:
    """One KB behind several indexes: searches ``primary``; edits go to every index.

    The copilot's hybrid index and the spoken agent's lexical one rank differently but
    must hold the same articles.
    """

    def __init__(self, primary: KBSearch, *mirrors: KBSearch) -> None:
        self.primary = primary
        self.indexes = (primary, *mirrors)

    def search(self, query: str, k: int = 3, history: Sequence[str] = ()) -> list[SearchHit]:
        return self.primary.search(query, k=k, history=history)

    def upsert(self, article: Article) -> None:
        for index in self.indexes:
            index.upsert(article)

    def remove(self, article_id: str) -> None:
        for index in self.indexes:
            index.remove(article_id)


__all__ = ["Chunk", "KBSearch", "MirroredIndex", "SearchHit"]
