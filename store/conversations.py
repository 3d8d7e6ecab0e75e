"""Conversations: each user's own multi-turn chats, kept so that follow-ups use them and the page can resume them.

A conversation belongs to one person, (tenant id, object id) from their token,
and every read, append and delete names that owner in the query itself: a
conversation of someone else, or of another tenant, is simply not found (404,
never 403, so its existence is not confirmed).

What is kept is what the asker was shown: each question as a user turn, each
answer as an assistant turn with its id (the audit record's), outcome and
citations. A request that brings its own ``history`` is stateless and stores
nothing (clients that keep their history keep working as before). An answer
that was abandoned mid-stream is not stored: a conversation holds complete
exchanges only, so the history a follow-up hands the model is always a
question followed by the answer that stood (the audit keeps the abandoned
answer with what was shown).

Bounds: a conversation holds at most :data:`MAX_MESSAGES` messages (then the
asker starts a new one), and a follow-up hands the model the last
:data:`HISTORY_MESSAGES` of them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Double, ForeignKey, Index, Integer, String, Text, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import InvalidInputError, NotFoundError
from retrieval.records import AnswerResult
from store.base import Base
from store.database import Database

MAX_MESSAGES = 200  # 100 questions and answers; a longer chat is a new conversation
ReadableChunks = Callable[[set[str]], set[str]]  # chunk ids in, the ones the caller may read now out
HIDDEN_ANSWER = "This answer is hidden: it cited documents you cannot open now."
HISTORY_MESSAGES = 20  # what a follow-up hands the model: the same bound as a stateless request's history
MAX_PAGE = 100
TITLE_CHARS = 80
_ID = re.compile(r"^[0-9a-f]{32}$")
_PURGE_BATCH = 500


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_owner_updated", "tenant_id", "owner", "updated_at"),
        Index("ix_conversations_updated", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))  # the asker's object id
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)  # the last exchange: what retention measures
    turns: Mapped[int] = mapped_column(Integer)  # messages so far, user and assistant


class MessageRow(Base):
    __tablename__ = "conversation_messages"

    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # user or assistant
    content: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Double)
    answer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    citations: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list, as the asker was shown them


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose conversations: the tenant and object id of a validated token, never anything a request names."""

    tenant_id: str
    object_id: str


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # "user" or "assistant"
    content: str
    at: float
    answer_id: str | None = None
    outcome: str | None = None
    citations: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    id: str
    title: str
    created_at: float
    updated_at: float
    turns: int


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    title: str
    created_at: float
    updated_at: float
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One question's place: the history the model gets, and where (if anywhere) the answer is kept.

    ``keep`` is False for a stateless request (the client sent its own history):
    then nothing is stored. With ``keep`` and no ``conversation_id``, the answer
    starts a new conversation.
    """

    owner: Owner
    history: tuple[tuple[str, str], ...]
    conversation_id: str | None
    keep: bool


def title_of(question: str) -> str:
    """A conversation's title: its first question on one line, cut at a word near TITLE_CHARS."""
    text = " ".join(question.split())
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[: TITLE_CHARS - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > TITLE_CHARS // 2 else cut).rstrip() + "…"


class ConversationStore:
    """Conversations in the state store, always read and written on behalf of their owner."""

    def __init__(self, *, database: Database, clock: Callable[[], float] = time.time) -> None:
        self._database = database
        self._clock = clock

    # -- the chat route ---------------------------------------------------------

    def begin(
        self,
        owner: Owner,
        *,
        conversation_id: str | None,
        client_history: Sequence[tuple[str, str]] = (),
        readable: ReadableChunks | None = None,
    ) -> Exchange:
        """Where a question stands before it is answered; NotFoundError for a conversation the owner lacks.

        ``readable`` says which of some chunk ids the caller may read now: an
        earlier answer that cited anything else (the caller has since lost access,
        or this token is narrowed) is left out of the history the model gets.
        Without it no cited answer is handed on.
        """
        if conversation_id is None:
            history = tuple(client_history)
            return Exchange(owner=owner, history=history, conversation_id=None, keep=not history)
        if client_history:
            raise InvalidInputError("send either conversation_id or history, not both")
        with self._database.read() as session:
            row = _owned(session, owner, conversation_id)
            if row.turns + 2 > MAX_MESSAGES:
                raise InvalidInputError(f"this conversation has reached {MAX_MESSAGES} messages: start a new one")
            recent = session.execute(
                select(MessageRow)
                .where(MessageRow.conversation_id == row.id)
                .order_by(MessageRow.position.desc())
                .limit(HISTORY_MESSAGES)
            ).scalars()
            messages = [_message(message) for message in reversed(list(recent))]
        shown = still_readable(messages, readable)
        history = tuple((m.role, m.content) for m in shown if not hidden(m))
        return Exchange(owner=owner, history=history, conversation_id=row.id, keep=True)

    def finish(self, exchange: Exchange, *, question: str, result: AnswerResult) -> str | None:
        """Keeps the question and its answer; returns the conversation's id (None for a stateless request)."""
        if not exchange.keep:
            return None
        now = self._clock()
        with self._database.write() as session:
            if exchange.conversation_id is None:
                row = ConversationRow(
                    id=uuid.uuid4().hex,
                    tenant_id=exchange.owner.tenant_id,
                    owner=exchange.owner.object_id,
                    title=title_of(question),
                    created_at=now,
                    updated_at=now,
                    turns=0,
                )
                session.add(row)
                session.flush()  # the conversation exists before its messages reference it
            else:
                # Locked: two answers finishing together in one conversation take consecutive positions.
                row = _owned(session, exchange.owner, exchange.conversation_id, lock=True)
                if row.turns + 2 > MAX_MESSAGES:
                    raise InvalidInputError(f"this conversation has reached {MAX_MESSAGES} messages: start a new one")
            session.add_all(
                [
                    MessageRow(conversation_id=row.id, position=row.turns, role="user", content=question, at=now),
                    MessageRow(
                        conversation_id=row.id,
                        position=row.turns + 1,
                        role="assistant",
                        content=result.answer,
                        at=now,
                        answer_id=result.id,
                        outcome=result.outcome.value,
                        citations=json.dumps([dataclasses.asdict(c) for c in result.citations], ensure_ascii=True),
                    ),
                ]
            )
            row.turns += 2
            row.updated_at = now
            return row.id

    # -- the conversation routes -----------------------------------------------

    def list(self, owner: Owner, *, limit: int = 20, offset: int = 0) -> list[ConversationSummary]:
        """The owner's conversations, most recently active first."""
        query = (
            select(ConversationRow)
            .where(ConversationRow.tenant_id == owner.tenant_id, ConversationRow.owner == owner.object_id)
            .order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc())
            .limit(min(max(limit, 1), MAX_PAGE))
            .offset(max(offset, 0))
        )
        with self._database.read() as session:
            return [_summary(row) for row in session.execute(query).scalars()]

    def get(self, owner: Owner, conversation_id: str) -> Conversation:
        with self._database.read() as session:
            row = _owned(session, owner, conversation_id)
            messages = session.execute(
                select(MessageRow).where(MessageRow.conversation_id == row.id).order_by(MessageRow.position)
            ).scalars()
            return Conversation(
                id=row.id,
                title=row.title,
                created_at=row.created_at,
                updated_at=row.updated_at,
                messages=tuple(_message(message) for message in messages),
            )

    def delete(self, owner: Owner, conversation_id: str) -> None:
        with self._database.write() as session:
            row = _owned(session, owner, conversation_id, lock=True)
            _delete_ids(session, [row.id])

    # -- retention and forget-user ----------------------------------------------

    def delete_user(self, *, tenant_id: str, object_id: str) -> int:
        """Forget-user: every conversation of one person; returns how many."""
        theirs = (ConversationRow.tenant_id == tenant_id, ConversationRow.owner == object_id)
        with self._database.write() as session:
            ids = list(session.execute(select(ConversationRow.id).where(*theirs)).scalars())
            _delete_ids(session, ids)
        return len(ids)

    def count_older_than(self, *, cutoff: float) -> int:
        """Conversations whose last exchange is older than ``cutoff`` (epoch seconds): what a purge would remove."""
        with self._database.read() as session:
            query = select(func.count()).select_from(ConversationRow).where(ConversationRow.updated_at < cutoff)
            return int(session.execute(query).scalar_one())

    def delete_older_than(self, *, cutoff: float) -> int:
        """Deletes conversations whose last exchange is older than ``cutoff``, in short batches; returns how many."""
        removed = 0
        while True:
            with self._database.write() as session:
                ids = list(
                    session.execute(
                        select(ConversationRow.id).where(ConversationRow.updated_at < cutoff).limit(_PURGE_BATCH)
                    ).scalars()
                )
                _delete_ids(session, ids)
            removed += len(ids)
            if len(ids) < _PURGE_BATCH:
                return removed


def _owned(session: Session, owner: Owner, conversation_id: str, *, lock: bool = False) -> ConversationRow:
    """The owner's conversation, or NotFoundError: the owner is part of the query, not a check after it."""
    if not _ID.fullmatch(conversation_id):
        raise NotFoundError("no such conversation")
    query = select(ConversationRow).where(
        ConversationRow.id == conversation_id,
        ConversationRow.tenant_id == owner.tenant_id,
        ConversationRow.owner == owner.object_id,
    )
    if lock:
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        raise NotFoundError("no such conversation")
    return row


def _delete_ids(session: Session, ids: Sequence[str]) -> None:
    if not ids:
        return
    # Messages first: the cascade is declared too, but an explicit delete does not depend on it being enforced.
    session.execute(delete(MessageRow).where(MessageRow.conversation_id.in_(ids)))
    session.execute(delete(ConversationRow).where(ConversationRow.id.in_(ids)))


def _summary(row: ConversationRow) -> ConversationSummary:
    return ConversationSummary(
        id=row.id, title=row.title, created_at=row.created_at, updated_at=row.updated_at, turns=row.turns
    )


def _message(row: MessageRow) -> Message:
    return Message(
        role=row.role,
        content=row.content,
        at=row.at,
        answer_id=row.answer_id,
        outcome=row.outcome,
        citations=tuple(json.loads(row.citations)) if row.citations is not None else None,
    )


def cited_chunks(message: Message) -> set[str]:
    return {str(c.get("chunk_id")) for c in message.citations or () if isinstance(c, dict)}


def still_readable(messages: Sequence[Message], readable: ReadableChunks | None) -> list[Message]:
    """``messages`` as the caller may see them now: an answer citing a chunk they cannot read is hidden.

    A stored answer is a copy of documents' text; it is shown (and handed to the
    model as history) only while every passage it cited is still readable by the
    caller's current token, checked in the index like any search. Unsure (no
    check available) means hidden.
    """
    wanted = set().union(*(cited_chunks(m) for m in messages)) if messages else set()
    allowed = readable(wanted) if readable is not None and wanted else set()
    return [
        m
        if m.role != "assistant" or cited_chunks(m) <= allowed
        else dataclasses.replace(m, content=HIDDEN_ANSWER, citations=())
        for m in messages
    ]


def hidden(message: Message) -> bool:
    return message.role == "assistant" and message.content == HIDDEN_ANSWER and message.citations == ()
