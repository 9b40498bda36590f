"""The one store implementation over SQLAlchemy Core: connections, transactions, reads,
migration at start-up, health. The queries are in the mixed-in classes; what differs
between SQLite and Postgres is in :mod:`core.store.sqlite` and :mod:`core.store.postgres`.

One connection per thread, in the driver's autocommit mode: a read is one statement, a
write is ``BEGIN`` (SQLite: ``BEGIN IMMEDIATE``, so writers queue instead of failing on
lock upgrade), its statements, ``COMMIT``. A connection that broke (server restart, idle
timeout of a pooler) is replaced on next use; reads are retried once on the new one,
writes never.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.sql import Executable

from core.store import StoreError, migrate
from core.store.articles import ArticleTable
from core.store.calls import CallLog
from core.store.queries import CallQueries
from core.store.tables import calls

READ_ATTEMPTS = 2  # reads retry once on a fresh connection if theirs broke; writes never


class SqlStore(CallLog, CallQueries, ArticleTable):
    """The :class:`core.store.Store` over one SQLAlchemy engine (see the dialect subclasses)."""

    backend: str
    begin_sql = "BEGIN"
    driver_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, engine: Engine):
        self._engine = engine
        self._db_errors: tuple[type[BaseException], ...] = (sa_exc.DBAPIError, *self.driver_errors)
        self._local = threading.local()
        self._conns: list[Connection] = []
        self._conns_lock = threading.Lock()
        self._migrate()

    # --- what each database does its own way ----------------------------------------
    def _translate(self, exc: BaseException) -> StoreError:
        """A driver error as a StoreError saying what to do."""
        raise NotImplementedError

    def _legacy_version(self, conn: Connection) -> int:
        """The schema version an earlier release recorded (0: none)."""
        raise NotImplementedError

    def _lock_migrations(self, conn: Connection) -> None:
        """Serialise migrations between processes (inside the migration transaction)."""

    def _describe(self) -> str:
        """The database in a message: its path, or the server and database name."""
        raise NotImplementedError

    def _where(self) -> dict[str, str]:
        """What the store is (``path`` or ``target``), for health."""
        raise NotImplementedError

    def integrity_problems(self) -> list[str]:
        raise NotImplementedError

    # --- plumbing -------------------------------------------------------------------
    def _store_error(self, exc: BaseException) -> StoreError:
        orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
        return self._translate(orig)

    def _conn(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.invalidated:
            return conn
        if conn is not None:
            with suppress(Exception):  # a broken connection has nothing left to release
                conn.close()
        try:
            conn = self._engine.connect()
        except self._db_errors as exc:
            raise self._store_error(exc) from exc
        self._local.conn = conn
        with self._conns_lock:
            self._conns = [c for c in self._conns if not c.closed]
            self._conns.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        conn = self._conn()
        # BEGIN and COMMIT go straight to the driver: they need no statement compiled, and
        # writes are what the per-statement cost of the layer above would slow down
        driver = conn.connection.dbapi_connection
        cursor = None
        try:
            cursor = driver.cursor()  # type: ignore[union-attr]
            cursor.execute(self.begin_sql)
            try:
                yield conn
            except BaseException:
                with suppress(*self._db_errors):  # a dead connection rolled back already
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
        except self._db_errors as exc:
            if not isinstance(exc, sa_exc.DBAPIError) and self._engine.dialect.is_disconnect(exc, driver, cursor):
                conn.invalidate()  # the layer above did not see this one: the next use reconnects
            raise self._store_error(exc) from exc
        finally:
            if cursor is not None:
                with suppress(*self._db_errors):
                    cursor.close()

    def _rows(self, statement: Executable | str, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        stmt = text(statement) if isinstance(statement, str) else statement
        for attempt in range(READ_ATTEMPTS):
            conn = self._conn()
            try:
                return conn.execute(stmt, params or {}).all()
            except self._db_errors as exc:
                # A read is safe to repeat on a new connection when the old one died
                # (server restart, pooler or firewall dropping idle connections).
                broken = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
                if not broken or attempt + 1 == READ_ATTEMPTS:
                    raise self._store_error(exc) from exc
        raise AssertionError("unreachable")

    # --- schema ---------------------------------------------------------------------
    def _schema_is_current(self, conn: Connection) -> bool:
        revision = migrate.current_revision(conn)
        legacy = self._legacy_version(conn) if revision is None else 0
        return migrate.is_current(revision, legacy, self._describe())

    def _migrate(self) -> None:
        try:
            if self._schema_is_current(self._conn()):
                return  # up to date: no write, so a read-only file or replica still opens
        except self._db_errors as exc:
            raise self._store_error(exc) from exc
        with self._tx() as tx:
            self._lock_migrations(tx)  # processes starting together: one migrates
            if not self._schema_is_current(tx):
                migrate.upgrade(tx)

    @property
    def schema_version(self) -> str | None:
        """The database's Alembic revision."""
        rows = self._rows("SELECT version_num FROM alembic_version")
        return str(rows[0][0]) if rows else None

    # --- admin ----------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        t = time.perf_counter()
        problems = self.integrity_problems()
        try:
            count: int | str = int(self._rows(select(func.count()).select_from(calls))[0][0])
        except StoreError as exc:
            count = f"unreadable: {exc}"
        try:
            version: str | None = self.schema_version
        except StoreError as exc:
            version = f"unreadable: {exc}"
        return {
            "backend": self.backend,
            **self._where(),
            "schema_version": version,
            "status": "damaged" if problems else "ok",
            "problems": problems,
            "calls": count,
            "latency_ms": round((time.perf_counter() - t) * 1000, 2),
        }

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with suppress(Exception):  # a dead connection has nothing left to release
                    conn.close()
            self._conns.clear()
        self._local = threading.local()
        self._engine.dispose()
