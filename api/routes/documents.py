"""What an answer cited, for a caller who may read it: a passage in its context, and the document itself.

Both routes read through the caller's security filter (:mod:`retrieval.documents`);
a missing and a forbidden id get the same 404 with the same words. Every read of
a well-formed id, allowed or not, is an admin record in the caller's tenant chain,
written before anything is returned: a read that cannot be audited returns
nothing (503).
"""

from __future__ import annotations

from typing import Self
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from acl.principal import Principal
from api.deps import CurrentPrincipal, components_of
from core.errors import NotFoundError
from index.ports import ReadableChunk
from retrieval.documents import DocumentReader, OriginalFile, canonical_id

router = APIRouter(prefix="/v1", tags=["documents"])
#: A served file never runs in this origin: no scripts, no plugins, no sniffing, not cached.
FILE_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
}


class ChunkOut(BaseModel):
    chunk_id: str
    section: str | None
    page: int | None
    text: str = Field(description="the whole chunk")

    @classmethod
    def of(cls, chunk: ReadableChunk) -> Self:
        p = chunk.passage
        return cls(chunk_id=p.chunk_id, section=p.section, page=p.page, text=p.text)


class PassageOut(BaseModel):
    """A cited passage, whole, with the neighbouring passages the caller may read."""

    chunk_id: str
    doc_id: str = Field(description="open the document with GET /v1/documents/{doc_id}")
    title: str
    source: str
    section: str | None
    page: int | None
    text: str
    before: list[ChunkOut]
    after: list[ChunkOut]


def _reader(request: Request) -> DocumentReader:
    reader = components_of(request).documents
    if reader is None:
        raise NotFoundError("documents are not served here")
    return reader


def _audit_read(request: Request, principal: Principal, *, action: str, target: str, detail: dict[str, object]) -> None:
    audit = components_of(request).audit
    if audit is not None:  # the composition root always configures it; bare test apps may not
        audit.log.record_admin_action(
            tenant_id=principal.tenant_id,
            actor=principal.object_id,
            action=action,
            target=target,
            detail=detail,
            outcome="ok" if detail.get("found") else "not_found",
        )


@router.get(
    "/passages/{chunk_id}",
    response_model=PassageOut,
    summary="A cited passage, whole and in context",
    responses={404: {"description": "no such passage, or you may not read it"}},
)
def passage(chunk_id: str, request: Request, principal: CurrentPrincipal) -> PassageOut:
    reader = _reader(request)
    chunk_id = canonical_id(chunk_id)
    try:
        found = reader.passage(principal, chunk_id)
    except NotFoundError:
        _audit_read(request, principal, action="passage.read", target=chunk_id, detail={"found": False})
        raise
    p = found.chunk.passage
    _audit_read(request, principal, action="passage.read", target=chunk_id, detail={"found": True, "doc_id": p.doc_id})
    return PassageOut(
        chunk_id=p.chunk_id,
        doc_id=p.doc_id,
        title=p.title,
        source=p.source,
        section=p.section,
        page=p.page,
        text=p.text,
        before=[ChunkOut.of(c) for c in found.before],
        after=[ChunkOut.of(c) for c in found.after],
    )


@router.get(
    "/documents/{doc_id}",
    summary="The original document, or its text where the original cannot be served",
    description=(
        "The indexed file itself (`X-Clearance-Rendition: original`) when it still lies unchanged under one of "
        "your tenant's allowed roots, else a plain-text rendering of the passages you may read "
        "(`X-Clearance-Rendition: text`). 404 for a document that does not exist or that you may not read."
    ),
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}, "text/plain": {}}}, 404: {}},
)
def document(doc_id: str, request: Request, principal: CurrentPrincipal) -> Response:
    reader = _reader(request)
    doc_id = canonical_id(doc_id)
    try:
        permitted = reader.document(principal, doc_id)
    except NotFoundError:
        _audit_read(request, principal, action="document.read", target=doc_id, detail={"found": False})
        raise
    original = reader.original(principal, permitted)
    rendition = "original" if original is not None else "text"
    detail: dict[str, object] = {"found": True, "rendition": rendition, "chunks": len(permitted.chunks)}
    _audit_read(request, principal, action="document.read", target=doc_id, detail=detail)
    if original is None:
        name = (permitted.source.rsplit("/", 1)[-1] or "document") + ".txt"
        original = OriginalFile(content=permitted.text().encode("utf-8"), filename=name, media_type="text/plain")
    return _file_response(original, rendition)


def _file_response(file: OriginalFile, rendition: str) -> Response:
    disposition = "inline" if file.inline else "attachment"
    ascii_name = file.filename.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("?", "_")
    media_type = f"{file.media_type}; charset=utf-8" if file.media_type == "text/plain" else file.media_type
    headers = {
        **FILE_HEADERS,
        "Content-Disposition": f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file.filename)}",
        "X-Clearance-Rendition": rendition,
    }
    return Response(content=file.content, media_type=media_type, headers=headers)
