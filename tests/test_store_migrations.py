"""Migrations: an empty database (SQLite or PostgreSQL) upgrades to the models' schema, once."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from store.base import Base
from store.database import sqlite_url
from store.migrate import current_revision, head_revision, upgrade
from store.state import open_store
from tests import store_fixtures
from tests.store_fixtures import StoreTarget

# Fixtures shared by the store's test modules (each runs on SQLite and on PostgreSQL).
target = store_fixtures.target
state_store = store_fixtures.state_store


def test_an_empty_database_upgrades_to_the_models(target: StoreTarget) -> None:
    database = target.database()
    try:
        assert current_revision(database) is None
        upgrade(database)
        assert current_revision(database) == head_revision()
        upgrade(database)  # nothing left to do: a no-op, not an error
        with database.engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
        assert {"audit_records", "audit_heads", "audit_chunks", "ingest_jobs", "alembic_version"} <= tables
        assert differences == [], differences  # the migrations build exactly what the models declare
    finally:
        database.dispose()


def test_a_store_behind_its_schema_refuses_to_open_without_migrating(target: StoreTarget) -> None:
    with pytest.raises(ValueError, match="clearance db upgrade"):
        target.open(migrate=False)
    target.open(migrate=True).close()
    target.open(migrate=False).close()


def test_the_sqlite_file_and_its_journal_are_private(tmp_path: Path) -> None:
    opened = open_store(sqlite_url(tmp_path / "data" / "state.db"))
    opened.audit.record_admin_action(tenant_id="", actor="system:test", action="test")
    opened.close()
    files = list((tmp_path / "data").iterdir())
    assert files
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path
