"""The store as the composition root opens it: database, migrations, and the repositories over it."""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.prompt_files import builtin_prompts
from store.audit_log import AuditLog
from store.audit_query import AuditReader
from store.conversations import ConversationStore
from store.database import Database
from store.feedback import FeedbackStore
from store.jobs import SqlJobStore
from store.migrate import current_revision, head_revision, upgrade
from store.prompt_source import StorePromptSource
from store.prompts import PromptStore
from store.review import ReviewQueue
from store.review_sink import ReviewingAuditSink


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
    conversations: ConversationStore
    prompts: PromptStore
    prompt_source: StorePromptSource  # the answer service's: the tenant's active prompt, read per request
    feedback: FeedbackStore
    review: ReviewQueue

    @property
    def trail(self) -> AuditTrail:
        return AuditTrail(log=self.audit, reader=self.reader)

    @property
    def audit_sink(self) -> ReviewingAuditSink:
        """The answer service's audit sink (retrieval.audit.AuditSink): the record, the answer's text, review items."""
        return ReviewingAuditSink(log=self.audit, queue=self.review)

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
        # The shipped prompt versions, stored once; a built-in edited under the same version refuses to open.
        PromptStore(database=database, audit=AuditLog(database=database)).seed(builtin_prompts())
    except BaseException:
        database.dispose()
        raise
    audit = AuditLog(database=database)
    return Store(
        database=database,
        audit=audit,
        reader=AuditReader(database=database),
        jobs=SqlJobStore(database=database, audit=audit),
        conversations=ConversationStore(database=database),
        prompts=PromptStore(database=database, audit=audit),
        prompt_source=StorePromptSource(database=database),
        feedback=FeedbackStore(database=database),
        review=ReviewQueue(database=database),
    )
