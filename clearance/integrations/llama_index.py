"""A llama-index retriever over Clearance: permission-trimmed nodes with citation metadata.

``pip install 'clearance[llama-index]'``. The retriever acts for one person
and returns only passages that person may read, trimmed by Clearance inside
the index query; it plugs into any llama-index query engine or chat engine::

    from clearance.client import Client
    from clearance.integrations.llama_index import ClearanceRetriever
    from llama_index.core.query_engine import RetrieverQueryEngine

    retriever = ClearanceRetriever.over_http(Client(url, token=users_access_token), top_k=5)
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm)

Two ways in, neither of which can widen access:

* **Over HTTP** (:meth:`ClearanceRetriever.over_http`): through
  :class:`clearance.client.Client`, carrying the caller's own token; the
  server validates it and trims. Nodes then hold the passage's first 300
  characters (what ``/v1/search`` returns; metadata ``text_complete`` is False).
* **In-process** (:meth:`ClearanceRetriever.in_process`): through the answer
  service's ``search`` and a :class:`~acl.principal.Principal`; nodes hold the
  whole passage. The principal must come from token validation
  (``runtime.tokens.authenticate(token)``): a Principal constructed by hand
  bypasses authentication and is for trusted in-process use only (tests, a
  service that has already authenticated the person it acts for).

Node ids are Clearance chunk ids; metadata carries ``source``, ``title``,
``section`` and ``page`` (shown to the LLM, so it can cite), ``chunk_id``,
``citation`` (a readable label) and ``text_complete`` (hidden from the LLM).
ACL fields are never part of a node: Clearance never returns them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "clearance.integrations.llama_index needs llama-index-core: pip install 'clearance[llama-index]'"
    ) from exc

from acl.principal import Principal
from clearance.client import AsyncClient, Client, SearchHit
from core.records import Passage

log = logging.getLogger(__name__)

MAX_TOP_K = 50  # the API's bound, kept in-process too
# Shown to the LLM beside the text, so that it can name where a passage comes from.
_LLM_HIDDEN = ("chunk_id", "citation", "text_complete")


@dataclass(frozen=True, slots=True)
class Found:
    """One passage the caller may read, whichever way it was found."""

    chunk_id: str
    source: str
    title: str
    section: str | None
    page: int | None
    text: str
    score: float
    text_complete: bool

    @classmethod
    def of_hit(cls, hit: SearchHit) -> Found:
        return cls(hit.chunk_id, hit.source, hit.title, hit.section, hit.page, hit.snippet, hit.score, False)

    @classmethod
    def of_passage(cls, passage: Passage) -> Found:
        p = passage
        return cls(p.chunk_id, p.source, p.title, p.section, p.page, p.text, p.score, True)


class PassageSource(Protocol):
    """Where a retriever's passages come from: already trimmed to one caller, nearest first."""

    def search(self, query: str, top_k: int) -> list[Found]: ...

    async def asearch(self, query: str, top_k: int) -> list[Found]: ...


class PrincipalSearch(Protocol):
    """The shape of ``AnswerService.search``: passages ``principal`` may read, nearest first (audited)."""

    def __call__(self, principal: Principal, query: str, *, top_k: int | None = None) -> Sequence[Passage]: ...


class HttpPassages:
    """``/v1/search`` as the caller whose token the client carries."""

    def __init__(self, client: Client | None = None, *, async_client: AsyncClient | None = None) -> None:
        if client is None and async_client is None:
            raise ValueError("give a Client, an AsyncClient, or both")
        self._client = client
        self._async_client = async_client

    def search(self, query: str, top_k: int) -> list[Found]:
        if self._client is None:
            raise TypeError("this retriever was given only an AsyncClient: use aretrieve (or give a Client too)")
        response = self._client.search(query, top_k=top_k)
        _warn_if_narrowed(response.access.reasons)
        return [Found.of_hit(hit) for hit in response.results]

    async def asearch(self, query: str, top_k: int) -> list[Found]:
        if self._async_client is None:
            return await asyncio.to_thread(self.search, query, top_k)
        response = await self._async_client.search(query, top_k=top_k)
        _warn_if_narrowed(response.access.reasons)
        return [Found.of_hit(hit) for hit in response.results]


class InProcessPassages:
    """The answer service's search for one authenticated principal (see the module's note on principals)."""

    def __init__(self, *, search: PrincipalSearch, principal: Principal) -> None:
        # Fail closed: anything but a real Principal (None, a dict of claims) is refused here rather
        # than reaching the index as an identity.
        if not isinstance(principal, Principal):
            raise TypeError(f"principal must be an acl.principal.Principal, got {type(principal).__name__}")
        self._search = search
        self._principal = principal

    def search(self, query: str, top_k: int) -> list[Found]:
        _warn_if_narrowed(self._principal.narrowing_reasons)
        return [Found.of_passage(p) for p in self._search(self._principal, query, top_k=top_k)]

    async def asearch(self, query: str, top_k: int) -> list[Found]:
        # Embedding and the index query block: off the event loop.
        return await asyncio.to_thread(self.search, query, top_k)


class ClearanceRetriever(BaseRetriever):
    """Permission-trimmed :class:`NodeWithScore` s for one caller, nearest first."""

    def __init__(
        self,
        *,
        passages: PassageSource,
        top_k: int = 5,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        # No object_map: nodes are never resolved into other retrievers or query engines.
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self._passages = passages
        self._top_k = top_k

    @classmethod
    def over_http(
        cls,
        client: Client | None = None,
        *,
        async_client: AsyncClient | None = None,
        top_k: int = 5,
        callback_manager: CallbackManager | None = None,
    ) -> ClearanceRetriever:
        """Retrieval through the API as the caller whose token ``client`` (and ``async_client``) carry."""
        passages = HttpPassages(client, async_client=async_client)
        return cls(passages=passages, top_k=top_k, callback_manager=callback_manager)

    @classmethod
    def in_process(
        cls,
        *,
        search: PrincipalSearch,
        principal: Principal,
        top_k: int = 5,
        callback_manager: CallbackManager | None = None,
    ) -> ClearanceRetriever:
        """Retrieval through ``search`` (``runtime.answers.search``) as ``principal``, a validated caller."""
        passages = InProcessPassages(search=search, principal=principal)
        return cls(passages=passages, top_k=top_k, callback_manager=callback_manager)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [_node(found) for found in self._passages.search(query_bundle.query_str, self._top_k)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [_node(found) for found in await self._passages.asearch(query_bundle.query_str, self._top_k)]


def _node(found: Found) -> NodeWithScore:
    metadata: dict[str, Any] = {"source": found.source, "title": found.title}
    if found.section:
        metadata["section"] = found.section
    if found.page is not None:
        metadata["page"] = found.page
    metadata |= {"chunk_id": found.chunk_id, "citation": citation_label(found), "text_complete": found.text_complete}
    node = TextNode(
        id_=found.chunk_id,
        text=found.text,
        metadata=metadata,
        excluded_llm_metadata_keys=list(_LLM_HIDDEN),
        # Nothing here is embedded again; the keys are excluded so a pipeline that does cannot mix them in.
        excluded_embed_metadata_keys=list(metadata),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=found.source)},
    )
    return NodeWithScore(node=node, score=found.score)


def citation_label(found: Found) -> str:
    """``Title — Section, p. 3 (source)``: how a passage is named to a reader."""
    where = ", ".join(part for part in (found.section, f"p. {found.page}" if found.page is not None else None) if part)
    return f"{found.title}{' — ' + where if where else ''} ({found.source})"


def _warn_if_narrowed(reasons: Sequence[str]) -> None:
    if reasons:
        log.warning("the caller's access was narrowed (%s): results may be incomplete", ", ".join(reasons))
