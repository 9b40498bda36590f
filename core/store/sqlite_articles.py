"""SQLite storage of knowledge-base articles (the ``articles`` table of migration 3).

Deleted articles stay as tombstones (``deleted_at`` set) so the pack never brings them
back; a partial unique index keeps live titles unique ignoring case.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from core.store import ArticleRecord, StoreError


class ArticleTable:
    """The article methods of :class:`core.store.Store`, mixed into the SQLite store."""

    # The store supplies its transaction and query plumbing (see SQLiteStore).
    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError("mix ArticleTable into a store that defines _tx")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError("mix ArticleTable into a store that defines _query")

    @staticmethod
    def _article(row: sqlite3.Row) -> ArticleRecord:
        return ArticleRecord(
            id=row["id"],
            title=row["title"],
            body=row["body"],
            tags=tuple(json.loads(row["tags"])),
            intents=tuple(json.loads(row["intents"])),
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
        rows = self._query("SELECT * FROM articles WHERE id = ? AND deleted_at IS NULL", (article_id,))
        return self._article(rows[0]) if rows else None

    def save_articles(self, articles: Sequence[ArticleRecord]) -> list[ArticleRecord]:
        now = time.time()
        saved: list[ArticleRecord] = []
        with self._tx() as tx:
            for a in articles:
                row = tx.execute("SELECT created_at FROM articles WHERE id = ?", (a.id,)).fetchone()
                created = row["created_at"] if row else (a.created_at or now)
                try:
                    tx.execute(
                        # An upsert on id, so the unique-title index still fails (INSERT OR
                        # REPLACE would silently delete the other article instead).
                        "INSERT INTO articles (id, title, body, tags, intents, category, source, "
                        "created_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) "
                        "ON CONFLICT(id) DO UPDATE SET title = excluded.title, body = excluded.body, "
                        "tags = excluded.tags, intents = excluded.intents, category = excluded.category, "
                        "source = excluded.source, updated_at = excluded.updated_at, deleted_at = NULL",
                        (
                            a.id, a.title, a.body, json.dumps(list(a.tags)), json.dumps(list(a.intents)),
                            a.category, a.source, created, now,
                        ),
                    )
                except sqlite3.IntegrityError as exc:
                    raise StoreError(
                        f"article {a.id!r} not saved: another article is titled {a.title!r} "
                        f"({exc}); nothing in this batch was saved"
                    ) from exc
                saved.append(
                    ArticleRecord(
                        a.id, a.title, a.body, tuple(a.tags), tuple(a.intents), a.category, a.source,
                        created, now, None,
                    )
                )
        return saved

    def delete_article(self, article_id: str) -> bool:
        with self._tx() as tx:
            cur = tx.execute(
                "UPDATE articles SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
                (time.time(), time.time(), article_id),
            )
            return cur.rowcount > 0
