"""Schema migrations by Alembic, run by the store when it opens, and the check that refuses
a database newer than this release.

The revisions live in ``core/store/migrations/versions`` (``0001`` is the baseline: the
schema of the last release before Alembic). A database made by such a release has no
``alembic_version`` table but a version of its own (SQLite ``user_version``, Postgres
``schema_version``); up to :data:`LEGACY_VERSION` it is upgraded in place by the baseline
(its tables and rows are kept), above it this release refuses it, as it always did.

A new revision: change :mod:`core.store.tables`, then write the step (``op.add_column``
...) in a new file made by
``python -c "from alembic import command; from core.store.migrate import config;
command.revision(config(), 'what changes', rev_id='0002')"``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from core.store import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
# The schema version of the hand-written migrations of earlier releases (their last one).
LEGACY_VERSION = 3


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, in code: the revisions shipped in the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision this release knows."""
    return str(_scripts().get_current_head())


@functools.cache
def known_revisions() -> frozenset[str]:
    return frozenset(rev.revision for rev in _scripts().walk_revisions())


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision (None: Alembic has not run on it yet)."""
    return MigrationContext.configure(conn).get_current_revision()


def is_current(revision: str | None, legacy_version: int, where: str) -> bool:
    """Whether the schema is this release's; raises if it is newer than this release."""
    if legacy_version > LEGACY_VERSION:
        raise StoreError(
            f"{where} has schema version {legacy_version}, newer than this release "
            f"understands ({LEGACY_VERSION}); upgrade Voice Copilot"
        )
    if revision is not None and revision not in known_revisions():
        raise StoreError(
            f"{where} has schema revision {revision}, newer than this release "
            f"understands ({head()}); upgrade Voice Copilot"
        )
    return revision == head()


def upgrade(conn: Connection) -> None:
    """Apply the missing revisions on ``conn``, inside the caller's transaction."""
    command.upgrade(config(conn), "head")
