"""Alembic environment: run with the connection the Catalog hands over (see Catalog.migrate)."""

from __future__ import annotations

from alembic import context

from taskplan.catalog.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
