"""Each user's own conversations: list, read, delete. Anyone else's, in any tenant, is 404.

The owner is always the caller's token (tenant id and object id); no route takes
a user or tenant from the request. Continuing a conversation is ``POST /v1/chat``
with its ``conversation_id``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from api import chat_history
from api.deps import Conversations, CurrentPrincipal, components_of, owner_of
from store.conversations import MAX_PAGE, Conversation, ConversationSummary, Message, still_readable

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


class ConversationOut(BaseModel):
    id: str
    title: str = Field(description="the first question, on one line, shortened")
    created_at: float = Field(description="epoch seconds")
    updated_at: float = Field(description="epoch seconds of the last exchange")
    turns: int = Field(description="messages so far, questions and answers")

    @classmethod
    def of(cls, summary: ConversationSummary) -> Self:
        return cls(
            id=summary.id,
            title=summary.title,
            created_at=summary.created_at,
            updated_at=summary.updated_at,
            turns=summary.turns,
        )


class ConversationList(BaseModel):
    conversations: list[ConversationOut]


class MessageOut(BaseModel):
    role: str = Field(description="user or assistant")
    content: str
    at: float = Field(description="epoch seconds")
    answer_id: str | None = Field(default=None, description="assistant turns: the answer's id (feedback uses it)")
    outcome: str | None = Field(default=None, description="assistant turns: grounded, extractive_fallback, abstained")
    citations: list[dict[str, Any]] | None = Field(default=None, description="assistant turns: as they were shown")

    @classmethod
    def of(cls, message: Message) -> Self:
        return cls(
            role=message.role,
            content=message.content,
            at=message.at,
            answer_id=message.answer_id,
            outcome=message.outcome,
            citations=list(message.citations) if message.citations is not None else None,
        )


class ConversationDetail(BaseModel):
    id: str
    title: str
    created_at: float
    updated_at: float
    messages: list[MessageOut]

    @classmethod
    def of(cls, conversation: Conversation) -> Self:
        return cls(
            id=conversation.id,
            title=conversation.title,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
            messages=[MessageOut.of(message) for message in conversation.messages],
        )


@router.get("", summary="Your conversations, most recently active first")
async def list_conversations(
    principal: CurrentPrincipal,
    conversations: Conversations,
    limit: int = Query(default=20, ge=1, le=MAX_PAGE),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> ConversationList:
    found = await to_thread.run_sync(lambda: conversations.list(owner_of(principal), limit=limit, offset=offset))
    return ConversationList(conversations=[ConversationOut.of(summary) for summary in found])


@router.get(
    "/{conversation_id}",
    summary="One of your conversations, every message in order",
    responses={404: {"description": "no such conversation of yours"}},
)
async def get_conversation(
    conversation_id: str, principal: CurrentPrincipal, conversations: Conversations, request: Request
) -> ConversationDetail:
    """Answers that cited a passage the caller cannot read now (access removed, a narrowed token) are hidden."""
    readable = chat_history.readable_now(components_of(request).documents, principal)

    def current() -> Conversation:
        found = conversations.get(owner_of(principal), conversation_id)
        return dataclasses.replace(found, messages=tuple(still_readable(found.messages, readable)))

    return ConversationDetail.of(await to_thread.run_sync(current))


@router.delete(
    "/{conversation_id}",
    status_code=204,
    summary="Delete one of your conversations",
    responses={404: {"description": "no such conversation of yours"}},
)
async def delete_conversation(
    conversation_id: str, principal: CurrentPrincipal, conversations: Conversations
) -> Response:
    await to_thread.run_sync(lambda: conversations.delete(owner_of(principal), conversation_id))
    return Response(status_code=204)
