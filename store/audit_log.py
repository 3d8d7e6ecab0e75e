"""Appending to the audit: one chained record per answer, per search and per admin action.

An append is one write transaction: lock the chain's head, add the record (and
the chunks it used), move the head. Appends to one chain are therefore
serialized across threads, processes and replicas (PostgreSQL: ``FOR UPDATE``
on the head row; SQLite: the file's write lock), and the table's constraints
refuse a fork even if that serialization were ever bypassed. A failed append
raises; nothing is kept in memory to be written later, because an answer must
never be returned without its record.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retrieval.audit import AnswerAudit, ChunkRef
from store.audit_tables import AuditChunkRow, AuditHead, AuditRecordRow
from store.chain import (
    GENESIS,
    canonical,
    personal_text,
    principals_fingerprint,
    record_hash,
    sha256_hex,
)
from store.database import Database

log = logging.getLogger(__name__)
SYSTEM_CHAIN = ""  # actions that belong to no tenant (schema upgrades)
RECORD_VERSION = 1
_APPEND_ATTEMPTS = 5


class RecordKind(StrEnum):
    ANSWER = "answer"
    SEARCH = "search"
    ADMIN = "admin"


def now_us() -> int:
    return time.time_ns() // 1000


@functools.lru_cache(maxsize=4096)  # answers cite the same documents over and over (appends, verification)
def source_key(source: str) -> str:
    """How a document's source (URI or path) is indexed: a digest, since a path can outgrow an index entry."""
    return sha256_hex(canonical(source))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A record before it is chained: ``record`` is kept as written; ``personal`` through its digest, erasably."""

    chain: str  # the tenant id; SYSTEM_CHAIN for none
    kind: RecordKind
    action: str
    outcome: str
    actor: str
    record: Mapping[str, Any]
    personal: Mapping[str, Any] = field(default_factory=dict)
    chunks: tuple[ChunkRef, ...] = ()
    cited: frozenset[str] = frozenset()
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at_us: int = field(default_factory=now_us)


@dataclass(frozen=True, slots=True)
class Appended:
    chain: str
    seq: int
    id: str
    hash: str


def answer_entry(audit: AnswerAudit) -> AuditEntry:
    """An answer's or a search's record: what was used is chained in clear; who asked, and what, erasably."""
    kind = RecordKind.SEARCH if audit.kind == RecordKind.SEARCH else RecordKind.ANSWER
    record = {
        "v": RECORD_VERSION,
        "principals_fingerprint": principals_fingerprint(audit.principals),
        "principal_count": len(audit.principals),
        "narrowed": list(audit.narrowed),
        "groups_complete": audit.groups_complete,
        "retrieved": [
            {"chunk_id": c.chunk_id, "doc_id": c.doc_id, "source": c.source, "version": c.version} for c in audit.chunks
        ],
        "retrieved_ids": list(audit.retrieved),
        "cited": list(audit.cited),
        "prompt": audit.prompt,
        "generator": audit.generator,
        "model": audit.model,
        "policy": list(audit.policy),
        "timings_ms": dict(audit.timings_ms),
        "streamed": audit.streamed,
    }
    personal = {"principals": list(audit.principals), "question": audit.question}
    return AuditEntry(
        chain=audit.tenant_id,
        kind=kind,
        action=kind.value,
        outcome=audit.outcome,
        actor=audit.object_id,
        record=record,
        personal=personal,
        chunks=audit.chunks,
        cited=frozenset(audit.cited),
        id=audit.id,
        at_us=round(audit.at * 1_000_000),
    )


class AuditLog:
    """The audit's write side; :mod:`store.audit_query` reads it and :mod:`store.audit_verify` checks it."""

    def __init__(self, *, database: Database) -> None:
        self.database = database

    def append(self, entry: AuditEntry) -> Appended:
        """Chains ``entry`` in its own transaction; raises StoreUnavailableError when the store cannot take it."""
        for attempt in range(1, _APPEND_ATTEMPTS + 1):
            try:
                with self.database.write() as session:
                    return self.append_in(session, entry)
            except IntegrityError:
                # Only a head row created by a racing first append can land here; the next try sees it.
                if attempt == _APPEND_ATTEMPTS:
                    raise
                log.info("audit append raced on chain %r; retrying", entry.chain)
        raise AssertionError("unreachable")

    def append_in(self, session: Session, entry: AuditEntry) -> Appended:
        """Chains ``entry`` inside the caller's write transaction (a job record and its audit commit together)."""
        head = lock_head(session, entry.chain)
        record, chunks = chained_rows(entry, seq=head.seq + 1, prev_hash=head.hash)
        session.execute(insert(AuditRecordRow), [record])
        if chunks:
            session.execute(insert(AuditChunkRow), chunks)
        head.seq, head.hash = record["seq"], record["hash"]
        session.flush()
        return Appended(chain=entry.chain, seq=record["seq"], id=entry.id, hash=record["hash"])

    def record_admin_action(
        self,
        *,
        tenant_id: str,
        actor: str,
        action: str,
        target: str = "",
        detail: Mapping[str, Any] | None = None,
        private: Mapping[str, Any] | None = None,
        outcome: str = "ok",
        session: Session | None = None,
    ) -> Appended:
        """One admin action (``ingest.job.start``, ``audit.read``, ``prompt.activate``, ...) in the tenant's chain.

        ``detail`` is chained in clear and must not name people (counts, ids of
        jobs or prompts, filter names); ``private`` holds what does (a filter on
        a user, a reason someone typed) and is erasable. With ``session``, the
        record commits with the caller's own writes.
        """
        entry = AuditEntry(
            chain=tenant_id,
            kind=RecordKind.ADMIN,
            action=action,
            outcome=outcome,
            actor=actor,
            record={"v": RECORD_VERSION, "target": target, "detail": dict(detail or {})},
            personal={"private": dict(private)} if private else {},
        )
        return self.append_in(session, entry) if session is not None else self.append(entry)

    def ping(self) -> None:
        """Raises StoreUnavailableError unless an append could reach the store now."""
        self.database.ping()


def chained_rows(entry: AuditEntry, *, seq: int, prev_hash: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rows that store ``entry`` at position ``seq`` after ``prev_hash``: its record (with its hash) and chunks."""
    record = canonical(entry.record)
    personal = personal_text(entry.personal, actor=entry.actor)
    digest = sha256_hex(personal)
    hashed = record_hash(
        chain=entry.chain,
        seq=seq,
        id=entry.id,
        at_us=entry.at_us,
        kind=entry.kind.value,
        action=entry.action,
        outcome=entry.outcome,
        record=record,
        personal_digest=digest,
        prev_hash=prev_hash,
    )
    row = {
        "chain": entry.chain,
        "seq": seq,
        "id": entry.id,
        "at_us": entry.at_us,
        "kind": entry.kind.value,
        "action": entry.action,
        "outcome": entry.outcome,
        "actor": entry.actor,
        "record": record,
        "personal": personal,
        "personal_digest": digest,
        "erased_at_us": None,
        "prev_hash": prev_hash,
        "hash": hashed,
    }
    chunks = [
        {
            "chain": entry.chain,
            "seq": seq,
            "position": position,
            "chunk_id": chunk.chunk_id,
            "doc_id": chunk.doc_id,
            "source_hash": source_key(chunk.source),
            "version": chunk.version,
            "cited": chunk.chunk_id in entry.cited,
        }
        for position, chunk in enumerate(entry.chunks)
    ]
    return row, chunks


class SqlAuditSink:
    """The answer service's audit sink over the store (retrieval.audit.AuditSink)."""

    def __init__(self, *, log: AuditLog) -> None:
        self._log = log

    def record(self, entry: AnswerAudit) -> None:
        self._log.append(answer_entry(entry))


def lock_head(session: Session, chain: str) -> AuditHead:
    """The chain's head row, locked for this transaction (created at the genesis on a chain's first append)."""
    query = (
        select(AuditHead).where(AuditHead.chain == chain).with_for_update().execution_options(populate_existing=True)
    )
    head = session.execute(query).scalar_one_or_none()
    if head is not None:
        return head
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(AuditHead).values(chain=chain, seq=0, hash=GENESIS).on_conflict_do_nothing(index_elements=["chain"])
    )
    return session.execute(query).scalar_one()
