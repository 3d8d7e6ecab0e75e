"""The typed Python client against the real app, served by uvicorn on a loopback port.

Every request crosses a real socket: tokens are real RS256 tokens of the
development identity provider, errors are the app's own problem+json, and an
abandoned stream is a real TCP close that the server must notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from clearance.client import (
    AnswerStreamError,
    AsyncClient,
    CitationsEvent,
    Client,
    ContentTooLargeError,
    DoneEvent,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    ReplaceEvent,
    TokenEvent,
    Turn,
    UnauthorizedError,
)
from clearance.client.events import ChatEvent
from clearance.compose import Runtime, build_api, build_runtime
from clearance.settings import IndexSettings, IngestSettings, Mode, ServerSettings, Settings
from core.cancel import Cancellation
from core.records import Passage
from index.embedding import SentenceTransformerEmbedder
from ingest.source import FilesystemSource
from retrieval.answer import AnswerService
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.prompts import PromptTemplate
from tests.conftest import REPO_ROOT, TENANT, write_users
from tests.test_permissions import ALICE, FIN, build_corpus

ADMIN_OID = "a0000000-0000-4000-8000-000000000001"
FINANCE_FACT = "12.4 million"
MAX_BODY = 16 * 1024
CRASH = "Crash: "  # a question the held model fails on, mid-answer


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[tuple[str, uvicorn.Server]]:
    """``app`` on a loopback port of its own (bound before the server starts: no port race)."""
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every plain response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class HeldGenerator:
    """The extractive answer, then a model that keeps writing until it is stopped (at most 30 s).

    Stands in for a slow local model (a process boundary): the test can leave
    mid-answer and see whether the server stopped generating. The server stops
    it either way it can: the cancellation flag, or closing the generator.
    """

    def __init__(self) -> None:
        self._inner = ExtractiveGenerator()
        self.stopped: list[threading.Event] = []  # one per answer, set when it was stopped early

    @property
    def name(self) -> str:
        return "held"

    def generate(
        self,
        *,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
        prompt: PromptTemplate | None = None,
    ) -> Iterator[str]:
        stopped = threading.Event()
        self.stopped.append(stopped)
        deadline = time.monotonic() + 30
        try:
            yield self._inner.answer(question=question, passages=passages)
            yield " Further"  # a sentence begins: the one before it is complete and gets streamed
            if question.startswith(CRASH):
                raise RuntimeError("the model process died")
            while time.monotonic() < deadline and not (cancel is not None and cancel.cancelled):
                time.sleep(0.01)
        finally:
            if time.monotonic() < deadline:
                stopped.set()


@dataclasses.dataclass
class World:
    runtime: Runtime
    corpus: Path
    url: str  # the app with the extractive generator
    held_url: str  # the same app whose model holds until cancelled
    held_server: uvicorn.Server
    held: HeldGenerator

    def token(self, *groups: str, oid: str = ALICE, roles: Sequence[str] = ()) -> str:
        assert self.runtime.dev is not None
        return self.runtime.dev.idp.mint(tenant_id=TENANT, object_id=oid, groups=groups, roles=roles)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[World]:
    root = tmp_path_factory.mktemp("client")
    corpus = build_corpus(root / "corpus")
    settings = Settings(
        data_dir=root / "data",
        users_file=write_users(root / "users.json"),
        index=IndexSettings(location=":memory:"),
        mode=Mode.DEVELOPMENT,
        ingest=IngestSettings(allowed_roots={TENANT: [corpus]}, isolate_parsing=False),
        server=ServerSettings(max_body_bytes=MAX_BODY),
    )
    runtime = build_runtime(settings, embedder=embedder)
    job = runtime.pipeline.run(FilesystemSource(root=corpus, tenant_id=TENANT))
    assert not job.errors, job.errors
    held = HeldGenerator()
    held_answers = AnswerService(
        index=runtime.index, embedder=runtime.embedder, generator=held, fallback=ExtractiveGenerator(), min_score=-1.0
    )
    held_app = create_app(dataclasses.replace(runtime.api_components(), answers=held_answers))
    with serve(build_api(settings, runtime=runtime)) as (url, _), serve(held_app) as (held_url, held_server):
        yield World(runtime, corpus, url, held_url, held_server, held)
    runtime.close()


def client(world: World, token: str | None) -> Client:
    return Client(world.url, token=token, timeout=60)


# -- search, chat, me -------------------------------------------------------------------------------


def test_search_returns_typed_hits_trimmed_to_the_caller(world: World) -> None:
    with client(world, world.token(FIN)) as analyst, client(world, world.token()) as member:
        seen = analyst.search("Q3 revenue", top_k=10)
        unseen = member.search("Q3 revenue", top_k=10)
    assert seen.results[0].source == "finance/q3.md" and FINANCE_FACT in seen.results[0].snippet
    assert not seen.access.narrowed
    assert all(hit.source.startswith("company/") for hit in unseen.results)
    assert all(FINANCE_FACT not in hit.snippet for hit in unseen.results)


def test_chat_returns_a_cited_answer_and_history_is_accepted(world: World) -> None:
    with client(world, world.token()) as member:
        answer = member.chat("When is the company picnic?", history=[Turn.user("Hi"), Turn.assistant("Hello.")])
        me = member.me()
    assert answer.outcome == "grounded" and "14 June" in answer.answer
    assert [c.source for c in answer.citations] == ["company/handbook.md"]
    assert answer.citations[0].id == 1 and "[1]" in answer.answer
    assert me.tenant_id == TENANT and me.object_id == ALICE and me.roles == ()


def test_token_function_is_asked_before_every_request(world: World) -> None:
    issued: list[str] = []

    def fresh() -> str:
        issued.append(world.token())
        return issued[-1]

    with Client(world.url, token=fresh) as member:
        member.me()
        member.search("picnic")
    assert len(issued) == 2


# -- streaming --------------------------------------------------------------------------------------


def _assert_stream_order(events: list[ChatEvent]) -> None:
    kinds = [type(event) for event in events]
    tokens = kinds.count(TokenEvent)
    assert tokens >= 1 and kinds[:tokens] == [TokenEvent] * tokens
    rest = kinds[tokens:]
    assert rest in ([CitationsEvent, DoneEvent], [ReplaceEvent, CitationsEvent, DoneEvent]), kinds


def test_stream_events_arrive_typed_in_order_and_match_the_plain_answer(world: World) -> None:
    question = "When is the company picnic?"
    with client(world, world.token()) as member:
        plain = member.chat(question)
        with member.chat_stream(question) as stream:
            events = list(stream)
        collected = member.chat_stream(question).collect()
    _assert_stream_order(events)
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.outcome == "grounded"
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)) == done.answer == plain.answer
    citations = events[-2]
    assert isinstance(citations, CitationsEvent) and citations.citations == plain.citations
    assert collected.answer == plain.answer and collected.citations == plain.citations


def test_stream_of_a_question_nothing_permitted_answers_abstains(world: World) -> None:
    with client(world, world.token()) as member:
        answer = member.chat_stream("Who is the unannounced acquisition target?").collect()
    assert answer.outcome == "abstained" and answer.citations == ()
    assert "Nimbus" not in answer.answer


def _wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_abandoned_stream_iterator_closes_the_connection_and_stops_generation(world: World) -> None:
    with Client(world.held_url, token=world.token(), timeout=60) as member:
        events = member.chat_stream("When is the company picnic?")
        first = next(events)
        assert isinstance(first, TokenEvent) and "14 June" in first.text
        answer = world.held.stopped[-1]
        del events  # dropped mid-answer, neither closed nor read to the end (and no garbage collection)
        assert answer.wait(5), "the model was still generating 5 s after the client left"
        # The client stays open: its connection was closed, not returned to the pool.
        assert _wait_until(lambda: not world.held_server.server_state.connections, 5)


def test_a_stream_dropped_before_it_was_read_closes_the_connection(world: World) -> None:
    with Client(world.held_url, token=world.token(), timeout=60) as member:
        answers = len(world.held.stopped)
        member.chat_stream("When is the company picnic?")  # the request is sent; the stream is never read
        assert _wait_until(lambda: not world.held_server.server_state.connections, 5)
        # The server may have left before the model started; whatever it started, it stopped.
        assert _wait_until(lambda: all(answer.is_set() for answer in world.held.stopped[answers:]), 5)


def test_leaving_a_stream_block_early_closes_the_connection(world: World) -> None:
    with Client(world.held_url, token=world.token(), timeout=60) as member:
        with member.chat_stream("When is the company picnic?") as events:
            for event in events:
                assert isinstance(event, TokenEvent)
                break
        assert world.held.stopped[-1].wait(5), "the model was still generating 5 s after the client left"
        assert _wait_until(lambda: not world.held_server.server_state.connections, 5)


def test_a_stream_that_fails_mid_answer_raises_a_typed_error_without_server_internals(world: World) -> None:
    with Client(world.held_url, token=world.token(), timeout=60) as member:
        events = member.chat_stream(CRASH + "When is the company picnic?")
        first = next(events)
        assert isinstance(first, TokenEvent)
        with pytest.raises(AnswerStreamError) as raised:
            next(events)
    assert str(raised.value) == "The answer could not be completed"
    assert _wait_until(lambda: not world.held_server.server_state.connections, 5)


# -- problem+json as typed exceptions -------------------------------------------------------------


def test_request_without_a_token_is_unauthorized(world: World) -> None:
    with client(world, None) as anonymous, pytest.raises(UnauthorizedError) as raised:
        anonymous.search("picnic")
    assert raised.value.status == 401 and raised.value.title == "Unauthorized"


def test_a_token_the_server_does_not_accept_is_unauthorized_and_never_echoed(world: World) -> None:
    forged = world.token()[:-8] + "AAAAAAAA"
    with client(world, forged) as caller, pytest.raises(UnauthorizedError) as raised:
        caller.chat_stream("picnic")
    assert forged not in str(raised.value) and forged[-40:] not in repr(raised.value)


def test_non_admin_jobs_calls_are_forbidden(world: World) -> None:
    with client(world, world.token(FIN)) as member:
        with pytest.raises(ForbiddenError) as raised:
            member.jobs.start(str(world.corpus))
        assert raised.value.status == 403 and raised.value.title == "Forbidden"
        with pytest.raises(ForbiddenError):
            member.jobs.list()


def test_bad_input_is_an_invalid_request_naming_the_field(world: World) -> None:
    with client(world, world.token()) as member, pytest.raises(InvalidRequestError) as raised:
        member.search("picnic", top_k=0)
    assert raised.value.status == 422
    assert [error.loc for error in raised.value.errors] == [("body", "top_k")]


def test_oversized_request_is_content_too_large(world: World) -> None:
    history = [Turn.user("x" * 7000) for _ in range(3)]  # each turn within bounds, the body over MAX_BODY
    with client(world, world.token()) as member:
        with pytest.raises(ContentTooLargeError) as raised:
            member.chat("picnic?", history=history)
        assert raised.value.status == 413
        with pytest.raises(ContentTooLargeError):
            member.chat_stream("picnic?", history=history)


# -- ingestion jobs ---------------------------------------------------------------------------------


def test_admin_starts_lists_and_gets_jobs(world: World) -> None:
    with client(world, world.token(oid=ADMIN_OID, roles=["Clearance.Admin"])) as admin:
        started = admin.jobs.start(str(world.corpus / "company"))
        assert started.status in ("queued", "running", "succeeded") and started.tenant_id == TENANT
        finished = admin.jobs.wait(started.id, timeout=60, interval=0.1)
        assert finished.status == "succeeded" and finished.finished and finished.errors == ()
        assert started.id in [job.id for job in admin.jobs.list(limit=5)]
        assert admin.jobs.get(started.id) == finished
        with pytest.raises(NotFoundError):
            admin.jobs.get("../../search")  # escaped: a job id, never another route
        with pytest.raises(InvalidRequestError):
            admin.jobs.start("/etc")  # outside the tenant's allowed roots


# -- asyncio ----------------------------------------------------------------------------------------


def test_async_client_search_chat_and_stream(world: World) -> None:
    async def scenario() -> None:
        async with (
            AsyncClient(world.url, token=world.token(FIN), timeout=60) as analyst,
            AsyncClient(world.url, token=world.token(), timeout=60) as member,
        ):
            seen, unseen = await asyncio.gather(analyst.search("Q3 revenue"), member.search("Q3 revenue"))
            assert seen.results[0].source == "finance/q3.md"
            assert all(hit.source.startswith("company/") for hit in unseen.results)
            plain = await analyst.chat("What was Q3 revenue?")
            assert FINANCE_FACT in plain.answer
            async with await analyst.chat_stream("What was Q3 revenue?") as stream:
                events = [event async for event in stream]
            _assert_stream_order(events)
            assert isinstance(events[-1], DoneEvent) and events[-1].answer == plain.answer

    asyncio.run(scenario())


def test_async_client_problems_are_typed(world: World) -> None:
    async def scenario() -> None:
        async with AsyncClient(world.url, token=None) as anonymous:
            with pytest.raises(UnauthorizedError):
                await anonymous.chat("picnic")
        async with AsyncClient(world.url, token=world.token()) as member:
            with pytest.raises(ForbiddenError):
                await member.jobs.list()
            with pytest.raises(InvalidRequestError):
                await member.chat_stream("")
            with pytest.raises(ContentTooLargeError):
                await member.chat("picnic?", history=[Turn.user("x" * 7000) for _ in range(3)])
        async with AsyncClient(world.url, token=world.token(oid=ADMIN_OID, roles=["Clearance.Admin"])) as admin:
            job = await admin.jobs.start(str(world.corpus / "company"))
            assert (await admin.jobs.wait(job.id, timeout=60, interval=0.1)).status == "succeeded"
            assert job.id in [j.id for j in await admin.jobs.list()]

    asyncio.run(scenario())


def test_async_stream_left_early_closes_the_connection_and_stops_generation(world: World) -> None:
    async def scenario() -> None:
        async with AsyncClient(world.held_url, token=world.token(), timeout=60) as member:
            async with await member.chat_stream("When is the company picnic?") as events:
                async for event in events:
                    assert isinstance(event, TokenEvent)
                    break
            assert await asyncio.to_thread(world.held.stopped[-1].wait, 5)
            for _ in range(250):
                if not world.held_server.server_state.connections:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError("the server still holds the abandoned connection")

    asyncio.run(scenario())


# -- the client on its own --------------------------------------------------------------------------


def test_plain_http_to_a_remote_host_is_refused_unless_asked() -> None:
    with pytest.raises(ValueError, match="plain http"):
        Client("http://clearance.example.com", token="t")
    Client("http://clearance.example.com", token="t", allow_insecure_http=True).close()
    Client("https://clearance.example.com", token="t").close()
    Client("http://[::1]:8000", token="t").close()


def test_the_token_does_not_appear_in_the_clients_repr() -> None:
    with Client("https://clearance.example.com", token="secret-token-value") as caller:
        assert "secret-token-value" not in repr(caller._http.auth)


def test_client_imports_without_the_servers_dependencies() -> None:
    """Only httpx, httpx-sse and pydantic: none of the server's packages may be imported."""
    blocked = [
        "acl", "api", "core", "index", "ingest", "retrieval", "fastapi", "starlette", "uvicorn", "torch",
        "sentence_transformers", "qdrant_client", "jwt", "msal", "llama_index", "sse_starlette",
    ]  # fmt: skip
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from clearance.client import AsyncClient, Client
Client("https://clearance.example.com", token="t").close()
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
