"""Baseline: the schema of the last release before Alembic (its version 3).

Calls, segments, events, utterance timings, turns and articles, with their indexes.
A database made by an earlier release already has some or all of these tables (its
``schema_version`` table or SQLite ``user_version`` says 1 to 3): they are kept as they
are, rows and all, and only the missing ones are created.

This revision creates the tables as :mod:`core.store.tables` defines them, which is
today's schema (``tests/unit/test_store_migrations.py`` compares it with a database the
earlier release wrote). A later revision that changes a table must first copy that
table's definition as it is now into this file, so that this revision stays what it is.

Revision ID: 0001
Revises:
Create Date: 2026-12-08
"""

from alembic import op

from core.store.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind(), checkfirst=True)  # existing tables (and their indexes) are kept


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: move the database file aside instead")
