"""A Clearance answer as a Teams message: text with [n] markers and Teams' AI citation entity.

Teams renders the ``https://schema.org/Message`` entity with ``additionalType
["AIGeneratedContent"]`` as the "AI generated" label, and each ``Claim`` in its citation
list as the pop-up behind the matching ``[n]`` in the text. Only passages the answer
cites are listed (the API has already checked them against what this person may read);
Teams allows at most 20 and an abstract of at most 160 characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from microsoft_agents.activity import Activity, ActivityTypes, ChannelAccount, Mention
from microsoft_agents.activity.entity import AIEntity, ClientCitation, ClientCitationAppearance, Entity, EntityTypes

from clearance.client.models import Citation

MAX_CITATIONS = 20
MAX_ABSTRACT = 160
_MARKER = re.compile(r"\[(\d+)\]")


def cited_ids(text: str) -> set[int]:
    return {int(n) for n in _MARKER.findall(text)}


def client_citations(answer: str, citations: Sequence[Citation]) -> list[ClientCitation]:
    """The answer's citations that its text refers to, as Teams citation claims."""
    used = cited_ids(answer)
    claims: list[ClientCitation] = []
    for citation in citations:
        if citation.id not in used or len(claims) >= MAX_CITATIONS:
            continue
        where = ", ".join(
            part for part in (citation.section or "", f"page {citation.page}" if citation.page else "") if part
        )
        claims.append(
            ClientCitation(
                position=citation.id,
                appearance=ClientCitationAppearance(
                    name=_shorten(citation.title or citation.source, 80),
                    abstract=_shorten(citation.snippet, MAX_ABSTRACT),
                    keywords=[_shorten(citation.source, 28)] + ([_shorten(where, 28)] if where else []),
                ),
            )
        )
    return claims


def answer_activity(
    *,
    text: str,
    citations: Sequence[Citation],
    asker: ChannelAccount | None = None,
    feedback: bool = False,
) -> Activity:
    """The final message: the AI label, its citations, an @mention of the asker where given, feedback buttons."""
    entities: list[Entity] = []
    if asker is not None:
        # In a group chat or channel everyone sees the reply: say whose access it was built with.
        mention_text = f"<at>{_escape(asker.name or 'you')}</at>"
        text = f"{mention_text}, answered from documents you can open:\n\n{text}"
        entities.append(Mention(mentioned=asker, text=mention_text, type=EntityTypes.MENTION))
    # Every field set explicitly: the connector client leaves out fields left at their defaults.
    entities.append(
        AIEntity(
            type="https://schema.org/Message",
            id="",
            additional_type=["AIGeneratedContent"],
            citation=client_citations(text, citations) or None,
        )
    )
    channel_data = {"feedbackLoopEnabled": True} if feedback else None
    return Activity(
        type=ActivityTypes.message,
        text=text,
        text_format="markdown",
        entities=entities,
        channel_data=channel_data,
    )


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _escape(text: str) -> str:
    return text.replace("<", "").replace(">", "")
