"""What the index stores and returns, as typed records."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DocumentMeta:
    """Facts about one source document shared by all of its chunks."""

    doc_id: str
    tenant_id: str
    source_id: str
    path: str
    uri: str
    title: str
    format: str
    content_hash: str
    modified_at: float


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    """A chunk before it is written: its text and where in the document it sits."""

    text: str
    section: str | None
    page: int | None
    page_name: str | None


@dataclass(frozen=True, slots=True)
class DocumentState:
    """What the index holds for a document, enough to decide an incremental run."""

    doc_id: str
    path: str
    content_hash: str
    acl_hash: str
    chunk_count: int


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A live document as an administrator sees it: identity, place and stored ACL keys (never for callers)."""

    doc_id: str
    tenant_id: str
    source_id: str
    path: str
    title: str
    acl_allow: frozenset[str]
    acl_deny: frozenset[str]


@dataclass(frozen=True, slots=True)
class Passage:
    """A chunk as a caller may see it: no ACL fields, ever."""

    chunk_id: str
    doc_id: str
    source: str
    title: str
    section: str | None
    page: int | None
    page_name: str | None
    text: str
    score: float
    version: str = ""  # the document version the chunk belongs to (audit: which version an answer used)
