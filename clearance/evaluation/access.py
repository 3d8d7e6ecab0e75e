"""The leakage reference: may this caller read this document, decided apart from the search filter.

The index trims results with a Qdrant filter built by ``acl.index_filter``. The
evaluation must not trust that filter to check itself, so it asks a different
question of different data: the ACL stored on the document (an administrator's
read of the index) evaluated by :meth:`acl.access.AccessList.permits`, the
reference rule, plus the document's tenant from the administrator's listing.
Anything that cannot be established (no stored ACL, a document in no listing)
counts as not readable: a leak is reported rather than assumed away.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from acl.access import AccessList
from acl.principal import Principal
from core.records import StoredDocument
from index.ports import ChunkIndex

_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Leak:
    """A chunk shown to a caller who may not read it, and how it was found."""

    chunk_id: str
    source: str
    where: str  # "search", "answer" (a passage given to the generator) or "citation"
    reason: str


class AccessReference:
    """Stored ACLs and tenants of every live document of the given tenants, read once per document."""

    def __init__(self, index: ChunkIndex, *, tenant_ids: Iterable[str]) -> None:
        self._index = index
        self._tenant_of = {doc.doc_id: doc.tenant_id for tenant in tenant_ids for doc in _listing(index, tenant)}
        self._acls: dict[str, AccessList | None] = {}

    @property
    def documents(self) -> int:
        return len(self._tenant_of)

    def refusal(self, principal: Principal, doc_id: str) -> str | None:
        """Why ``principal`` may not read the document, or None when the reference rule permits it."""
        tenant = self._tenant_of.get(doc_id)
        if tenant is None:
            return "document in no tenant's listing"
        if tenant != principal.tenant_id:
            return "document of another tenant"
        if doc_id not in self._acls:
            self._acls[doc_id] = self._index.stored_acl(doc_id)
        acl = self._acls[doc_id]
        if acl is None:
            return "no stored ACL"
        if not acl.permits(principal.access_keys()):
            return "stored ACL does not permit the caller"
        return None


def _listing(index: ChunkIndex, tenant_id: str) -> Iterator[StoredDocument]:
    offset = 0
    while True:
        page = index.documents(tenant_id=tenant_id, offset=offset, limit=_PAGE)
        yield from page
        if len(page) < _PAGE:
            return
        offset += _PAGE
