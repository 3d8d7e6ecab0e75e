"""The Teams bot: each question is answered by the Clearance API as the person who asked it.

A turn goes: the channel token was checked by the endpoint; the SDK's user authorization
gets the person's single sign-on token from the Bot Framework token service (Teams' token
exchange, or an OAuth card when consent or sign-in is needed, and then no answer); that
token is exchanged on-behalf-of for a Clearance API token; the API answers with that
token, so its trimming, citation checks and audit are the person's own. There is no
service identity that could read documents.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from microsoft_agents.activity import Activity, ActivityTypes, ChannelAccount, InvokeResponse
from microsoft_agents.activity.entity import StreamInfo
from microsoft_agents.hosting.core import AgentApplication, Authorization, MemoryStorage, TurnContext, TurnState
from microsoft_agents.hosting.core.app import ApplicationOptions
from microsoft_agents.hosting.core.app.oauth import AuthHandler

from clearance.client import AsyncClient
from clearance.client.errors import ClearanceClientError, UnauthorizedError
from clearance.client.events import CitationsEvent, DoneEvent, ReplaceEvent, TokenEvent
from clearance.client.models import Citation
from clearance.teams.citations import answer_activity
from clearance.teams.identity import BotConnections

log = logging.getLogger(__name__)

SSO_HANDLER = "sso"
_AT_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class ClearanceApi:
    """Where the Clearance API is; ``transport`` lets tests serve it in process."""

    base_url: str
    scope: str  # what the bot asks on-behalf-of for, e.g. api://clearance/.default
    transport: httpx.AsyncBaseTransport | None = None
    allow_insecure_http: bool = False

    def client(self, token: str) -> AsyncClient:
        return AsyncClient(
            self.base_url, token=token, transport=self.transport, allow_insecure_http=self.allow_insecure_http
        )

    async def feedback(self, token: str, body: dict[str, Any]) -> int:
        async with httpx.AsyncClient(base_url=self.base_url, transport=self.transport) as http:
            response = await http.post("/v1/feedback", json=body, headers={"Authorization": f"Bearer {token}"})
            return response.status_code


@dataclass(frozen=True)
class BotOptions:
    sso_connection: str  # the Azure Bot resource's OAuth connection name
    stream_interval_seconds: float = 1.0  # Teams throttles streamed updates to about one a second
    feedback_enabled: bool = True


@dataclass(frozen=True)
class _Answered:
    answer_id: str
    asker: str  # the Teams user id (29:...) whose identity answered


class ClearanceBot:
    def __init__(
        self,
        *,
        connections: BotConnections,
        api: ClearanceApi,
        options: BotOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._options = options
        self._clock = clock
        storage = MemoryStorage()
        handler = AuthHandler(
            name=SSO_HANDLER,
            title="Sign in to Clearance",
            text="Sign in",
            abs_oauth_connection_name=options.sso_connection,
            # No on-behalf-of here: the route's sign-in only fetches the SSO token; the exchange is
            # done in the handler, where a refusal can be answered with "sign in again".
            auth_type="UserAuthorization",
        )
        authorization = Authorization(storage, connections, auth_handlers={SSO_HANDLER: handler})
        self.app: AgentApplication[TurnState] = AgentApplication[TurnState](
            ApplicationOptions(storage=storage), authorization=authorization
        )
        # Which answer each reply carries, for the feedback buttons (bounded: oldest dropped first).
        self._answers: dict[tuple[str, str], _Answered] = {}
        self.app.activity(ActivityTypes.message, auth_handlers=[SSO_HANDLER])(self._on_message)
        self.app.invoke("message/submitAction", auth_handlers=[SSO_HANDLER])(self._on_feedback)

    async def _clearance_token(self, context: TurnContext) -> str | None:
        """The person's own Clearance API token (on-behalf-of); None when it cannot be had."""
        try:
            response = await self.app.auth.exchange_token(
                context, [self._api.scope], SSO_HANDLER, exchange_connection="bot"
            )
        except Exception as exc:  # msal, token service or network: the person must sign in again
            log.warning("on-behalf-of exchange failed: %s", type(exc).__name__)
            return None
        token = response.token if response and response.token else None
        # The SDK hands back a token it deems not exchangeable unchanged: only a token for the
        # Clearance API itself is used, never the SSO token (or anything else) in its place.
        if token is None or _audience(token) != self._api.scope.removesuffix("/.default"):
            return None
        return token

    async def _on_message(self, context: TurnContext, state: TurnState) -> None:
        activity = context.activity
        question = _AT_MENTION.sub(" ", activity.text or "").strip()
        if not question:
            return
        if len(question) > MAX_QUESTION_CHARS:
            await context.send_activity(f"Please ask in at most {MAX_QUESTION_CHARS} characters.")
            return
        token = await self._clearance_token(context)
        if token is None:
            await self._ask_to_sign_in_again(context)
            return
        conversation_type = (activity.conversation.conversation_type or "personal") if activity.conversation else ""
        personal = conversation_type == "personal"
        asker = None if personal else ChannelAccount(id=activity.from_property.id, name=activity.from_property.name)
        try:
            if personal:
                text, citations, answer_id, reply_id = await self._stream_answer(context, token, question)
            else:
                await context.send_activity(Activity(type=ActivityTypes.typing))
                text, citations, answer_id = await self._answer(token, question)
                reply = answer_activity(
                    text=text, citations=citations, asker=asker, feedback=self._feedback_on(answer_id)
                )
                sent = await context.send_activity(reply)
                reply_id = sent.id if sent else None
        except UnauthorizedError:
            await self._ask_to_sign_in_again(context)
            return
        except ClearanceClientError as exc:
            log.warning("Clearance API refused or failed: %s", type(exc).__name__)
            await context.send_activity("Clearance could not answer right now. Please try again later.")
            return
        if answer_id and reply_id:
            self._remember(activity.conversation.id, reply_id, _Answered(answer_id, activity.from_property.id))

    async def _ask_to_sign_in_again(self, context: TurnContext) -> None:
        # Fail closed: no answer without the asker's own identity. Signing out drops the token the
        # token service holds, so the next message starts sign-in over (Teams SSO or the OAuth card).
        await self.app.auth.sign_out(context, SSO_HANDLER)
        await context.send_activity("I could not confirm who you are. Please ask again to sign in.")

    async def _answer(self, token: str, question: str) -> tuple[str, tuple[Citation, ...], str | None]:
        async with self._api.client(token) as client:
            response = await client.chat(question)
        return response.answer, response.citations, response.answer_id

    async def _stream_answer(
        self, context: TurnContext, token: str, question: str
    ) -> tuple[str, tuple[Citation, ...], str | None, str | None]:
        """Teams streaming (personal chats): an informative update, growing text, then the final message."""
        stream = _TeamsStream(context, interval=self._options.stream_interval_seconds, clock=self._clock)
        await stream.inform("Searching the documents you can open…")
        text, answer_id = "", None
        citations: tuple[Citation, ...] = ()
        async with self._api.client(token) as client, await client.chat_stream(question) as events:
            async for event in events:
                if isinstance(event, TokenEvent):
                    text += event.text
                    await stream.update(text)
                elif isinstance(event, ReplaceEvent):
                    text = event.answer
                elif isinstance(event, CitationsEvent):
                    citations = event.citations
                elif isinstance(event, DoneEvent):
                    text = event.answer
                    answer_id = event.answer_id
        final = answer_activity(text=text, citations=citations, feedback=self._feedback_on(answer_id))
        reply_id = await stream.finish(final)
        return text, citations, answer_id, reply_id

    def _feedback_on(self, answer_id: str | None) -> bool:
        return self._options.feedback_enabled and answer_id is not None

    def _remember(self, conversation_id: str, reply_id: str, answered: _Answered) -> None:
        self._answers[(conversation_id, reply_id)] = answered
        while len(self._answers) > 10_000:
            self._answers.pop(next(iter(self._answers)))

    async def _on_feedback(self, context: TurnContext, state: TurnState) -> None:
        """Teams' feedback buttons: sent to ``POST /v1/feedback`` with the clicking person's own token."""
        activity = context.activity
        value = activity.value if isinstance(activity.value, dict) else {}
        answered = self._answers.get((activity.conversation.id, activity.reply_to_id or ""))
        status = 200
        if value.get("actionName") == "feedback" and answered and answered.asker == activity.from_property.id:
            action = value.get("actionValue") or {}
            rating = {"like": "up", "dislike": "down"}.get(str(action.get("reaction")))
            comment = _feedback_text(action.get("feedback"))
            token = await self._clearance_token(context)
            if rating and token:
                body = {"answer_id": answered.answer_id, "rating": rating, "comment": comment}
                api_status = await self._api.feedback(token, body)
                if api_status >= 400:
                    log.warning("feedback not recorded: HTTP %s", api_status)
                    status = 500
        await context.send_activity(
            Activity(
                type=ActivityTypes.invoke_response,
                value=InvokeResponse(status=status, body={}).model_dump(exclude_unset=True),
            )
        )


def _audience(token: str) -> str | None:
    try:
        aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
    except jwt.PyJWTError:
        return None
    return aud if isinstance(aud, str) else None


def _feedback_text(raw: object) -> str | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw[:2000]
    text = parsed.get("feedbackText") if isinstance(parsed, dict) else None
    return str(text)[:2000] if text else None


class _TeamsStream:
    """Teams' streaming protocol: typing activities with a streaminfo entity, then one final message."""

    def __init__(self, context: TurnContext, *, interval: float, clock: Callable[[], float]) -> None:
        self._context = context
        self._interval = interval
        self._clock = clock
        self._sequence = 0
        self._stream_id: str | None = None
        self._last_sent = float("-inf")

    async def inform(self, text: str) -> None:
        await self._send(text, "informative")

    async def update(self, text: str) -> None:
        if self._clock() - self._last_sent >= self._interval:
            await self._send(text, "streaming")

    async def finish(self, final: Activity) -> str | None:
        info = StreamInfo(stream_type="final", stream_id=self._stream_id or "")
        final.entities = [info, *(final.entities or [])]
        if self._stream_id:
            final.id = self._stream_id
        sent = await self._context.send_activity(final)
        return self._stream_id or (sent.id if sent else None)

    async def _send(self, text: str, kind: str) -> None:
        self._sequence += 1
        info = StreamInfo(stream_type=kind, stream_sequence=self._sequence, stream_id=self._stream_id or "")
        activity = Activity(type=ActivityTypes.typing, text=text, entities=[info])
        if self._stream_id:
            activity.id = self._stream_id
        sent = await self._context.send_activity(activity)
        if self._stream_id is None and sent is not None:
            self._stream_id = sent.id
        self._last_sent = self._clock()
