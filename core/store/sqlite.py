"""The store on one SQLite file: WAL, private file modes, SQLite's own error messages.

One connection per thread (see :mod:`core.store.sql_store`); WAL lets the UI read while
a session writes; ``BEGIN IMMEDIATE`` makes writers (and migrations) queue for the lock.
"""

from __future__ import annotations

import sqlite3
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from core.privacy.files import private_dir, private_file
from core.store import StoreError
from core.store.sql_store import SqlStore

BUSY_TIMEOUT_MS = 5000
INTEGRITY_PROBLEMS_SHOWN = 10  # lines of the quick check kept for Health


def _translate(exc: BaseException, path: Path) -> StoreError:
    msg = str(exc).lower()
    if "readonly" in msg or "read-only" in msg:
        return StoreError(
            f"the database file {path} is read-only; make it writable or point "
            f"VC_DATA_DIR at a writable folder"
        )
    if "locked" in msg or "busy" in msg:
        return StoreError(
            f"the database file {path} is locked by another program for more than "
            f"{BUSY_TIMEOUT_MS / 1000:.0f} s; close it and retry"
        )
    if "unable to open" in msg:
        return StoreError(f"cannot open the database file {path}: check the folder exists and is writable")
    if "malformed" in msg or "not a database" in msg:
        return StoreError(f"the database file {path} is corrupt ({exc}); restore a backup or move it away")
    return StoreError(f"database error on {path}: {exc}")


class SQLiteStore(SqlStore):
    """Store backed by one SQLite file in WAL mode."""

    backend = "sqlite"
    begin_sql = "BEGIN IMMEDIATE"
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if str(self.path) != ":memory:":
            try:
                private_dir(self.path.parent)
            except OSError as exc:
                raise StoreError(f"cannot create the data folder {self.path.parent}: {exc}") from exc
            # the file (and so its WAL and shared-memory files, which SQLite creates with
            # the database's permissions) readable by this user only
            for path in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
                if path == self.path or path.exists():
                    with suppress(OSError):  # a read-only file or folder: opening it reports that
                        private_file(path)
        # The driver in autocommit mode: the store sends BEGIN IMMEDIATE / COMMIT itself.
        super().__init__(create_engine("sqlite://", creator=self._open, poolclass=NullPool,
                                       isolation_level="AUTOCOMMIT"))

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)

    def _open(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        with suppress(sqlite3.OperationalError):  # read-only files cannot switch mode; reads still work
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _translate(self, exc: BaseException) -> StoreError:
        return _translate(exc, self.path)

    def _legacy_version(self, conn: Connection) -> int:
        return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())

    def _upsert(self, table: Table) -> Any:
        return sqlite_insert(table)

    def _describe(self) -> str:
        return str(self.path)

    def _where(self) -> dict[str, str]:
        return {"path": str(self.path)}

    def integrity_problems(self, limit: int = INTEGRITY_PROBLEMS_SHOWN) -> list[str]:
        """What SQLite's quick check finds wrong with the file (empty: nothing)."""
        try:
            rows = self._conn().exec_driver_sql(f"PRAGMA quick_check({int(limit)})").all()
        except self._db_errors as exc:
            return [str(getattr(exc, "orig", None) or exc)]  # e.g. "database disk image is malformed"
        except StoreError as exc:
            return [str(exc)]
        found = [str(r[0]) for r in rows]
        return [] if found == ["ok"] else found
