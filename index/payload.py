"""The stored shape of a chunk, shared by every index implementation.

What is written with each chunk, and how stored payloads turn back into the
records the rest of the product sees: one definition, so implementations cannot
drift. ACL fields are written here and read back only for administrators
(:class:`StoredDocument`); a :class:`Passage` never carries them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from acl.access import AccessList
from acl.index_filter import ALLOW_FIELD, DENY_FIELD, LIVE_STATE, READ_FIELD, STATE_FIELD, TENANT_FIELD, read_keys
from core.records import DocumentState, Passage, StoredDocument
from index import idf_sample
from index.ports import IndexedDocument, ReadableChunk, SparseEncoder, SparseVector
from index.sparse import ENCODER_FIELD

STAGED_STATE = "staged"
KEYWORD_FIELDS = (READ_FIELD, ALLOW_FIELD, DENY_FIELD, TENANT_FIELD, STATE_FIELD, "doc_id", "source_id", "version")
STATE_FIELDS = ["doc_id", "path", "content_hash", "acl_hash", "chunk_count"]
DOCUMENT_FIELDS = ["doc_id", "tenant_id", "source_id", "path", "title", ALLOW_FIELD, DENY_FIELD]
PASSAGE_FIELDS = ["doc_id", "uri", "path", "title", "section", "page", "page_name", "text", "version"]
#: What a read of known chunks returns: the passage, its place, and where its original lies (never the ACL).
READ_FIELDS = [*PASSAGE_FIELDS, "chunk_index", "source_id", "content_hash"]
#: What a chunk's term weights are computed from, at write time and again by a backfill.
TERM_FIELDS = ["title", "section", "text"]
#: What publishing and the read-key backfill read from a stored chunk to compute its read keys.
ACL_SOURCE_FIELDS = [TENANT_FIELD, ALLOW_FIELD, "acl_hash"]
#: How often a publish re-reads an ACL that changed under it before giving up (the chunks stay staged).
PUBLISH_ATTEMPTS = 5
_CHUNK_NAMESPACE = uuid.UUID("6f1d6a52-94a4-4c1e-9a0e-5a3c1b7e2d10")


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One chunk as it is written: its id, vector, term weights (None: no encoder) and payload."""

    id: str
    vector: list[float]
    payload: dict[str, Any]
    sparse: SparseVector | None = None


def new_version(content_hash: str) -> str:
    """A version tag for one write of a document: content hash prefix plus a random suffix."""
    return f"{content_hash[:16]}-{uuid.uuid4().hex[:8]}"


def term_text(payload: Mapping[str, Any]) -> str:
    """The words a chunk is found by: title and section, then the text (as ingestion embeds it); never ACLs."""
    header = " | ".join(str(payload[key]) for key in ("title", "section") if payload.get(key))
    text = str(payload.get("text") or "")
    return f"{header}\n{text}" if header else text


def staged_chunks(
    document: IndexedDocument, version: str, *, encoder: SparseEncoder | None = None
) -> list[ChunkRecord]:
    """The chunks of ``document`` as ``version``, written ``staged`` (invisible until published).

    With an ``encoder``, each chunk also gets term weights from its stored fields
    (:func:`term_text`) and the encoder's fingerprint, so a backfill computes the same.
    """
    meta, acl, now = document.meta, document.acl, time.time()
    shared = {
        "tenant_id": meta.tenant_id,
        "doc_id": meta.doc_id,
        "source_id": meta.source_id,
        "path": meta.path,
        "uri": meta.uri,
        "title": meta.title,
        "format": meta.format,
        "chunk_count": len(document.chunks),
        "content_hash": meta.content_hash,
        "acl_hash": acl.fingerprint(),
        ALLOW_FIELD: sorted(acl.allow),
        DENY_FIELD: sorted(acl.deny),
        READ_FIELD: [],  # written by publishing: a staged chunk matches no caller
        "version": version,
        STATE_FIELD: STAGED_STATE,
        "modified_at": meta.modified_at,
        "indexed_at": now,
    }
    if encoder is not None:
        shared[ENCODER_FIELD] = encoder.fingerprint
    records = []
    for number, (chunk, vector) in enumerate(zip(document.chunks, document.vectors, strict=True)):
        payload = {
            **shared,
            "section": chunk.section,
            "page": chunk.page,
            "page_name": chunk.page_name,
            "text": chunk.text,
            "chunk_index": number,
        }
        chunk_id = str(uuid.uuid5(_CHUNK_NAMESPACE, f"{meta.doc_id}/{version}/{number}"))
        payload[idf_sample.FIELD] = idf_sample.slot_of(chunk_id)
        records.append(
            ChunkRecord(
                id=chunk_id,
                vector=[float(x) for x in vector],
                payload=payload,
                sparse=encoder.encode_document(term_text(payload)) if encoder is not None else None,
            )
        )
    return records


def acl_payload(acl: AccessList) -> dict[str, Any]:
    """An ACL rewrite of chunks that are not live: allow, deny and fingerprint, never read keys."""
    return {ALLOW_FIELD: sorted(acl.allow), DENY_FIELD: sorted(acl.deny), "acl_hash": acl.fingerprint()}


def live_acl_payload(tenant_id: str, acl: AccessList) -> dict[str, Any]:
    """An ACL rewrite of live chunks: the same fields and the read keys, in one write per point."""
    return {**acl_payload(acl), READ_FIELD: read_keys(tenant_id, acl.allow)}


def live_payload(stored: Mapping[str, Any]) -> dict[str, Any]:
    """What publishing writes on a staged chunk (read with :data:`ACL_SOURCE_FIELDS`): live, and its read keys."""
    return {
        STATE_FIELD: LIVE_STATE,
        READ_FIELD: read_keys(str(stored.get(TENANT_FIELD) or ""), stored.get(ALLOW_FIELD) or ()),
    }


def acl_source(stored: Mapping[str, Any]) -> tuple[str, str]:
    """The tenant and ACL fingerprint of a stored chunk (read with :data:`ACL_SOURCE_FIELDS`).

    A publish or read-key backfill writes only where both still hold, so an ACL rewritten
    in between is never overwritten with read keys computed from the old one.
    """
    return str(stored.get(TENANT_FIELD) or ""), str(stored.get("acl_hash") or "")


@dataclass(frozen=True, slots=True)
class ReadKeyGroup:
    """Live chunks of one tenant and ACL fingerprint that lack read keys, and the keys they get."""

    tenant_id: str
    acl_hash: str
    keys: list[str]
    ids: list[Any]


def read_key_groups(points: Iterable[tuple[Any, Mapping[str, Any]]]) -> list[ReadKeyGroup]:
    """Chunks read with :data:`ACL_SOURCE_FIELDS` (id, payload), grouped for the read-key backfill."""
    groups: dict[tuple[str, str], ReadKeyGroup] = {}
    for point_id, payload in points:
        tenant_id, acl_hash = acl_source(payload)
        group = groups.get((tenant_id, acl_hash))
        if group is None:
            keys = live_payload(payload)[READ_FIELD]
            group = groups[(tenant_id, acl_hash)] = ReadKeyGroup(tenant_id, acl_hash, keys, [])
        group.ids.append(point_id)
    return list(groups.values())


def document_state(payload: Mapping[str, Any]) -> DocumentState:
    return DocumentState(
        doc_id=payload["doc_id"],
        path=payload["path"],
        content_hash=payload["content_hash"],
        acl_hash=payload["acl_hash"],
        chunk_count=int(payload.get("chunk_count", 0)),
    )


def stored_document(payload: Mapping[str, Any]) -> StoredDocument:
    return StoredDocument(
        doc_id=str(payload["doc_id"]),
        tenant_id=str(payload["tenant_id"]),
        source_id=str(payload["source_id"]),
        path=str(payload["path"]),
        title=str(payload.get("title") or ""),
        acl_allow=frozenset(payload.get(ALLOW_FIELD) or ()),
        acl_deny=frozenset(payload.get(DENY_FIELD) or ()),
    )


def page_of_documents(found: Sequence[StoredDocument], *, offset: int, limit: int) -> list[StoredDocument]:
    """One chunk 0 per live document, sorted so that pages are stable across calls."""
    ordered = sorted(found, key=lambda d: (d.source_id, d.path))
    return ordered[offset : offset + limit]


def passage(chunk_id: object, payload: Mapping[str, Any] | None, score: float) -> Passage:
    """A chunk as a caller may see it: only these fields leave the index, never the ACL."""
    payload = payload or {}
    return Passage(
        chunk_id=str(chunk_id),
        doc_id=str(payload.get("doc_id", "")),
        source=str(payload.get("uri") or payload.get("path") or ""),
        title=str(payload.get("title") or ""),
        section=payload.get("section"),
        page=payload.get("page"),
        page_name=payload.get("page_name"),
        text=str(payload.get("text") or ""),
        score=float(score),
        version=str(payload.get("version") or ""),
    )


def readable_chunk(chunk_id: object, payload: Mapping[str, Any] | None) -> ReadableChunk:
    """A chunk read under the caller's security filter, with its place in the document."""
    payload = payload or {}
    return ReadableChunk(
        passage=passage(chunk_id, payload, 0.0),
        chunk_index=int(payload.get("chunk_index") or 0),
        source_id=str(payload.get("source_id") or ""),
        content_hash=str(payload.get("content_hash") or ""),
    )


def in_document_order(chunks: Sequence[ReadableChunk]) -> list[ReadableChunk]:
    return sorted(chunks, key=lambda c: (c.passage.doc_id, c.chunk_index, c.passage.chunk_id))
