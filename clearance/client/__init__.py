"""A typed Python client for the Clearance HTTP API (sync and asyncio, over httpx).

::

    from clearance.client import Client

    with Client("https://clearance.example.com", token=access_token) as clearance:
        for hit in clearance.search("travel per diem").results:
            print(hit.score, hit.source, hit.snippet)
        answer = clearance.chat("What is the meal per diem in Berlin?")
        with clearance.chat_stream("And in Paris?") as events:
            for event in events:
                ...  # TokenEvent, ReplaceEvent, CitationsEvent, DoneEvent

The token is the caller's own access token for the API: every result is
trimmed to what that person may read. This package needs only httpx,
httpx-sse and pydantic: nothing of the server.
"""

from clearance.client.aio import AsyncChatStream, AsyncClient, AsyncJobs
from clearance.client.errors import (
    AnswerStreamError,
    BadRequestError,
    ClearanceClientError,
    ContentTooLargeError,
    FieldError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    ProblemError,
    RequestTimeoutError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
)
from clearance.client.events import ChatEvent, CitationsEvent, DoneEvent, ReplaceEvent, TokenEvent
from clearance.client.models import (
    Access,
    ChatResponse,
    Citation,
    FileIssue,
    Job,
    Me,
    SearchHit,
    SearchResponse,
    Turn,
)
from clearance.client.sync import ChatStream, Client, Jobs

__all__ = [
    "Access",
    "AnswerStreamError",
    "AsyncChatStream",
    "AsyncClient",
    "AsyncJobs",
    "BadRequestError",
    "ChatEvent",
    "ChatResponse",
    "ChatStream",
    "Citation",
    "CitationsEvent",
    "ClearanceClientError",
    "Client",
    "ContentTooLargeError",
    "DoneEvent",
    "FieldError",
    "FileIssue",
    "ForbiddenError",
    "InvalidRequestError",
    "Job",
    "Jobs",
    "Me",
    "NotFoundError",
    "ProblemError",
    "ReplaceEvent",
    "RequestTimeoutError",
    "SearchHit",
    "SearchResponse",
    "ServerError",
    "ServiceUnavailableError",
    "TokenEvent",
    "TransportError",
    "Turn",
    "UnauthorizedError",
    "UnexpectedResponseError",
]
