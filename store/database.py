"""Engines and sessions: one :class:`Database` per store, SQLite or PostgreSQL behind the same calls.

What differs between the two backends lives here and nowhere else:

- SQLite: a file under the data directory, created owner-only (0600; its WAL
  files take the same mode); WAL journal, ``synchronous=FULL`` (an audit record
  survives a power cut once the answer is returned), foreign keys on. Writes
  begin with ``BEGIN IMMEDIATE``, which takes the file's write lock before the
  first read, so two writers (threads or processes) queue instead of failing
  on a lock upgrade; reads begin deferred and see a snapshot.
- PostgreSQL (``postgresql+psycopg://``): a pool with pre-ping (a restarted
  server does not fail the next request), a connect timeout (a dead server
  fails fast with 503 instead of holding a request), and an optional schema
  placed first on the ``search_path``.

Every call that reaches the database turns "cannot reach or lock it" into
:class:`StoreUnavailableError`; integrity errors pass through (they are bugs or
races a caller retries).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from store.errors import StoreUnavailableError

_WRITE = "clearance_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def sqlite_url(path: Path) -> str:
    """The URL of a SQLite file (the default store: ``<data_dir>/state.db``)."""
    return URL.create("sqlite+pysqlite", database=str(path.expanduser().resolve())).render_as_string()


class Database:
    """An engine and its session factories; the one way the store's repositories reach the database."""

    def __init__(self, *, engine: Engine, schema: str | None = None) -> None:
        self.engine = engine
        self.schema = schema  # PostgreSQL: the schema first on the search_path, created by migrations
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        self._writer = sessionmaker(bind=engine.execution_options(**{_WRITE: True}), expire_on_commit=False)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        schema: str | None = None,
        connect_timeout_seconds: float = 5.0,
        pool_size: int = 5,
        busy_timeout_seconds: float = 30.0,
    ) -> Database:
        """Opens (lazily: nothing connects yet) the database at ``url``."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            return cls(engine=_sqlite_engine(parsed, busy_timeout_seconds=busy_timeout_seconds))
        if parsed.get_backend_name() == "postgresql":
            return cls(
                engine=_postgresql_engine(
                    parsed, schema=schema, connect_timeout_seconds=connect_timeout_seconds, pool_size=pool_size
                ),
                schema=schema,
            )
        raise ValueError(f"unsupported store URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql+psycopg://")

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for logs and messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction, committed when the block ends, rolled back if it raises."""
        with unavailable_as_error(), self._writer() as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A connection in a write transaction (migrations), committed when the block ends."""
        with unavailable_as_error(), self.engine.execution_options(**{_WRITE: True}).begin() as connection:
            yield connection

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Session]:
        """A session for reads; ``snapshot``: every read sees the same committed state (verification)."""
        with unavailable_as_error(), self._reader() as session:
            if snapshot and self.backend == "postgresql":
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session  # closing the session ends its transaction; loaded objects stay readable

    def ping(self) -> None:
        """Raises StoreUnavailableError unless the database answers now."""
        with unavailable_as_error(), self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Closes pooled connections (shutdown; a later call opens new ones)."""
        self.engine.dispose()


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Connection, lock and pool failures become StoreUnavailableError (503); nothing else is caught."""
    try:
        yield
    except (OperationalError, PoolTimeoutError) as exc:
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        raise StoreUnavailableError(f"state store unavailable: {type(cause).__name__}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailableError("state store connection lost") from exc
        raise


def _sqlite_engine(url: URL, *, busy_timeout_seconds: float) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        _create_private_file(Path(database))
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_seconds, "check_same_thread": False},
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, record: Any) -> None:
        # Transactions are begun by the "begin" hook below, not by the driver's implicit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _create_private_file(path: Path) -> None:
    """The database file exists owner-only before SQLite opens it (its -wal and -shm files copy the mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)


def _postgresql_engine(url: URL, *, schema: str | None, connect_timeout_seconds: float, pool_size: int) -> Engine:
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # the driver this project ships (psycopg 3)
    connect_args: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout_seconds))}
    if schema:
        if not _SCHEMA.fullmatch(schema):
            raise ValueError(f"invalid PostgreSQL schema name {schema!r} (lower-case letters, digits, _)")
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(
        url,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=connect_timeout_seconds,
        pool_pre_ping=True,
    )
