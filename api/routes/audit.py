"""Auditor routes (Clearance.Auditor role): read, export and search the tenant's audit.

Every route reads the auditor's own tenant only (the tenant comes from the
token, never from the request), and every read is itself an admin record in
that tenant's chain, written before any record is returned: a read that cannot
be audited returns nothing (503). Records carry their hashes, so an export can
be checked against the chain later.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Self

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from acl.principal import Principal, is_valid_id
from api.deps import Audit, AuditorPrincipal
from core.errors import InvalidInputError
from store.audit_log import RecordKind
from store.audit_query import MAX_PAGE, AuditQuery, AuditRecord
from store.state import AuditTrail

router = APIRouter(prefix="/v1/audit", tags=["audit"])
NDJSON = "application/x-ndjson"

_USER = Query(default=None, min_length=1, max_length=64, description="the asker's object id (a GUID)")
_DOCUMENT = Query(
    default=None, min_length=1, max_length=4096, description="a document id, or its source (URI or path) exactly"
)
_SINCE = Query(default=None, description="records at or after this time (ISO 8601; UTC when no offset is given)")
_UNTIL = Query(default=None, description="records before this time")
_KIND = Query(default=None, description="answer, search or admin")


class AuditRecordOut(BaseModel):
    tenant_id: str
    seq: int = Field(description="the record's place in the tenant's chain, from 1")
    id: str = Field(description="the record id (an answer's id)")
    at: datetime
    at_us: int = Field(description="the time as chained: microseconds since the epoch")
    kind: str
    action: str
    outcome: str
    actor: str = Field(description="who acted: a user's object id, system:<name>, cli:<user> or erased:<pseudonym>")
    record: dict[str, Any] = Field(description="what was used and decided, chained as written")
    personal: dict[str, Any] | None = Field(description="who asked, their keys, the question; null once erased")
    personal_digest: str
    erased: bool
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, stored: AuditRecord) -> Self:
        return cls(
            tenant_id=stored.chain,
            seq=stored.seq,
            id=stored.id,
            at=datetime.fromtimestamp(stored.at_us / 1_000_000, tz=UTC),
            at_us=stored.at_us,
            kind=stored.kind,
            action=stored.action,
            outcome=stored.outcome,
            actor=stored.actor,
            record=stored.record,
            personal=stored.personal,
            personal_digest=stored.personal_digest,
            erased=stored.erased_at_us is not None,
            prev_hash=stored.prev_hash,
            hash=stored.hash,
        )


class AuditPage(BaseModel):
    records: list[AuditRecordOut]
    next_after: int | None = Field(description="pass as `after` for the next page; null on the last one")


@router.get("/records", summary="Your tenant's audit records, oldest first, filtered by user, document, kind and time")
def list_records(
    auditor: AuditorPrincipal,
    audit: Audit,
    user: str | None = _USER,
    document: str | None = _DOCUMENT,
    since: datetime | None = _SINCE,
    until: datetime | None = _UNTIL,
    kind: RecordKind | None = _KIND,
    after: int = Query(default=0, ge=0, description="the last `seq` of the previous page"),
    limit: int = Query(default=100, ge=1, le=MAX_PAGE),
) -> AuditPage:
    query = _query(auditor, user=user, document=document, since=since, until=until, kind=kind, after=after)
    found = audit.reader.page(query, limit=limit)
    _record_read(audit, auditor, "records", query, returned=len(found))
    return AuditPage(
        records=[AuditRecordOut.of(r) for r in found], next_after=found[-1].seq if len(found) == limit else None
    )


@router.get(
    "/export",
    summary="Your tenant's audit records as JSON lines (one record per line, oldest first), same filters",
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}}},
)
def export_records(
    auditor: AuditorPrincipal,
    audit: Audit,
    user: str | None = _USER,
    document: str | None = _DOCUMENT,
    since: datetime | None = _SINCE,
    until: datetime | None = _UNTIL,
    kind: RecordKind | None = _KIND,
) -> StreamingResponse:
    query = _query(auditor, user=user, document=document, since=since, until=until, kind=kind, after=0)
    _record_read(audit, auditor, "export", query, returned=None)  # before the first line leaves
    return StreamingResponse(
        _lines(audit, query),
        media_type=NDJSON,
        headers={"Content-Disposition": 'attachment; filename="clearance-audit.jsonl"', "Cache-Control": "no-store"},
    )


@router.get("/documents/answers", summary="The answers that used a document (leak incident response), oldest first")
def answers_using(
    auditor: AuditorPrincipal,
    audit: Audit,
    document: str = Query(min_length=1, max_length=4096, description="a document id, or its source exactly"),
    cited_only: bool = Query(default=False, description="only answers that cited it, not merely retrieved it"),
    after: int = Query(default=0, ge=0),
    limit: int = Query(default=100, ge=1, le=MAX_PAGE),
) -> AuditPage:
    query = AuditQuery(
        tenant_id=auditor.tenant_id,
        document=document,
        kinds=(RecordKind.ANSWER,),
        cited_only=cited_only,
        after_seq=after,
    )
    found = audit.reader.page(query, limit=limit)
    _record_read(audit, auditor, "document-answers", query, returned=len(found))
    return AuditPage(
        records=[AuditRecordOut.of(r) for r in found], next_after=found[-1].seq if len(found) == limit else None
    )


def _query(
    auditor: Principal,
    *,
    user: str | None,
    document: str | None,
    since: datetime | None,
    until: datetime | None,
    kind: RecordKind | None,
    after: int,
) -> AuditQuery:
    if user is not None and not is_valid_id(user):
        raise InvalidInputError("user must be an object id (a GUID)")
    return AuditQuery(
        tenant_id=auditor.tenant_id,
        user=user.lower() if user is not None else None,
        document=document,
        since_us=_microseconds(since),
        until_us=_microseconds(until),
        kinds=(kind,) if kind is not None else (),
        after_seq=after,
    )


def _microseconds(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return round(aware.timestamp() * 1_000_000)


def _record_read(audit: AuditTrail, auditor: Principal, route: str, query: AuditQuery, *, returned: int | None) -> None:
    """The read as an admin record: which filters (chained), their values (erasable: they may name a person)."""
    values = {
        "user": query.user,
        "document": query.document,
        "since_us": query.since_us,
        "until_us": query.until_us,
        "kinds": [kind.value for kind in query.kinds],
        "cited_only": query.cited_only,
        "after": query.after_seq,
    }
    used = sorted(name for name, value in values.items() if value not in (None, [], False, 0))
    detail: dict[str, Any] = {"route": route, "filters": used}
    if returned is not None:
        detail["returned"] = returned
    audit.log.record_admin_action(
        tenant_id=auditor.tenant_id,
        actor=auditor.object_id,
        action="audit.export" if route == "export" else "audit.read",
        detail=detail,
        private={name: values[name] for name in used},
    )


def _lines(audit: AuditTrail, query: AuditQuery) -> Iterator[bytes]:
    for stored in audit.reader.export(query):
        yield AuditRecordOut.of(stored).model_dump_json().encode("utf-8") + b"\n"
