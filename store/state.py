"""The store as the composition root opens it: database, migrations, and the repositories over it."""

from __future__ import annotations

from dataclasses import dataclass

from store.audit_log import AuditLog, SqlAuditSink
from store.audit_query import AuditReader
from store.database import Database
from store.jobs import SqlJobStore
from store.migrate import current_revision, head_revision, upgrade


@dataclass(frozen=True, slots=True)
class AuditTrail:
    """The audit as the API uses it: record admin actions, read records, check the store answers."""

    log: AuditLog
    reader: AuditReader


@dataclass
class Store:
    database: Database
    audit: AuditLog
    reader: AuditReader
    jobs: SqlJobStore

    @property
    def trail(self) -> AuditTrail:
        return AuditTrail(log=self.audit, reader=self.reader)

    @property
    def audit_sink(self) -> SqlAuditSink:
        """The answer service's audit sink (retrieval.audit.AuditSink)."""
        return SqlAuditSink(log=self.audit)

    def close(self) -> None:
        self.database.dispose()


def open_store(
    url: str,
    *,
    schema: str | None = None,
    migrate: bool = True,
    connect_timeout_seconds: float = 5.0,
    pool_size: int = 5,
) -> Store:
    """Opens the store at ``url``; ``migrate``: bring the schema up to date first, else require it to be.

    Raises StoreUnavailableError when the database cannot be reached (a server
    does not start without its audit), ValueError when the schema is behind and
    ``migrate`` is off.
    """
    database = Database.open(url, schema=schema, connect_timeout_seconds=connect_timeout_seconds, pool_size=pool_size)
    try:
        if migrate:
            upgrade(database)
        else:
            found, needed = current_revision(database), head_revision()
            if found != needed:
                raise ValueError(
                    f"the state store's schema is at {found or 'nothing'}, this version needs {needed}: "
                    "run `clearance db upgrade` (or start with CLEARANCE_STORE__MIGRATE=true)"
                )
    except BaseException:
        database.dispose()
        raise
    audit = AuditLog(database=database)
    return Store(
        database=database,
        audit=audit,
        reader=AuditReader(database=database),
        jobs=SqlJobStore(database=database, audit=audit),
    )
