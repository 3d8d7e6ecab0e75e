"""The chunk index on qdrant-client: schema, payload indexes, writes and filtered search.

The index's only query method takes a :class:`Principal`; there is no way to
search without the security filter. Local (``:memory:`` or a path) and server
(URL) modes are the same qdrant-client code behind one constructor.

Replacing a document's content never lets a search see old and new chunks
mixed: new chunks are written ``staged`` (invisible to the security filter),
then the old version is deleted, then the new one is flipped ``live``. A
concurrent search sees the old version, nothing, or the new version.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models

from acl.access import AccessList
from acl.index_filter import (
    ALLOW_FIELD,
    DENY_FIELD,
    LIVE_STATE,
    STATE_FIELD,
    TENANT_FIELD,
    security_filter,
)
from acl.principal import Principal
from core.errors import IndexUnavailableError
from core.records import DocumentState, Passage, StoredDocument
from index.payload import (
    DOCUMENT_FIELDS,
    KEYWORD_FIELDS,
    STATE_FIELDS,
    document_state,
    new_version,
    page_of_documents,
    passage,
    staged_chunks,
    stored_document,
)
from index.ports import IndexedDocument

DENSE_VECTOR = "dense"
T = TypeVar("T")


def open_client(location: str, *, api_key: str | None = None, timeout: float = 10.0) -> QdrantClient:
    """A client for ``:memory:``, a local folder, or an ``http(s)://`` server URL."""
    try:
        if location == ":memory:":
            return QdrantClient(location=":memory:")
        if location.startswith(("http://", "https://")):
            return QdrantClient(url=location, api_key=api_key, timeout=int(timeout))
        return QdrantClient(path=location)
    except Exception as exc:  # qdrant raises several unrelated types when it cannot open
        raise IndexUnavailableError(f"cannot open index at {location}: {type(exc).__name__}") from exc


class QdrantChunkIndex:
    """One Qdrant collection of chunks with their ACLs (implements :class:`index.ports.ChunkIndex`)."""

    def __init__(self, *, client: QdrantClient, collection: str, dimension: int) -> None:
        self._client = client
        self._collection = collection
        self._dimension = dimension
        # qdrant-client's local mode is not safe for concurrent use; the lock is
        # cheap against a server, so one code path serves both.
        self._lock = threading.RLock()

    def _call(self, operation: Callable[[], T]) -> T:
        with self._lock:
            try:
                return operation()
            except IndexUnavailableError:
                raise
            except (ValueError, KeyError, TypeError):
                raise
            except Exception as exc:  # transport errors of the server mode
                raise IndexUnavailableError(f"index operation failed: {type(exc).__name__}") from exc

    def ensure_schema(self) -> None:
        """Create the collection and its payload indexes if they are missing."""

        def create() -> None:
            if not self._client.collection_exists(self._collection):
                self._client.create_collection(
                    self._collection,
                    vectors_config={
                        DENSE_VECTOR: models.VectorParams(size=self._dimension, distance=models.Distance.COSINE)
                    },
                )
            with warnings.catch_warnings():
                # Local mode warns that payload indexes do nothing there; a server uses them.
                warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                for field in KEYWORD_FIELDS:
                    self._client.create_payload_index(
                        self._collection, field_name=field, field_schema=models.PayloadSchemaType.KEYWORD
                    )
                self._client.create_payload_index(
                    self._collection, field_name="chunk_index", field_schema=models.PayloadSchemaType.INTEGER
                )

        self._call(create)

    def ping(self) -> None:
        self._call(lambda: self._client.collection_exists(self._collection))

    # -- writes --------------------------------------------------------------

    def replace_document(self, document: IndexedDocument) -> None:
        """Write a document's chunks, replacing any earlier version without mixing."""
        self.publish(document.meta.doc_id, self.stage_document(document))

    def stage_document(self, document: IndexedDocument) -> str:
        """Write a new version's chunks ``staged`` (invisible to every search); returns the version."""
        version = new_version(document.meta.content_hash)
        points = [
            models.PointStruct(id=chunk.id, vector={DENSE_VECTOR: chunk.vector}, payload=chunk.payload)
            for chunk in staged_chunks(document, version)
        ]

        def write() -> None:
            for start in range(0, len(points), 256):
                self._client.upsert(self._collection, points=points[start : start + 256], wait=True)

        self._call(write)
        return version

    def publish(self, doc_id: str, version: str) -> None:
        """Delete every other version of the document, then make ``version`` live."""
        doc_filter = _match("doc_id", doc_id)
        this_version = _match("version", version)

        def flip() -> None:
            self._client.delete(
                self._collection,
                points_selector=models.FilterSelector(filter=models.Filter(must=[doc_filter], must_not=[this_version])),
                wait=True,
            )
            self._client.set_payload(
                self._collection,
                payload={STATE_FIELD: LIVE_STATE},
                points=models.Filter(must=[doc_filter, this_version]),
                wait=True,
            )

        self._call(flip)

    def update_acl(self, doc_id: str, acl: AccessList) -> None:
        """Rewrite the ACL payload of every chunk of a document, without re-embedding."""
        payload = {ALLOW_FIELD: sorted(acl.allow), DENY_FIELD: sorted(acl.deny), "acl_hash": acl.fingerprint()}
        self._call(
            lambda: self._client.set_payload(
                self._collection, payload=payload, points=models.Filter(must=[_match("doc_id", doc_id)]), wait=True
            )
        )

    def delete_document(self, doc_id: str) -> None:
        self._call(
            lambda: self._client.delete(
                self._collection,
                points_selector=models.FilterSelector(filter=models.Filter(must=[_match("doc_id", doc_id)])),
                wait=True,
            )
        )

    # -- reads ---------------------------------------------------------------

    def document_states(self, *, tenant_id: str, source_id: str) -> dict[str, DocumentState]:
        """The live documents of one source, keyed by path (an admin read, no ACL filter)."""
        flt = models.Filter(
            must=[
                _match(TENANT_FIELD, tenant_id),
                _match("source_id", source_id),
                _match(STATE_FIELD, LIVE_STATE),
                models.FieldCondition(key="chunk_index", match=models.MatchValue(value=0)),
            ]
        )
        states: dict[str, DocumentState] = {}
        for payload in self._scroll(flt, STATE_FIELDS):
            states[payload["path"]] = document_state(payload)
        return states

    def documents(self, *, tenant_id: str, offset: int = 0, limit: int = 100) -> list[StoredDocument]:
        flt = models.Filter(
            must=[
                _match(TENANT_FIELD, tenant_id),
                _match(STATE_FIELD, LIVE_STATE),
                models.FieldCondition(key="chunk_index", match=models.MatchValue(value=0)),
            ]
        )
        found = [stored_document(payload) for payload in self._scroll(flt, DOCUMENT_FIELDS)]
        return page_of_documents(found, offset=offset, limit=limit)

    def chunk_ids(self, doc_id: str) -> set[str]:
        """Ids of every stored chunk of a document, staged or live (an admin read)."""
        ids: set[str] = set()
        for point_id, _ in self._scroll_points(models.Filter(must=[_match("doc_id", doc_id)]), []):
            ids.add(point_id)
        return ids

    def stored_acl(self, doc_id: str) -> AccessList | None:
        for payload in self._scroll(models.Filter(must=[_match("doc_id", doc_id)]), [ALLOW_FIELD, DENY_FIELD]):
            return AccessList(allow=frozenset(payload[ALLOW_FIELD]), deny=frozenset(payload[DENY_FIELD]))
        return None

    def _scroll(self, flt: models.Filter, fields: list[str]) -> Iterator[dict[str, Any]]:
        for _, payload in self._scroll_points(flt, fields):
            yield payload

    def _scroll_points(self, flt: models.Filter, fields: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        offset: Any = None
        while True:
            page, offset = self._call(
                lambda start=offset: self._client.scroll(  # type: ignore[misc]
                    self._collection,
                    scroll_filter=flt,
                    limit=512,
                    offset=start,
                    with_payload=fields or False,
                    with_vectors=False,
                )
            )
            for point in page:
                yield str(point.id), dict(point.payload or {})
            if offset is None:
                return

    def search(
        self,
        principal: Principal,
        vector: list[float],
        *,
        top_k: int,
        min_score: float | None = None,
        narrowing: models.Filter | None = None,
    ) -> list[Passage]:
        """The ``top_k`` chunks nearest to ``vector`` among those ``principal`` may read."""
        query_filter = security_filter(principal, narrowing=narrowing)
        response = self._call(
            lambda: self._client.query_points(
                self._collection,
                query=vector,
                using=DENSE_VECTOR,
                query_filter=query_filter,
                limit=top_k,
                score_threshold=min_score,
                with_payload=True,
                with_vectors=False,
            )
        )
        return [passage(point.id, point.payload, point.score) for point in response.points]

    def count(self, *, live_only: bool = True) -> int:
        flt = models.Filter(must=[_match(STATE_FIELD, LIVE_STATE)]) if live_only else None
        result = self._call(lambda: self._client.count(self._collection, count_filter=flt, exact=True))
        return int(result.count)

    def close(self) -> None:
        with self._lock:
            self._client.close()


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))
