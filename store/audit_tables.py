"""The audit's tables: the chained records, each chain's head, and the chunks each answer used.

One chain per tenant (``chain`` is the tenant id; ``""`` is the system chain for
actions that belong to no tenant), so a tenant's auditor can export and verify
their own chain without seeing another tenant's records.

Forks are impossible by construction, not only by locking: ``(chain, seq)`` is
the primary key and ``(chain, prev_hash)`` is unique, so two records can never
take the same place or follow the same predecessor. ``audit_heads`` holds each
chain's last position; appends lock that row (PostgreSQL ``FOR UPDATE``; SQLite
takes the file's write lock), and verification compares it with the last record,
so a deleted tail is noticed.

``audit_chunks`` is derived from each record's chained ``retrieved`` list (the
verifier checks that they agree) and makes "which answers used document X" one
indexed query. Documents are matched by id, or by the hash of their source
(URI or path), since a source can be longer than an index entry may be.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base

HASH_LENGTH = 64  # hex SHA-256


class AuditHead(Base):
    __tablename__ = "audit_heads"

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH))


class AuditRecordRow(Base):
    __tablename__ = "audit_records"
    __table_args__ = (
        UniqueConstraint("chain", "prev_hash"),
        UniqueConstraint("id"),
        Index("ix_audit_records_chain_actor", "chain", "actor", "seq"),
        Index("ix_audit_records_chain_at", "chain", "at_us"),
    )

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id: Mapped[str] = mapped_column(String(32))
    at_us: Mapped[int] = mapped_column(BigInteger)  # microseconds since the epoch, UTC
    kind: Mapped[str] = mapped_column(String(16))  # answer, search, admin
    action: Mapped[str] = mapped_column(String(64))  # answer, search, ingest.job.start, audit.read, ...
    outcome: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))  # a user's object id, system:<name> or cli:<os user>
    record: Mapped[str] = mapped_column(Text)  # canonical JSON, chained as written
    personal: Mapped[str | None] = mapped_column(Text, nullable=True)  # canonical JSON; None once erased
    personal_digest: Mapped[str] = mapped_column(String(HASH_LENGTH))  # chained in place of the personal data
    erased_at_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH))


class AuditChunkRow(Base):
    __tablename__ = "audit_chunks"
    __table_args__ = (
        ForeignKeyConstraint(["chain", "seq"], ["audit_records.chain", "audit_records.seq"]),
        Index("ix_audit_chunks_chain_doc", "chain", "doc_id"),
        Index("ix_audit_chunks_chain_source", "chain", "source_hash"),
    )

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # rank among the retrieved chunks
    chunk_id: Mapped[str] = mapped_column(Text)  # ids are the index's: no length is assumed
    doc_id: Mapped[str] = mapped_column(Text)
    source_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    version: Mapped[str] = mapped_column(Text)
    cited: Mapped[bool] = mapped_column(Boolean)
