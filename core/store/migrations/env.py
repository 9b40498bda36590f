"""Alembic's entry point: runs the revisions on the connection the store hands over.

The store (:mod:`core.store.migrate`) opens the transaction and takes the lock first, so
this only configures the context; no URL, no logging set-up, no offline mode.
"""

from alembic import context

from core.store.tables import metadata


def run() -> None:
    context.configure(connection=context.config.attributes["connection"], target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


if hasattr(context, "config"):  # run by Alembic; importing this module does nothing
    run()
