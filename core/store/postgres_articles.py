"""Postgres storage of knowledge-base articles (the ``articles`` table of migration 3).

Same behaviour as :mod:`core.store.sqlite_articles`: deleted articles stay as tombstones,
live titles are unique ignoring case (a partial unique index), a batch is all or nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from core.store import ArticleRecord, StoreError


class PostgresArticleTable:
    """The article methods of :class:`core.store.Store`, mixed into the Postgres store."""

    # The store supplies its transaction and query plumbing (see PostgresStore).
    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError("mix PostgresArticleTable into a store that defines _tx")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError("mix PostgresArticleTable into a store that defines _query")

    @staticmethod
    def _article(row: dict[str, Any]) -> ArticleRecord:
        return ArticleRecord(
            id=row["id"],
            title=row["title"],
            body=row["body"],
            tags=tuple(row["tags"]),
            intents=tuple(row["intents"]),
            category=row["category"],
            source=row["source"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            deleted_at=row["deleted_at"],
        )

    def list_articles(self, include_deleted: bool = False) -> list[ArticleRecord]:
        live = "" if include_deleted else "WHERE deleted_at IS NULL "
        rows = self._query(f"SELECT * FROM articles {live}ORDER BY lower(title), id")
        return [self._article(r) for r in rows]

    def get_article(self, article_id: str) -> ArticleRecord | None:
        rows = self._query("SELECT * FROM articles WHERE id = %s AND deleted_at IS NULL", (article_id,))
        return self._article(rows[0]) if rows else None

    def save_articles(self, articles: Sequence[ArticleRecord]) -> list[ArticleRecord]:
        from psycopg.errors import UniqueViolation
        from psycopg.types.json import Jsonb

        now = time.time()
        saved: list[ArticleRecord] = []
        with self._tx() as tx:
            for a in articles:
                try:
                    # created_at of an existing id is kept by the upsert itself
                    row = tx.execute(
                        "INSERT INTO articles (id, title, body, tags, intents, category, source, "
                        "created_at, updated_at, deleted_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL) "
                        "ON CONFLICT (id) DO UPDATE SET title = excluded.title, body = excluded.body, "
                        "tags = excluded.tags, intents = excluded.intents, category = excluded.category, "
                        "source = excluded.source, updated_at = excluded.updated_at, deleted_at = NULL "
                        "RETURNING created_at",
                        (
                            a.id, a.title, a.body, Jsonb(list(a.tags)), Jsonb(list(a.intents)),
                            a.category, a.source, a.created_at or now, now,
                        ),
                    ).fetchone()
                except UniqueViolation as exc:
                    raise StoreError(
                        f"article {a.id!r} not saved: another article is titled {a.title!r} "
                        f"({str(exc).splitlines()[0]}); nothing in this batch was saved"
                    ) from exc
                saved.append(
                    ArticleRecord(
                        a.id, a.title, a.body, tuple(a.tags), tuple(a.intents), a.category, a.source,
                        row["created_at"], now, None,
                    )
                )
        return saved

    def delete_article(self, article_id: str) -> bool:
        now = time.time()
        with self._tx() as tx:
            cur = tx.execute(
                "UPDATE articles SET deleted_at = %s, updated_at = %s WHERE id = %s AND deleted_at IS NULL",
                (now, now, article_id),
            )
            return cur.rowcount > 0
