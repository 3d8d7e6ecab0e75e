"""Admin routes: explain access (Clearance.Admin role). Policy lives in :class:`ingest.explain.ExplainAccess`.

Every answer is about the admin's own tenant: the tenant comes from the admin's
token, never from the request. These routes return ACL keys, which caller-facing
routes never do; they exist for the admins who write the manifests.
"""

from __future__ import annotations

from typing import Annotated, Self

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.deps import AdminPrincipal, components_of
from core.errors import NotFoundError
from ingest.acl_decision import Granted, Nobody
from ingest.explain import (
    AclView,
    DocumentAccess,
    DocumentPage,
    ExplainAccess,
    Explanation,
    PrincipalEntry,
    UserKeys,
    Verdict,
)

router = APIRouter(prefix="/v1/admin/access", tags=["admin"])

_USER = Query(min_length=1, max_length=64, description="the user's object id (a GUID)")
_DOCUMENT = Query(
    min_length=1,
    max_length=4096,
    description="a document path relative to one of your tenant's ingestion roots, or absolute under one",
)


def _explain_access(request: Request) -> ExplainAccess:
    # Reads the capability like every other one; until it is wired the routes answer 404, never a 500.
    service = getattr(components_of(request), "explain", None)
    if not isinstance(service, ExplainAccess):
        raise NotFoundError("explain access is not configured")
    return service


Explain = Annotated[ExplainAccess, Depends(_explain_access)]


class KeyOriginOut(BaseModel):
    key: str
    origin: str = Field(description="where the key came from: token, graph, cache, directory...")


class UserOut(BaseModel):
    object_id: str
    guest: bool
    narrowed: list[str] = Field(description="why the user may hold fewer keys than they should (fail closed)")
    keys: list[KeyOriginOut]

    @classmethod
    def of(cls, user: UserKeys) -> Self:
        return cls(
            object_id=user.object_id,
            guest=user.guest,
            narrowed=list(user.narrowed),
            keys=[KeyOriginOut(key=k.key, origin=k.origin) for k in user.keys],
        )


class VerdictOut(BaseModel):
    can_see: bool
    decided_by: str = Field(description="allow:<key>, deny:<key> (deny beats allow), no_match or not_indexed")
    matched_allow: list[str]
    matched_deny: list[str]

    @classmethod
    def of(cls, verdict: Verdict) -> Self:
        return cls(
            can_see=verdict.can_see,
            decided_by=verdict.decided_by,
            matched_allow=list(verdict.matched_allow),
            matched_deny=list(verdict.matched_deny),
        )


class EntryOut(BaseModel):
    key: str
    kind: str = Field(description="user, group or tenant")
    object_id: str
    display_name: str | None
    manifests: list[str] = Field(description="manifests (relative to the root, root first) that set this entry")

    @classmethod
    def of(cls, entry: PrincipalEntry) -> Self:
        return cls(
            key=entry.key,
            kind=entry.kind,
            object_id=entry.object_id,
            display_name=entry.display_name,
            manifests=list(entry.manifests),
        )


def _entries(view: AclView) -> tuple[list[EntryOut], list[EntryOut]]:
    return [EntryOut.of(e) for e in view.allow], [EntryOut.of(e) for e in view.deny]


class ManifestProblemOut(BaseModel):
    file: str
    reason: str


class ManifestsOut(BaseModel):
    """What the manifests say now: the ACL the next ingestion stores, with origins, or why nobody may see it."""

    status: str = Field(description="granted, nobody, or gone (no longer a document; the next ingestion removes it)")
    cause: str | None = Field(description="when nobody: no_manifest, manifest_error, symlink, special_file, ...")
    reason: str | None
    warnings: list[str]
    chain: list[str] = Field(description="manifests combined, root first: one that replaces, then each inheriting")
    replaced: list[str] = Field(description="manifests above the chain whose entries it replaced")
    allow: list[EntryOut]
    deny: list[EntryOut]
    problems: list[ManifestProblemOut]
    looked_for: list[str] = Field(description="where manifests for this document are read, root first")

    @classmethod
    def of(cls, access: DocumentAccess) -> Self:
        decision = access.decision
        allow, deny = _entries(access.manifests)
        granted = decision if isinstance(decision, Granted) else None  # one of the two, or neither (gone)
        nobody = decision if isinstance(decision, Nobody) else None
        status = "granted" if granted is not None else "nobody" if nobody is not None else "gone"
        reason: str | None = nobody.reason if nobody else None
        if decision is None:
            reason = "no longer a document of the source; the next ingestion removes it from the index"
        return cls(
            status=status,
            cause=str(nobody.cause) if nobody else None,
            reason=reason,
            warnings=list(granted.warnings) if granted else [],
            chain=list(granted.origins.chain) if granted else [],
            replaced=list(granted.origins.replaced) if granted else [],
            allow=allow,
            deny=deny,
            problems=[ManifestProblemOut(file=p.source, reason=p.reason) for p in nobody.problems] if nobody else [],
            looked_for=list(access.looked_for),
        )


class StoredOut(BaseModel):
    """What the index holds now, which is what searches enforce."""

    indexed: bool
    stale: bool = Field(description="the next ingestion will change or remove this ACL")
    allow: list[EntryOut]
    deny: list[EntryOut]

    @classmethod
    def of(cls, access: DocumentAccess) -> Self:
        allow, deny = _entries(access.stored or AclView())
        return cls(indexed=access.stored is not None, stale=access.stale, allow=allow, deny=deny)


class DocumentAccessOut(BaseModel):
    """Who can see a document: its manifests' entries and the index's."""

    source: str = Field(description="the ingestion root's folder name")
    document: str = Field(description="the path relative to that root")
    manifests: ManifestsOut
    index: StoredOut

    @classmethod
    def of(cls, access: DocumentAccess) -> Self:
        return cls(
            source=access.source,
            document=access.document,
            manifests=ManifestsOut.of(access),
            index=StoredOut.of(access),
        )


class ExplainOut(DocumentAccessOut):
    """Whether a user can see a document now (by the index), why, and whether that changes with the next ingestion."""

    user: UserOut
    can_see: bool
    decided_by: str
    now: VerdictOut
    after_next_ingestion: VerdictOut

    @classmethod
    def explained(cls, explanation: Explanation) -> Self:
        access = DocumentAccessOut.of(explanation.access)
        return cls(
            **dict(access),
            user=UserOut.of(explanation.user),
            can_see=explanation.can_see,
            decided_by=explanation.now.decided_by,
            now=VerdictOut.of(explanation.now),
            after_next_ingestion=VerdictOut.of(explanation.after_next_ingestion),
        )


class VisibleDocumentOut(BaseModel):
    source: str
    path: str
    title: str
    decided_by: str


class DocumentPageOut(BaseModel):
    user: UserOut
    documents: list[VisibleDocumentOut]
    offset: int
    limit: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last one")

    @classmethod
    def of(cls, page: DocumentPage) -> Self:
        return cls(
            user=UserOut.of(page.user),
            documents=[
                VisibleDocumentOut(source=d.source, path=d.path, title=d.title, decided_by=d.decided_by)
                for d in page.documents
            ],
            offset=page.offset,
            limit=page.limit,
            next_offset=page.next_offset,
        )


@router.get("/explain", summary="Can this user see this document, and why")
def explain(admin: AdminPrincipal, service: Explain, user: str = _USER, document: str = _DOCUMENT) -> ExplainOut:
    return ExplainOut.explained(service.explain_user(tenant_id=admin.tenant_id, object_id=user, document_path=document))


@router.get("/document", summary="Who can see this document: its allow and deny entries, with display names")
def who_can_see(admin: AdminPrincipal, service: Explain, document: str = _DOCUMENT) -> DocumentAccessOut:
    return DocumentAccessOut.of(service.who_can_see(tenant_id=admin.tenant_id, document_path=document))


@router.get("/user", summary="The documents of your tenant this user can see now, a page at a time")
def what_can_see(
    admin: AdminPrincipal,
    service: Explain,
    user: str = _USER,
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=50, ge=1, le=200),
) -> DocumentPageOut:
    return DocumentPageOut.of(
        service.what_user_can_see(tenant_id=admin.tenant_id, object_id=user, offset=offset, limit=limit)
    )
