"""The store on Postgres (psycopg 3), for several app processes or Supabase.

Several processes may share one database: each sees the others' calls as they are
written; migrations at start-up are serialised by an advisory lock. Server-side prepared
statements are off so transaction poolers (pgbouncer, Supabase port 6543) work; what the
connection string may hold, and how errors read, is in :mod:`core.store.postgres_conninfo`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, create_engine
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from core.store import StoreError
from core.store.postgres_conninfo import (
    CONNECT_TIMEOUT_S,
    describe_target,
    libpq_url,
    psycopg_module,
    translate_error,
)
from core.store.sql_store import SqlStore
from core.store.tables import dumps, metadata

# Any number unique to this product: serialises migrations between processes.
MIGRATION_LOCK_KEY = 0x76630001

__all__ = ["MIGRATION_LOCK_KEY", "PostgresStore", "describe_target", "libpq_url"]


class PostgresStore(SqlStore):
    """Store backed by a Postgres database (local, managed, or Supabase)."""

    backend = "postgres"

    def __init__(self, url: str, connect_timeout_s: int = CONNECT_TIMEOUT_S):
        self.driver_errors = (psycopg_module().Error,)
        self._url = libpq_url(url)
        self.target = describe_target(url)
        self._connect_timeout_s = connect_timeout_s
        # The driver in autocommit mode: the store sends BEGIN / COMMIT itself.
        super().__init__(create_engine("postgresql+psycopg://", creator=self._open, poolclass=NullPool,
                                       isolation_level="AUTOCOMMIT"))

    def _open(self) -> Any:
        conn = psycopg_module().connect(
            self._url,
            autocommit=True,
            prepare_threshold=None,  # transaction poolers cannot keep prepared statements
            connect_timeout=self._connect_timeout_s,
            application_name="voice-copilot",
        )
        from psycopg.types.json import set_json_dumps

        set_json_dumps(dumps, conn)  # what JSON cannot hold is stored as text, as on SQLite
        return conn

    def _translate(self, exc: BaseException) -> StoreError:
        return translate_error(exc if isinstance(exc, Exception) else RuntimeError(str(exc)), self.target)

    def _legacy_version(self, conn: Connection) -> int:
        if conn.exec_driver_sql("SELECT to_regclass('schema_version')").scalar_one() is None:
            return 0
        return int(conn.exec_driver_sql("SELECT COALESCE(MAX(version), 0) FROM schema_version").scalar_one())

    def _lock_migrations(self, conn: Connection) -> None:
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%(key)s)", {"key": MIGRATION_LOCK_KEY})

    def _upsert(self, table: Table) -> Any:
        return postgres_insert(table)

    def _describe(self) -> str:
        return f"the Postgres database {self.target}"

    def _where(self) -> dict[str, str]:
        return {"target": self.target}

    def integrity_problems(self) -> list[str]:
        """Tables the server cannot read (Postgres checks its own pages; this finds a
        missing or unreadable table)."""
        problems = []
        for table in metadata.sorted_tables:
            try:
                self._rows(f"SELECT 1 FROM {table.name} LIMIT 1")  # noqa: S608 - fixed table names
            except StoreError as exc:
                problems.append(f"{table.name}: {exc}")
        return problems
