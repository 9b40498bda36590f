"""Knowledge-base articles (the ``articles`` table): the editable copy of the pack's KB.

Deleted articles stay as tombstones (``deleted_at`` set) so the pack never brings them
back; a partial unique index keeps live titles unique ignoring case; a batch is all or
nothing. Saving is an upsert on id (each database's ``ON CONFLICT``), so the unique-title
index still fails a clash instead of replacing the other article.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Executable

from core.store import ArticleRecord, StoreError
from core.store.tables import articles

_UPDATED_ON_SAVE = ("title", "body", "tags", "intents", "category", "source", "updated_at")


def article_record(row: Row[Any]) -> ArticleRecord:
    r = row._mapping
    return ArticleRecord(
        id=r["id"], title=r["title"], body=r["body"], tags=tuple(r["tags"]), intents=tuple(r["intents"]),
        category=r["category"], source=r["source"], created_at=r["created_at"], updated_at=r["updated_at"],
        deleted_at=r["deleted_at"],
    )


class ArticleTable:
    """The article methods of :class:`core.store.Store`, mixed into the store."""

    # The store supplies its plumbing and its database's INSERT (see SqlStore).
    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError("mix ArticleTable into a store that defines _tx")

    def _rows(self, statement: Executable | str, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        raise NotImplementedError("mix ArticleTable into a store that defines _rows")

    def _upsert(self, table: Table) -> Any:
        """The database's ``INSERT`` with ``on_conflict_do_update`` (SQLite's or Postgres's)."""
        raise NotImplementedError("mix ArticleTable into a store that defines _upsert")

    def list_articles(self, include_deleted: bool = False) -> list[ArticleRecord]:
        query = select(articles)
        if not include_deleted:
            query = query.where(articles.c.deleted_at.is_(None))
        return [article_record(r) for r in self._rows(query.order_by(func.lower(articles.c.title), articles.c.id))]

    def get_article(self, article_id: str) -> ArticleRecord | None:
        rows = self._rows(select(articles).where(articles.c.id == article_id, articles.c.deleted_at.is_(None)))
        return article_record(rows[0]) if rows else None

    def save_articles(self, batch: Sequence[ArticleRecord]) -> list[ArticleRecord]:
        now = time.time()
        insert = self._upsert(articles)
        # created_at of an existing id is kept by the upsert itself
        upsert = insert.on_conflict_do_update(
            index_elements=[articles.c.id],
            set_={**{c: insert.excluded[c] for c in _UPDATED_ON_SAVE}, "deleted_at": None},
        ).returning(articles.c.created_at)
        saved: list[ArticleRecord] = []
        with self._tx() as tx:
            for a in batch:
                values = {"id": a.id, "title": a.title, "body": a.body, "tags": list(a.tags),
                          "intents": list(a.intents), "category": a.category, "source": a.source,
                          "created_at": a.created_at or now, "updated_at": now, "deleted_at": None}
                try:
                    created = tx.execute(upsert, values).scalar_one()
                except sa_exc.IntegrityError as exc:
                    raise StoreError(
                        f"article {a.id!r} not saved: another article is titled {a.title!r} "
                        f"({str(exc.orig).strip().splitlines()[0]}); nothing in this batch was saved"
                    ) from exc
                saved.append(
                    ArticleRecord(a.id, a.title, a.body, tuple(a.tags), tuple(a.intents), a.category, a.source,
                                  created, now, None)
                )
        return saved

    def delete_article(self, article_id: str) -> bool:
        now = time.time()
        with self._tx() as tx:
            done = tx.execute(
                update(articles).where(articles.c.id == article_id, articles.c.deleted_at.is_(None))
                .values(deleted_at=now, updated_at=now)
            )
            return done.rowcount > 0
