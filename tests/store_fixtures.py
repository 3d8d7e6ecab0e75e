"""State-store backends for tests: a SQLite file, and PostgreSQL in a schema of its own per test.

PostgreSQL is the server at ``CLEARANCE_TEST_POSTGRES_URL`` (default: the local
one, trust authentication, database ``test``). Each test gets a fresh schema,
dropped afterwards, so parallel runs never share tables. Where no server
answers, the PostgreSQL half is skipped with a message saying so.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from retrieval.audit import AnswerAudit, ChunkRef
from store.database import Database, sqlite_url
from store.state import Store, open_store
from tests.conftest import G1, TENANT

POSTGRES_URL = os.environ.get("CLEARANCE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]
USER = "a1000000-0000-4000-8000-000000000001"


@dataclass(frozen=True, slots=True)
class StoreTarget:
    backend: str
    url: str
    schema: str | None = None

    def open(self, *, migrate: bool = True) -> Store:
        return open_store(self.url, schema=self.schema, migrate=migrate, connect_timeout_seconds=3)

    def database(self) -> Database:
        return Database.open(self.url, schema=self.schema, connect_timeout_seconds=3)


@functools.cache
def postgres_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when the server answers."""
    probe = Database.open(POSTGRES_URL, connect_timeout_seconds=2)
    try:
        probe.ping()
    except Exception as exc:
        return (
            f"no PostgreSQL server answers at {probe.safe_url} ({type(exc).__name__}); set CLEARANCE_TEST_POSTGRES_URL"
        )
    finally:
        probe.dispose()
    return None


def store_target(backend: str, tmp_path: Path) -> Iterator[StoreTarget]:
    """A fresh, empty store location on ``backend``; PostgreSQL's schema is dropped afterwards."""
    if backend == "sqlite":
        yield StoreTarget(backend=backend, url=sqlite_url(tmp_path / "store" / "state.db"))
        return
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    schema = f"test_{uuid.uuid4().hex[:16]}"
    try:
        yield StoreTarget(backend=backend, url=POSTGRES_URL, schema=schema)
    finally:
        admin = Database.open(POSTGRES_URL, connect_timeout_seconds=3)
        try:
            with admin.write_connection() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            admin.dispose()


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreTarget]:
    """Each test that asks for it runs once on SQLite and once on PostgreSQL."""
    yield from store_target(request.param, tmp_path)


@pytest.fixture()
def state_store(target: StoreTarget) -> Iterator[Store]:
    """A migrated store on the test's backend."""
    opened = target.open()
    try:
        yield opened
    finally:
        opened.close()


def sample_answer(number: int, *, tenant: str = TENANT, user: str = USER, doc: str = "doc-a") -> AnswerAudit:
    """An answer record as the answer service builds it: two chunks retrieved, the first cited."""
    chunks = (
        ChunkRef(chunk_id=f"chunk-{number}-1", doc_id=doc, source=f"corpus/{doc}.md", version="v1"),
        ChunkRef(chunk_id=f"chunk-{number}-2", doc_id="doc-z", source="corpus/doc-z.md", version="v7"),
    )
    return AnswerAudit(
        tenant_id=tenant,
        object_id=user,
        principals=(f"group:{tenant}/{G1}", f"tenant:{tenant}", f"user:{tenant}/{user}"),
        groups_complete=True,
        question=f"What is answer number {number}?",
        retrieved=tuple(c.chunk_id for c in chunks),
        cited=(chunks[0].chunk_id,),
        outcome="grounded",
        generator="extractive",
        prompt="grounded-answer/v1",
        timings_ms={"embed": 1.5, "retrieve": 2.25},
        streamed=False,
        chunks=chunks,
    )
