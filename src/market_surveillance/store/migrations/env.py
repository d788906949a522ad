"""Alembic environment: always run programmatically by :func:`market_surveillance.store.core.migrate`.

The caller passes an open connection (already inside its transaction) in ``config.attributes``; there is
no ``alembic.ini`` and no offline/SQL mode.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running the alembic CLI by hand
    raise RuntimeError("run migrations through market_surveillance.store (Store.open), not the alembic CLI")

# render_as_batch: SQLite can only ALTER tables by copying them; batch mode does that for future migrations
context.configure(connection=connection, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
