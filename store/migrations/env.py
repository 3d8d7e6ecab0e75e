"""Alembic's environment: migrations run on the connection the store hands over (never a URL of its own).

``clearance db upgrade`` and start-up both go through :func:`store.migrate.upgrade`,
which opens the connection (SQLite: a write-locked transaction; PostgreSQL: one
transaction holding an advisory lock, so replicas starting together migrate once).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

# Every feature module's tables, so autogenerate (`alembic revision --autogenerate`) sees them all.
import store.answer_texts
import store.audit_tables
import store.conversations
import store.feedback
import store.jobs
import store.prompt_tables
import store.review
from store.base import Base

del store  # imported for their tables only


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("store migrations run through store.migrate.upgrade (clearance db upgrade), not alembic's CLI")
_run(connection)
