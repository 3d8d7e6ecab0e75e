"""Reading the audit: records filtered by tenant, user, document, kind and time; export as JSON lines.

Every query is scoped to one chain (tenant); there is no call that reads across
tenants except :meth:`AuditReader.chains` for the operator's command line. "Which
answers used document X" is one SQL statement: the records whose chunk rows name
the document, by id or by source.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Select, or_, select

from store.audit_log import RecordKind, source_key
from store.audit_tables import AuditChunkRow, AuditRecordRow
from store.database import Database

MAX_PAGE = 1000
_EXPORT_BATCH = 500


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One stored record as auditors read and export it (hashes included, so an export can be re-verified)."""

    chain: str
    seq: int
    id: str
    at_us: int
    kind: str
    action: str
    outcome: str
    actor: str
    record: dict[str, Any]
    personal: dict[str, Any] | None  # None once erased
    personal_digest: str
    erased_at_us: int | None
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: AuditRecordRow) -> AuditRecord:
        return cls(
            chain=row.chain,
            seq=row.seq,
            id=row.id,
            at_us=row.at_us,
            kind=row.kind,
            action=row.action,
            outcome=row.outcome,
            actor=row.actor,
            record=json.loads(row.record),
            personal=json.loads(row.personal) if row.personal is not None else None,
            personal_digest=row.personal_digest,
            erased_at_us=row.erased_at_us,
            prev_hash=row.prev_hash,
            hash=row.hash,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant_id": self.chain,
            "seq": self.seq,
            "id": self.id,
            "at_us": self.at_us,
            "kind": self.kind,
            "action": self.action,
            "outcome": self.outcome,
            "actor": self.actor,
            "record": self.record,
            "personal": self.personal,
            "personal_digest": self.personal_digest,
            "erased_at_us": self.erased_at_us,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """A filter over one tenant's chain; ``after_seq`` pages forward in chain order."""

    tenant_id: str
    user: str | None = None  # the actor: a user's object id
    document: str | None = None  # a document id, or its source (URI or path) exactly
    since_us: int | None = None  # inclusive
    until_us: int | None = None  # exclusive
    kinds: Sequence[RecordKind] = ()
    cited_only: bool = False  # with ``document``: only records that cited it, not merely retrieved it
    after_seq: int = 0

    def statement(self) -> Select[AuditRecordRow]:
        query = select(AuditRecordRow).where(
            AuditRecordRow.chain == self.tenant_id, AuditRecordRow.seq > self.after_seq
        )
        if self.user is not None:
            query = query.where(AuditRecordRow.actor == self.user)
        if self.since_us is not None:
            query = query.where(AuditRecordRow.at_us >= self.since_us)
        if self.until_us is not None:
            query = query.where(AuditRecordRow.at_us < self.until_us)
        if self.kinds:
            query = query.where(AuditRecordRow.kind.in_([kind.value for kind in self.kinds]))
        if self.document is not None:
            used = select(AuditChunkRow.seq).where(
                AuditChunkRow.chain == self.tenant_id,
                or_(AuditChunkRow.doc_id == self.document, AuditChunkRow.source_hash == source_key(self.document)),
            )
            if self.cited_only:
                used = used.where(AuditChunkRow.cited.is_(True))
            query = query.where(AuditRecordRow.seq.in_(used))
        return query.order_by(AuditRecordRow.seq)


class AuditReader:
    """Queries over the audit; callers (the API, the CLI) record their reads as admin actions."""

    def __init__(self, *, database: Database) -> None:
        self._database = database

    def page(self, query: AuditQuery, *, limit: int = 100) -> list[AuditRecord]:
        """Up to ``limit`` records (at most MAX_PAGE) matching ``query``, oldest first."""
        with self._database.read() as session:
            rows = session.execute(query.statement().limit(min(max(limit, 1), MAX_PAGE))).scalars()
            return [AuditRecord.of(row) for row in rows]

    def answers_using(
        self, *, tenant_id: str, document: str, cited_only: bool = False, limit: int = 100
    ) -> list[AuditRecord]:
        """Leak incident response: the answers that retrieved (or cited) a document, oldest first."""
        query = AuditQuery(tenant_id=tenant_id, document=document, kinds=(RecordKind.ANSWER,), cited_only=cited_only)
        return self.page(query, limit=limit)

    def export(self, query: AuditQuery) -> Iterator[AuditRecord]:
        """Every matching record, oldest first, read in batches (each batch its own short read)."""
        after = query.after_seq
        while True:
            batch = self.page(replace(query, after_seq=after), limit=_EXPORT_BATCH)
            yield from batch
            if len(batch) < _EXPORT_BATCH:
                return
            after = batch[-1].seq

    def chains(self) -> list[str]:
        """Every chain (tenant) that has records: for the operator's command line only."""
        with self._database.read() as session:
            query = select(AuditRecordRow.chain).distinct().order_by(AuditRecordRow.chain)
            return list(session.execute(query).scalars())
