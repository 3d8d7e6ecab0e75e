"""Schema migrations with Alembic, run on the store's own connection: at start-up or by ``clearance db upgrade``.

The whole upgrade is one transaction. On PostgreSQL it first takes an advisory
lock, so replicas that start together migrate once and the others wait, then
find nothing to do; on SQLite the write transaction holds the file's lock.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from store.database import Database, unavailable_as_error

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 7_305_611_028_944_237_129  # any constant shared by every replica: "the store's migration lock"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(database: Database, *, revision: str = "head") -> None:
    """Brings the schema to ``revision`` (default: the newest); a no-op when it is there already."""
    with database.write_connection() as connection:
        if database.backend == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            if database.schema:
                # The name was validated as an identifier when the database was opened.
                connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"'))
        command.upgrade(_config(connection), revision)


def current_revision(database: Database) -> str | None:
    """The schema's revision now; None for an empty database."""
    with unavailable_as_error(), database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def is_current(database: Database) -> bool:
    return current_revision(database) == head_revision()
