"""The editable knowledge base: validated CRUD over the store, kept live in search and speech.

Articles live in the store (:class:`core.store.ArticleRecord`); the domain pack only seeds
them. Seeding policy (:func:`seed_from_pack`): a pack article is added when the store has
never held an article with its id. Articles the store knows — edited, untouched or
deleted (deletes leave a tombstone) — are never overwritten, so a pack upgrade adds its new
articles and never undoes an edit or brings back a deleted article.

Every change goes to the store first (one transaction), then to the live search index
(``upsert``/``remove``, so the copilot sees it at its next search), then schedules a
background rebuild of the speech recogniser's domain language model.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from core.kb import KBSearch, SearchHit
from core.kb.pack import Article, Pack
from core.store import ArticleRecord, Store

MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 100_000  # about 40 printed pages; longer text belongs in several articles
MAX_TAGS = 20
MAX_TAG_CHARS = 40
MAX_ID_CHARS = 80
PLAYGROUND_TOP_K = 5  # what the copilot panel shows is the top 3; show a little more
TITLE_REQUIRED = "a title is required"
_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_ID_CHARS - 1}}}")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_TAG_SPLIT = re.compile(r"[,;|]")


class KBValidationError(ValueError):
    """Articles were not saved; ``errors`` has one line per problem."""

    def __init__(self, errors: Sequence[str]):
        self.errors = tuple(errors)
        super().__init__("; ".join(self.errors))


class SpeechRefresh(Protocol):
    """What the KB needs from the speech model refresher (see :mod:`core.speech.stt.refresh`)."""

    def schedule(self, texts: Sequence[str]) -> None: ...
    def status(self) -> Any: ...


@dataclass(frozen=True)
class ArticleDraft:
    """An article as typed or imported, before validation.

    Attributes:
        title: required, unique among articles ignoring case.
        body: Markdown, required.
        tags: labels (trimmed, lower-cased, de-duplicated on save).
        intents: ids of the pack's intents the article answers.
        category: optional grouping.
        id: the article to replace; ``""`` for a new article (an id is made from the title).
        source: where it comes from (``import:<file>``); ``""`` means the caller's default.
    """

    title: str
    body: str
    tags: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()
    category: str = ""
    id: str = ""
    source: str = ""


def slugify(title: str) -> str:
    """``"Report a lost card!"`` → ``"report-a-lost-card"`` (ASCII, at most ``MAX_ID_CHARS``)."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return _SLUG_JUNK.sub("-", ascii_title.lower()).strip("-")[:MAX_ID_CHARS].strip("-") or "article"


def split_labels(value: str | Iterable[str]) -> tuple[str, ...]:
    """Labels from ``"a, b; c"`` or a list of such; trimmed, empty and repeated ones dropped."""
    parts = [value] if isinstance(value, str) else [str(v) for v in value]
    items = (item.strip() for part in parts for item in _TAG_SPLIT.split(part))
    return tuple(dict.fromkeys(item for item in items if item))  # linear: a file can hold 100,000 labels


class IdMaker:
    """New article ids from titles, unique against ``taken``: ``article``, ``article-2``, …

    Each slug remembers the next number to try, so N rows with the same title cost O(N)
    in all (counting up from 2 for every row made a 10,000-row import take 10 s).
    """

    def __init__(self, taken: Iterable[str] = ()):
        self.taken = set(taken)
        self._next: dict[str, int] = {}

    def claim(self, article_id: str) -> str:
        self.taken.add(article_id)
        return article_id

    def __call__(self, title: str) -> str:
        base = slugify(title)
        n = self._next.get(base, 1)
        candidate = self._numbered(base, n)
        while candidate in self.taken:
            n += 1
            candidate = self._numbered(base, n)
        self._next[base] = n + 1
        return self.claim(candidate)

    @staticmethod
    def _numbered(base: str, n: int) -> str:
        suffix = "" if n == 1 else f"-{n}"
        return base[: MAX_ID_CHARS - len(suffix)] + suffix


def as_article(record: ArticleRecord) -> Article:
    """The search/reply view of a stored article."""
    return Article(
        id=record.id,
        title=record.title,
        body=record.body,
        category=record.category,
        tags=record.tags,
        intents=record.intents,
        source=record.source,
    )


def speech_texts(articles: Iterable[Article | ArticleRecord]) -> list[str]:
    """The KB text the speech recogniser's language model is built from."""
    return [f"{a.title}. {a.body}" for a in articles]


def seed_from_pack(store: Store, pack: Pack) -> int:
    """Add the pack's articles the store has never held (see the module docstring).

    A new pack article whose title a live article already has is skipped (titles are
    unique). Returns the number of articles added.
    """
    known = {r.id for r in store.list_articles(include_deleted=True)}
    titles = {r.title.casefold() for r in store.list_articles()}
    new = []
    for a in pack.articles:
        if a.id in known or a.title.casefold() in titles:
            continue
        titles.add(a.title.casefold())
        source = f"pack:{a.source.rsplit('/', 1)[-1]}" if a.source else "pack"
        new.append(ArticleRecord(a.id, a.title, a.body, a.tags, a.intents, a.category, source))
    if new:
        store.save_articles(new)
    return len(new)


def matches(record: ArticleRecord, text: str = "", tag: str = "") -> bool:
    """Whether an article passes the list filter (words anywhere; an exact tag)."""
    if tag and tag not in record.tags:
        return False
    haystack = " ".join([record.title, record.body, *record.tags, *record.intents]).casefold()
    return all(word in haystack for word in text.casefold().split())


class KnowledgeBase:
    """Validated create/edit/delete/import over the store, mirrored into search and speech.

    Args:
        store: where articles persist.
        index: the live search index the copilot and the agent read (``services.kb``).
        intents: the pack's intents, id → display name (intent links must be one of them).
        speech: the speech model refresher, or None when the recogniser does not use the KB.
    """

    def __init__(
        self,
        store: Store,
        index: KBSearch,
        intents: Mapping[str, str],
        speech: SpeechRefresh | None = None,
    ):
        self.store = store
        self.index = index
        self.intents = dict(intents)
        self.speech = speech
        self._lock = threading.RLock()
        self._indexed = {r.id for r in store.list_articles()}

    @classmethod
    def intent_names(cls, pack: Pack) -> dict[str, str]:
        """id → name of the pack's intents."""
        return {str(i["id"]): str(i.get("name") or i["id"]) for i in pack.intents if i.get("id")}

    # --- reading -------------------------------------------------------------------
    def articles(self, text: str = "", tag: str = "") -> list[ArticleRecord]:
        """Live articles by title, filtered by words and/or a tag."""
        return [r for r in self.store.list_articles() if matches(r, text, tag)]

    def get(self, article_id: str) -> ArticleRecord | None:
        return self.store.get_article(article_id)

    def tags(self) -> list[str]:
        """Every tag in use, sorted."""
        return sorted({t for r in self.store.list_articles() for t in r.tags})

    def current_articles(self) -> tuple[Article, ...]:
        """All live articles as the search and reply code see them."""
        return tuple(as_article(r) for r in self.store.list_articles())

    def pack_view(self, pack: Pack) -> Pack:
        """``pack`` with its articles replaced by the current KB (for the reply engine)."""
        return replace(pack, articles=self.current_articles())

    # --- validation ----------------------------------------------------------------
    def plan(self, drafts: Sequence[ArticleDraft], source: str) -> list[tuple[ArticleRecord, list[str]]]:
        """Records the drafts would become, each with its problems (none: can be saved).

        Checks every field, unknown intents, and duplicate titles against the KB and
        within ``drafts`` (ignoring case).
        """
        live = {r.id: r for r in self.store.list_articles()}
        new_id = IdMaker({r.id for r in self.store.list_articles(include_deleted=True)})
        by_title = {r.title.casefold(): r for r in live.values()}
        batch_titles: dict[str, int] = {}
        batch_ids: dict[str, int] = {}
        out: list[tuple[ArticleRecord, list[str]]] = []
        for n, draft in enumerate(drafts, start=1):
            errors = self._field_errors(draft)
            title = " ".join(draft.title.split())
            existing = live.get(draft.id) if draft.id else None
            if draft.id in batch_ids:
                errors.append(f"duplicate id {draft.id!r} (also item {batch_ids[draft.id]} of this batch)")
            if draft.id:
                batch_ids.setdefault(draft.id, n)
            key = title.casefold()
            owner = by_title.get(key)
            if title and owner is not None and owner.id != draft.id:
                errors.append(f"an article titled {owner.title!r} already exists")
            if title and key in batch_titles:
                errors.append(f"duplicate title {title!r} (also item {batch_titles[key]} of this batch)")
            batch_titles.setdefault(key, n)
            article_id = new_id.claim(draft.id) if draft.id else new_id(title)
            record = ArticleRecord(
                id=article_id,
                title=title,
                body=draft.body.strip(),
                tags=tuple(dict.fromkeys(t.casefold() for t in split_labels(draft.tags))),
                intents=split_labels(draft.intents),
                category=draft.category.strip(),
                source=draft.source or (existing.source if existing and source == "editor" else source),
            )
            out.append((record, errors))
        return out

    def _field_errors(self, draft: ArticleDraft) -> list[str]:
        errors = []
        title = draft.title.strip()
        if not title:
            errors.append(TITLE_REQUIRED)
        elif len(title) > MAX_TITLE_CHARS:
            errors.append(f"the title is {len(title)} characters; the limit is {MAX_TITLE_CHARS}")
        if not draft.body.strip():
            errors.append("the body is empty")
        elif len(draft.body) > MAX_BODY_CHARS:
            errors.append(f"the body is {len(draft.body):,} characters; the limit is {MAX_BODY_CHARS:,}")
        tags = split_labels(draft.tags)
        if len(tags) > MAX_TAGS:
            errors.append(f"{len(tags)} tags; the limit is {MAX_TAGS}")
        long_tags = [t for t in tags if len(t) > MAX_TAG_CHARS]
        if long_tags:
            errors.append(f"tag {long_tags[0][:50]!r} is longer than {MAX_TAG_CHARS} characters")
        unknown = [i for i in split_labels(draft.intents) if i not in self.intents]
        if unknown:
            errors.append(
                f"unknown intent {', '.join(map(repr, unknown))}; use one of the pack's intents "
                f"({', '.join(sorted(self.intents)[:6])}{', …' if len(self.intents) > 6 else ''})"
            )
        if draft.id and not _ID.fullmatch(draft.id):
            errors.append(
                f"id {draft.id[:50]!r} is not valid: use up to {MAX_ID_CHARS} letters, digits, '-', '_' or '.'"
            )
        return errors

    # --- changes ---------------------------------------------------------------------
    def save(self, draft: ArticleDraft, source: str = "editor") -> ArticleRecord:
        """Create (``draft.id == ""``) or replace one article.

        Raises:
            KBValidationError: the draft has problems; nothing changed.
            core.store.StoreError: the store refused; nothing changed.
        """
        return self.save_many([draft], source)[0]

    def save_many(self, drafts: Sequence[ArticleDraft], source: str) -> list[ArticleRecord]:
        """Save every draft or none (one store transaction).

        Raises:
            KBValidationError: some draft has problems (each error names its item); nothing
                changed.
            core.store.StoreError: the store refused; nothing changed.
        """
        with self._lock:
            planned = self.plan(drafts, source)
            errors = [
                f"{r.title or f'item {n}'}: {e}" if len(planned) > 1 else e
                for n, (r, errs) in enumerate(planned, start=1)
                for e in errs
            ]
            if errors:
                raise KBValidationError(errors)
            saved = self.store.save_articles([r for r, _ in planned])
            for record in saved:
                self.index.upsert(as_article(record))
                self._indexed.add(record.id)
        self._refresh_speech()
        return saved

    def delete(self, article_id: str) -> bool:
        """Delete an article; False if it did not exist."""
        with self._lock:
            gone = self.store.delete_article(article_id)
            self.index.remove(article_id)
            self._indexed.discard(article_id)
        if gone:
            self._refresh_speech()
        return gone

    def reindex(self, progress: Callable[[float], None] | None = None) -> int:
        """Rebuild the search index from the store, reporting progress in [0, 1].

        Returns:
            The number of articles indexed.
        """
        with self._lock:
            records = self.store.list_articles()
            live = {r.id for r in records}
            for stale in self._indexed - live:
                self.index.remove(stale)
            for n, record in enumerate(records, start=1):
                self.index.upsert(as_article(record))
                if progress is not None:
                    progress(n / len(records))
            self._indexed = live
        if progress is not None and not records:
            progress(1.0)
        self._refresh_speech()
        return len(records)

    def _refresh_speech(self) -> None:
        if self.speech is not None:
            self.speech.schedule(speech_texts(self.store.list_articles()))

    # --- search playground ---------------------------------------------------------
    def playground(self, sentence: str, k: int = PLAYGROUND_TOP_K, history: Sequence[str] = ()) -> list[SearchHit]:
        """What the copilot would surface for ``sentence``: the same search it runs."""
        if not sentence.strip():
            return []
        return self.index.search(sentence, k=k, history=history)

    def speech_status(self) -> Any:
        """The speech model's :class:`core.speech.stt.refresh.ModelStatus`, or None if not used."""
        return self.speech.status() if self.speech is not None else None


__all__ = [
    "ArticleDraft",
    "KBValidationError",
    "KnowledgeBase",
    "as_article",
    "matches",
    "seed_from_pack",
    "slugify",
    "speech_texts",
    "split_labels",
]
