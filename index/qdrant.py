"""The chunk index on qdrant-client: schema, payload indexes, writes and filtered search.

The index's only query method takes a :class:`Principal`; there is no way to
search without the security filter. Local (``:memory:`` or a path) and server
(URL) modes are the same qdrant-client code behind one constructor.

Replacing a document's content never lets a search see old and new chunks
mixed: new chunks are written ``staged`` (invisible to the security filter),
then the old version is deleted, then the new one is flipped ``live``. A
concurrent search sees the old version, nothing, or the new version.

Every chunk has a dense vector and BM25-style term weights (:mod:`index.sparse`).
A hybrid search is one Query API call: a dense and a sparse prefetch, each under
the caller's security filter, fused by reciprocal rank under the same filter
again (:func:`search_request`). IDF is computed over the chunks the filter lets
through, never the whole collection. Collections made before term weights
existed get the sparse vector added in place (``create_vector_name``), or, on a
server too old for that, are copied into a new collection behind an alias;
``backfill_sparse`` then computes the weights from the stored text.
"""

from __future__ import annotations

import logging
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from acl.access import AccessList
from acl.index_filter import (
    ALLOW_FIELD,
    DENY_FIELD,
    LIVE_STATE,
    READ_FIELD,
    STATE_FIELD,
    TENANT_FIELD,
    security_filter,
)
from acl.principal import Principal
from core.errors import IndexUnavailableError
from core.records import DocumentState, Passage, StoredDocument
from index.payload import (
    ACL_SOURCE_FIELDS,
    DOCUMENT_FIELDS,
    KEYWORD_FIELDS,
    PASSAGE_FIELDS,
    PUBLISH_ATTEMPTS,
    READ_FIELDS,
    STATE_FIELDS,
    TERM_FIELDS,
    acl_payload,
    acl_source,
    document_state,
    in_document_order,
    live_acl_payload,
    live_payload,
    new_version,
    page_of_documents,
    passage,
    read_key_groups,
    readable_chunk,
    staged_chunks,
    stored_document,
    term_text,
)
from index.ports import BackfillReport, IndexedDocument, ReadableChunk, RetrievalMode, SparseEncoder, SparseVector
from index.sparse import ENCODER_FIELD, SPARSE_VECTOR, Bm25Encoder, FusionParams

DENSE_VECTOR = "dense"
T = TypeVar("T")
log = logging.getLogger(__name__)


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

    def __init__(
        self,
        *,
        client: QdrantClient,
        collection: str,
        dimension: int,
        encoder: SparseEncoder | None = None,
        fusion: FusionParams | None = None,
    ) -> None:
        self._client = client
        self._collection = collection
        self._dimension = dimension
        self._encoder: SparseEncoder = encoder or Bm25Encoder()
        self._fusion = fusion or FusionParams()
        # False only for a collection made before term weights on a server that cannot add them
        # in place: chunks are then written dense-only until `backfill_sparse` rebuilds it.
        self._sparse_ready = True
        self._sparse_added = False  # ensure_schema added the sparse vector to an older collection
        # Sparse and hybrid searches need IDF scoped to the caller's chunks (Qdrant >= 1.19); an older
        # server may ignore the scope and use collection-wide counts, so searches stay dense there.
        self._idf_scoped = True
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
                self._create_collection(self._collection)
            elif not self._has_sparse():
                self._sparse_ready = self._sparse_added = self._add_sparse_vector()
            self._create_payload_indexes(self._collection)
            self._backfill_read_keys()
            version = self._client.info().version
            self._idf_scoped = scopes_idf(version)
            if not self._idf_scoped:
                log.warning("Qdrant %s cannot scope IDF to a caller's chunks: searches are dense-only", version)

        self._call(create)

    def _create_collection(self, name: str) -> None:
        self._client.create_collection(
            name,
            vectors_config={DENSE_VECTOR: models.VectorParams(size=self._dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )

    def _create_payload_indexes(self, name: str) -> None:
        with warnings.catch_warnings():
            # Local mode warns that payload indexes do nothing there; a server uses them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for field in KEYWORD_FIELDS:
                self._client.create_payload_index(name, field_name=field, field_schema=models.PayloadSchemaType.KEYWORD)
            self._client.create_payload_index(
                name, field_name="chunk_index", field_schema=models.PayloadSchemaType.INTEGER
            )

    def _backfill_read_keys(self) -> None:
        """Read keys for live chunks written before they existed (until then such chunks match nobody).

        Grouped by tenant and ACL fingerprint, and written only where both still hold,
        so an ACL rewrite meanwhile (another process, against a server) is never undone.
        Chunks that allow nobody stay empty.
        """
        missing = models.Filter(
            must=[
                _match(STATE_FIELD, LIVE_STATE),
                models.IsEmptyCondition(is_empty=models.PayloadField(key=READ_FIELD)),
            ],
            must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=ALLOW_FIELD))],
        )
        for group in read_key_groups(self._scroll_points(missing, ACL_SOURCE_FIELDS)):
            for start in range(0, len(group.ids), 256):
                still = models.Filter(
                    must=[
                        models.HasIdCondition(has_id=group.ids[start : start + 256]),
                        _match(TENANT_FIELD, group.tenant_id),
                        _match("acl_hash", group.acl_hash),
                        _match(STATE_FIELD, LIVE_STATE),
                    ]
                )
                self._client.set_payload(self._collection, payload={READ_FIELD: group.keys}, points=still, wait=True)

    def _has_sparse(self) -> bool:
        sparse = self._client.get_collection(self._collection).config.params.sparse_vectors or {}
        return SPARSE_VECTOR in sparse

    def _add_sparse_vector(self) -> bool:
        """Add the sparse vector to an existing collection; False where the server cannot (too old)."""
        config = models.SparseVectorNameConfig(sparse=models.SparseVectorConfig(modifier=models.Modifier.IDF))
        try:
            self._client.create_vector_name(self._collection, vector_name=SPARSE_VECTOR, vector_name_config=config)
        except UnexpectedResponse as exc:
            if exc.status_code not in (400, 404, 405):  # an endpoint this server does not have
                raise
            log.warning(
                "collection %s has no term weights and this Qdrant server cannot add them in place: "
                "searches are dense-only until `clearance index backfill-sparse` rebuilds it",
                self._collection,
            )
            return False
        return True

    def ping(self) -> None:
        self._call(lambda: self._client.collection_exists(self._collection))

    # -- writes --------------------------------------------------------------

    def replace_document(self, document: IndexedDocument) -> None:
        """Write a document's chunks, replacing any earlier version without mixing."""
        self.publish(document.meta.doc_id, self.stage_document(document))

    def stage_document(self, document: IndexedDocument) -> str:
        """Write a new version's chunks ``staged`` (invisible to every search); returns the version."""
        version = new_version(document.meta.content_hash)
        encoder = self._encoder if self._sparse_ready else None
        points = [
            models.PointStruct(id=chunk.id, vector=_vectors(chunk.vector, chunk.sparse), payload=chunk.payload)
            for chunk in staged_chunks(document, version, encoder=encoder)
        ]

        def write() -> None:
            for start in range(0, len(points), 256):
                self._client.upsert(self._collection, points=points[start : start + 256], wait=True)

        self._call(write)
        return version

    def publish(self, doc_id: str, version: str) -> None:
        """Delete every other version of the document, then make ``version`` live with its read keys.

        The read keys come from the staged chunks' own ACL, which an ACL rewrite keeps
        current. The flip is written only where that ACL still holds, and is read back:
        against a server another process may rewrite the ACL in between, and then the
        flip is done again with the new one (the chunks stay staged, so invisible, until it holds).
        """
        doc, this_version = _match("doc_id", doc_id), _match("version", version)
        staged = models.Filter(must=[doc, this_version], must_not=[_match(STATE_FIELD, LIVE_STATE)])

        def flip() -> bool:
            others = models.Filter(must=[doc], must_not=[this_version])
            self._client.delete(self._collection, points_selector=models.FilterSelector(filter=others), wait=True)
            for attempt in range(PUBLISH_ATTEMPTS + 1):
                page, _ = self._client.scroll(
                    self._collection, scroll_filter=staged, limit=1, with_payload=ACL_SOURCE_FIELDS, with_vectors=False
                )
                if not page:
                    return True
                if attempt == PUBLISH_ATTEMPTS:
                    break
                stored = dict(page[0].payload or {})
                tenant_id, acl_hash = acl_source(stored)
                unchanged = models.Filter(
                    must=[doc, this_version, _match(TENANT_FIELD, tenant_id), _match("acl_hash", acl_hash)]
                )
                self._client.set_payload(self._collection, payload=live_payload(stored), points=unchanged, wait=True)
            return False

        if not self._call(flip):
            raise IndexUnavailableError(f"the ACL of document {doc_id} kept changing while it was published")

    def update_acl(self, doc_id: str, acl: AccessList) -> None:
        """Rewrite the ACL payload of every chunk of a document, without re-embedding.

        Staged chunks first, then live ones with their read keys in the same write, so a
        publish in between either sees the new ACL or has its flip rewritten after it.
        """
        doc, live = _match("doc_id", doc_id), _match(STATE_FIELD, LIVE_STATE)

        def rewrite() -> None:
            page, _ = self._client.scroll(
                self._collection,
                scroll_filter=models.Filter(must=[doc]),
                limit=1,
                with_payload=[TENANT_FIELD],
                with_vectors=False,
            )
            if not page:
                return
            tenant_id = str((page[0].payload or {}).get(TENANT_FIELD) or "")
            not_live = models.Filter(must=[doc], must_not=[live])
            self._client.set_payload(self._collection, payload=acl_payload(acl), points=not_live, wait=True)
            self._client.set_payload(
                self._collection,
                payload=live_acl_payload(tenant_id, acl),
                points=models.Filter(must=[doc, live]),
                wait=True,
            )

        self._call(rewrite)

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
        text: str | None = None,
        mode: RetrievalMode | None = None,
    ) -> list[Passage]:
        """The ``top_k`` best chunks for the query among those ``principal`` may read (see the port)."""
        security = security_filter(principal, narrowing=narrowing)
        chosen = self._fusion.mode_for(mode, text)
        if chosen is not RetrievalMode.DENSE and not (self._sparse_ready and self._idf_scoped):
            chosen = RetrievalMode.DENSE  # an old server, or its collection before the rebuild: see ensure_schema
        sparse = self._encoder.encode_query(text or "") if chosen is not RetrievalMode.DENSE else None
        request = search_request(
            mode=chosen,
            security=security,
            vector=vector,
            sparse=sparse,
            top_k=top_k,
            min_score=min_score,
            fusion=self._fusion,
        )
        [response] = self._call(lambda: self._client.query_batch_points(self._collection, requests=[request]))
        return [passage(point.id, point.payload, point.score) for point in response.points]

    def read(self, principal: Principal, *, narrowing: models.Filter, limit: int) -> list[ReadableChunk]:
        """Chunks matching ``narrowing`` that ``principal`` may read, in document order (see the port)."""
        security = security_filter(principal, narrowing=narrowing)
        records, _ = self._call(
            lambda: self._client.scroll(
                self._collection, scroll_filter=security, limit=limit, with_payload=READ_FIELDS, with_vectors=False
            )
        )
        return in_document_order([readable_chunk(record.id, record.payload) for record in records])

    # -- the sparse migration ---------------------------------------------------

    def backfill_sparse(self, *, batch_size: int = 256) -> BackfillReport:
        """Term weights for every chunk written without them (or by another encoder), from the stored text.

        Dense vectors are kept, nothing is re-embedded. Resumable: a chunk is marked with
        the encoder's fingerprint when its weights are written, and only unmarked chunks
        are read. Run it while ingestion is paused: a rebuild (old servers) copies a
        snapshot of the collection, and writes made during the copy would be lost.
        """
        schema = "added" if self._sparse_added else "present"
        if not self._call(self._has_sparse):
            schema = "added" if self._call(self._add_sparse_vector) else "rebuilt"
            if schema == "rebuilt":
                self.rebuild_with_sparse()
            self._sparse_ready = True
        fingerprint = self._encoder.fingerprint
        stale = models.Filter(must_not=[_match(ENCODER_FIELD, fingerprint)])
        scanned = updated = 0
        offset: Any = None
        while True:
            page, offset = self._call(
                lambda start=offset: self._client.scroll(  # type: ignore[misc]
                    self._collection, scroll_filter=stale, limit=batch_size, offset=start, with_payload=TERM_FIELDS
                )
            )
            scanned += len(page)
            if page:
                self._call(lambda page=page: self._write_weights(page, fingerprint))  # type: ignore[misc]
                updated += len(page)
            if offset is None:
                return BackfillReport(scanned=scanned, updated=updated, schema=schema)

    def _write_weights(self, page: list[models.Record], fingerprint: str) -> None:
        encode = self._encoder.encode_document
        weights = [
            models.PointVectors(id=p.id, vector={SPARSE_VECTOR: _sparse(encode(term_text(p.payload or {})))})
            for p in page
        ]
        self._client.update_vectors(self._collection, points=weights, wait=True)
        # Marked after the weights are written: a crash in between re-does these chunks.
        ids: list[models.ExtendedPointId] = [p.id for p in page]
        self._client.set_payload(self._collection, payload={ENCODER_FIELD: fingerprint}, points=ids, wait=True)

    def rebuild_with_sparse(self) -> None:
        """Copy the collection into a new one with the sparse vector, then point the name at it (an alias).

        For servers that cannot add a named vector in place (``backfill_sparse`` calls it
        then). The copy keeps ids, dense vectors and payloads (ACLs included) as they are;
        term weights are added by the backfill that follows. Swapping a real collection
        for an alias is two steps (delete, then alias): searches fail, never widen, in between.
        """
        self._call(self._rebuild_with_sparse)
        self._sparse_ready = True

    def _rebuild_with_sparse(self) -> None:
        target = f"{self._collection}-{uuid.uuid4().hex[:8]}"
        self._create_collection(target)
        self._create_payload_indexes(target)
        offset: Any = None
        while True:
            page, offset = self._client.scroll(
                self._collection, limit=256, offset=offset, with_payload=True, with_vectors=[DENSE_VECTOR]
            )
            points = [
                models.PointStruct(id=p.id, vector={DENSE_VECTOR: _dense(p.vector)}, payload=p.payload or {})
                for p in page
            ]
            if points:
                self._client.upsert(target, points=points, wait=True)
            if offset is None:
                break
        aliased = {a.alias_name: a.collection_name for a in self._client.get_aliases().aliases}
        previous = aliased.get(self._collection)
        if previous is None:
            self._client.delete_collection(self._collection)
            changes: list[models.AliasOperations] = []
        else:
            changes = [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self._collection))]
        alias = models.CreateAlias(collection_name=target, alias_name=self._collection)
        changes.append(models.CreateAliasOperation(create_alias=alias))
        self._client.update_collection_aliases(change_aliases_operations=changes)
        if previous is not None:
            self._client.delete_collection(previous)

    def count(self, *, live_only: bool = True) -> int:
        flt = models.Filter(must=[_match(STATE_FIELD, LIVE_STATE)]) if live_only else None
        result = self._call(lambda: self._client.count(self._collection, count_filter=flt, exact=True))
        return int(result.count)

    def close(self) -> None:
        with self._lock:
            self._client.close()


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def search_request(
    *,
    mode: RetrievalMode,
    security: models.Filter,
    vector: list[float],
    sparse: SparseVector | None,
    top_k: int,
    min_score: float | None,
    fusion: FusionParams,
) -> models.QueryRequest:
    """The one Query API request of a search; ``security`` is applied to every branch and to the fusion.

    Qdrant also carries the outer filter into prefetches, but each branch gets its own
    copy so no branch depends on that: each one alone ranks only readable chunks.
    """
    shown: list[str] = list(PASSAGE_FIELDS)  # ACL fields never leave the engine
    candidates = max(top_k, fusion.candidates)
    dense = models.Prefetch(
        query=vector, using=DENSE_VECTOR, filter=security, limit=candidates, score_threshold=min_score
    )
    if mode is RetrievalMode.DENSE or sparse is None:
        return models.QueryRequest(
            query=vector, using=DENSE_VECTOR, filter=security, limit=top_k, score_threshold=min_score,
            with_payload=shown, with_vector=False,
        )  # fmt: skip
    terms = models.Prefetch(
        query=_sparse(sparse),
        using=SPARSE_VECTOR,
        filter=security,
        limit=candidates,
        # IDF over the chunks this caller may read: collection-wide statistics would leak term counts.
        params=models.SearchParams(idf=models.IdfCorpusParams(corpus=security)),
    )
    if mode is RetrievalMode.SPARSE:
        return models.QueryRequest(
            query=terms.query, using=SPARSE_VECTOR, filter=security, params=terms.params, limit=top_k,
            with_payload=shown, with_vector=False,
        )  # fmt: skip
    return models.QueryRequest(
        prefetch=[dense, terms],
        query=models.RrfQuery(rrf=models.Rrf(k=fusion.rrf_k, weights=[fusion.dense_weight, fusion.sparse_weight])),
        filter=security,
        limit=top_k,
        with_payload=shown,
        with_vector=False,
    )


def scopes_idf(version: str) -> bool:
    """Whether a Qdrant server of ``version`` computes IDF over a corpus filter (1.19 and later); unsure: no."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (1, 19)


def _vectors(dense: list[float], sparse: SparseVector | None) -> dict[str, Any]:
    vectors: dict[str, Any] = {DENSE_VECTOR: dense}
    if sparse is not None:
        vectors[SPARSE_VECTOR] = _sparse(sparse)
    return vectors


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _dense(stored: Any) -> list[float]:
    """The dense vector of a scrolled point (a dict of named vectors)."""
    if not isinstance(stored, dict) or DENSE_VECTOR not in stored:
        raise ValueError("a stored point has no dense vector")
    return [float(x) for x in stored[DENSE_VECTOR]]
