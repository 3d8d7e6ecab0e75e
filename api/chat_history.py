"""Where /v1/chat gets its history and keeps its answers: the caller's stored conversation, or the request.

Three cases, decided before the model is called:

- ``conversation_id``: that conversation of the caller's (404 for anyone
  else's) is the history, and the answer is appended to it;
- ``history``: a stateless request, answered from the history it carries;
  nothing is stored (clients that keep their own history work as before);
- neither: a new conversation, created when the answer is complete.

Without a state store, every request is stateless and ``conversation_id`` is
unknown (404).
"""

from __future__ import annotations

from acl.principal import Principal
from api.deps import owner_of
from api.schemas import ChatRequest
from core.errors import NotFoundError
from retrieval.documents import DocumentReader
from retrieval.records import AnswerResult
from store.conversations import ConversationStore, Exchange, ReadableChunks


def begin(
    conversations: ConversationStore | None,
    principal: Principal,
    body: ChatRequest,
    *,
    readable: ReadableChunks | None,
) -> Exchange:
    """The history for this question, and whether and where its answer is kept (blocking: a store read).

    ``readable``: which chunk ids the caller may read now (earlier answers citing others are not history).
    """
    client_history = [(turn.role.value, turn.content) for turn in body.history]
    owner = owner_of(principal)
    if conversations is not None:
        return conversations.begin(
            owner, conversation_id=body.conversation_id, client_history=client_history, readable=readable
        )
    if body.conversation_id is not None:
        raise NotFoundError("no such conversation")
    return Exchange(owner=owner, history=tuple(client_history), conversation_id=None, keep=False)


def readable_now(documents: DocumentReader | None, principal: Principal) -> ReadableChunks | None:
    """Which chunk ids the caller may read now, through the index's security filter; None (nobody) without one."""
    if documents is None:
        return None
    return lambda chunk_ids: documents.readable_chunks(principal, chunk_ids)


def finish(
    conversations: ConversationStore | None, exchange: Exchange, question: str, result: AnswerResult
) -> str | None:
    """Keeps the question and its answer where ``exchange`` says; the conversation id, or None (blocking)."""
    if conversations is None or not exchange.keep:
        return None
    return conversations.finish(exchange, question=question, result=result)
