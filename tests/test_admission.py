"""Never stuck: a fair, bounded line in front of the model, and a stopped answer frees it at once.

The line itself is tested with threads; the API over a real socket (uvicorn on
a loopback port) with a stand-in for a slow model that writes until it is
stopped, as a local model server would. The real llama.cpp runtime (SmolLM2,
the small model the suite already uses) shows that a request cancelled while
the model is still reading its prompt releases it within a second.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest

from api.app import create_app
from clearance.compose import Runtime, build_runtime
from clearance.settings import IndexSettings, IngestSettings, Mode, Settings
from core.cancel import Cancellation
from core.errors import ModelBusyError
from core.records import Passage
from index.embedding import SentenceTransformerEmbedder
from ingest.source import FilesystemSource
from retrieval.answer import AnswerService
from retrieval.generation.admission import ModelAdmission, Ticket
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.prompts import PromptTemplate
from tests.conftest import TENANT, write_users
from tests.local_models import smollm2_path
from tests.test_client import serve
from tests.test_permissions import ALICE, FIN, build_corpus

QUESTION = "When is the company picnic?"
TRAVEL_POLICY = (
    "# Travel policy\n\nTravel must be booked through the portal. Economy class is the default for flights.\n"
    "Meal per diem:\nStandard US cities: $78 a day\nHigh-cost US cities: $98 a day\n"
    "Receipts are kept for seven years. The finance team audits a sample every quarter.\n"
)
SECRET = "12.4 million"  # finance/q3.md: FIN only


# -- the line ---------------------------------------------------------------------------------------


def _wait_for(condition: object, seconds: float = 5.0) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


def test_tickets_are_served_in_the_order_they_were_taken() -> None:
    line = ModelAdmission(max_waiting=10, max_wait_seconds=10)
    holder = line.join()
    assert holder.admitted
    served: list[int] = []
    tickets: list[Ticket] = []
    threads = []
    for number in range(6):
        tickets.append(line.join())  # taken in this order, from this thread

        def run(ticket: Ticket = tickets[-1], number: int = number) -> None:
            assert ticket.wait()
            served.append(number)
            time.sleep(0.01)
            ticket.leave()

        threads.append(threading.Thread(target=run))
    # Started in reverse: a plain lock would let whichever thread runs first win.
    for thread in reversed(threads):
        thread.start()
    assert [t.position for t in tickets] == [1, 2, 3, 4, 5, 6]
    holder.leave()
    for thread in threads:
        thread.join(5)
    assert served == [0, 1, 2, 3, 4, 5]
    assert line.holders == 0 and line.waiting == 0


def test_a_full_line_refuses_at_once_with_a_retry_after() -> None:
    line = ModelAdmission(max_waiting=2, max_wait_seconds=10, typical_hold_seconds=4)
    holder, first, second = line.join(), line.join(), line.join()
    started = time.monotonic()
    with pytest.raises(ModelBusyError) as refused:
        line.join()
    assert time.monotonic() - started < 0.1
    assert refused.value.retry_after == 12  # two waiting and one writing, ~4 s each
    with pytest.raises(ModelBusyError):
        line.ensure_room()
    first.leave()  # a waiter gives up: there is room again
    line.ensure_room()
    for ticket in (holder, second):
        ticket.leave()


def test_a_ticket_that_waits_past_the_bound_is_refused_and_leaves_the_line() -> None:
    line = ModelAdmission(max_waiting=4, max_wait_seconds=0.3)
    holder = line.join()
    waiter = line.join()
    started = time.monotonic()
    with pytest.raises(ModelBusyError) as refused:
        waiter.wait()
    assert 0.25 <= time.monotonic() - started < 1.0
    assert refused.value.retry_after >= 1
    assert line.waiting == 0  # it does not block the line after being refused
    holder.leave()
    assert line.holders == 0


def test_a_cancelled_waiter_leaves_the_line_and_the_one_behind_moves_up() -> None:
    line = ModelAdmission(max_waiting=4, max_wait_seconds=30)
    holder = line.join()
    leaving, staying = line.join(), line.join()
    cancel = Cancellation()
    places: list[int] = []
    left = threading.Event()

    def wait_until_cancelled() -> None:
        assert not leaving.wait(cancel)
        left.set()

    def watch_place() -> None:
        for place in staying.positions():
            places.append(place)

    threading.Thread(target=wait_until_cancelled).start()
    watcher = threading.Thread(target=watch_place)
    watcher.start()
    assert _wait_for(lambda: places == [2])
    cancel.cancel()
    assert left.wait(1), "a cancelled waiter stayed in the line for more than a second"
    assert _wait_for(lambda: places == [2, 1], 1)
    holder.leave()
    watcher.join(1)
    assert staying.admitted and places == [2, 1]
    staying.leave()


# -- the API ----------------------------------------------------------------------------------------


class SlowModel:
    """Writes the extractive answer, then keeps writing until it is stopped (at most 30 s).

    Stands in for a local model at its process boundary; ``released`` records
    when each answer let go of the model, so tests can time a stop.
    """

    def __init__(self) -> None:
        self._inner = ExtractiveGenerator()
        self.started: list[float] = []
        self.released: list[float] = []

    @property
    def name(self) -> str:
        return "slow"

    def generate(
        self,
        *,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
        prompt: PromptTemplate | None = None,
    ) -> Iterator[str]:
        self.started.append(time.monotonic())
        deadline = time.monotonic() + 30
        try:
            yield self._inner.answer(question=question, passages=passages)
            yield " Further"  # a sentence begins: the one before it is complete and is streamed
            while time.monotonic() < deadline and not (cancel is not None and cancel.cancelled):
                time.sleep(0.01)
        finally:
            self.released.append(time.monotonic())


@dataclasses.dataclass
class Served:
    runtime: Runtime
    url: str
    model: SlowModel
    line: ModelAdmission

    def token(self, *groups: str) -> str:
        assert self.runtime.dev is not None
        return self.runtime.dev.idp.mint(tenant_id=TENANT, object_id=ALICE, groups=groups)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[Runtime]:
    root = tmp_path_factory.mktemp("admission")
    corpus = build_corpus(root / "corpus")
    (corpus / "company" / "travel.md").write_text(TRAVEL_POLICY, encoding="utf-8")
    settings = Settings(
        data_dir=root / "data",
        users_file=write_users(root / "users.json"),
        index=IndexSettings(location=":memory:"),
        mode=Mode.DEVELOPMENT,
        ingest=IngestSettings(allowed_roots={TENANT: [corpus]}, isolate_parsing=False),
    )
    built = build_runtime(settings, embedder=embedder)
    job = built.pipeline.run(FilesystemSource(root=corpus, tenant_id=TENANT))
    assert not job.errors, job.errors
    yield built
    built.close()


@pytest.fixture()
def served(runtime: Runtime) -> Iterator[Served]:
    """The app with a slow model behind a line of two waiters, waiting at most 20 s."""
    model = SlowModel()
    line = ModelAdmission(max_waiting=2, max_wait_seconds=20, typical_hold_seconds=6)
    answers = AnswerService(
        index=runtime.index,
        embedder=runtime.embedder,
        generator=model,
        fallback=ExtractiveGenerator(),
        min_score=-1.0,
        admission=line,
    )
    with serve(create_app(dataclasses.replace(runtime.api_components(), answers=answers))) as (url, _):
        yield Served(runtime, url, model, line)


_SSE_MESSAGE = re.compile(rb"event: ?([a-z_]+)\r?\ndata: ?([^\r\n]*)\r?\n")


@dataclasses.dataclass
class Stream:
    """One streamed chat read from a raw socket in a thread; ``close()`` is the client leaving (a TCP close)."""

    events: list[tuple[str, dict[str, object]]]
    closed: threading.Event
    thread: threading.Thread

    def first(self, name: str, seconds: float = 10) -> dict[str, object]:
        assert _wait_for(lambda: any(event == name for event, _ in self.events), seconds), (name, self.events)
        return next(data for event, data in self.events if event == name)

    def close(self) -> float:
        self.closed.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        return time.monotonic()


def open_stream(served: Served, question: str = QUESTION, *, token: str | None = None) -> Stream:
    """POST /v1/chat with stream and progress, read as raw SSE until done or ``close()``."""
    events: list[tuple[str, dict[str, object]]] = []
    closed = threading.Event()
    status: list[bytes] = []
    host, port = served.url.removeprefix("http://").split(":")
    body = json.dumps({"question": question, "stream": True, "progress": True}).encode()
    request = (
        f"POST /v1/chat HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token or served.token()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock = socket.create_connection((host, int(port)))
    sock.sendall(request)
    sock.settimeout(0.02)

    def read() -> None:
        buffer = b""
        try:
            while not closed.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                buffer += data
                if not status:
                    status.append(buffer.split(b"\r\n", 1)[0])
                for match in _SSE_MESSAGE.finditer(buffer):
                    events.append((match.group(1).decode(), json.loads(match.group(2))))
                buffer = _SSE_MESSAGE.sub(b"", buffer)
                if any(event == "done" for event, _ in events):
                    return
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert _wait_for(lambda: bool(status), 10) and b" 200 " in status[0], status
    return Stream(events, closed, thread)


def test_stopping_a_stream_releases_the_model_within_a_second_and_the_next_answer_starts(served: Served) -> None:
    writing = open_stream(served)
    writing.first("token")
    assert served.line.holders == 1
    stopped = writing.close()
    assert _wait_for(lambda: len(served.model.released) == 1, 1), "the model was still held 1 s after Stop"
    assert served.model.released[0] - stopped < 1.0
    following = open_stream(served)
    following.first("token", 5)
    started = served.model.started[-1]
    assert started - stopped < 1.0, f"the next answer started {started - stopped:.2f} s after Stop"
    following.close()


def test_a_waiting_stream_sees_its_place_then_its_answer(served: Served) -> None:
    writing = open_stream(served)
    writing.first("token")
    waiting = open_stream(served)
    assert waiting.first("progress")["stage"] == "reading"
    sources = waiting.first("sources")["sources"]
    assert isinstance(sources, list) and sources[0]["source"] == "company/handbook.md"
    assert _wait_for(lambda: ("progress", {"stage": "queued", "position": 1}) in waiting.events)
    assert not any(event == "token" for event, _ in waiting.events)
    writing.close()
    assert "14 June" in str(waiting.first("token", 2)["text"])
    progress = [data for event, data in waiting.events if event == "progress"]
    assert progress[-1] == {"stage": "queued", "position": 0}  # its turn came: the model reads
    waiting.close()


def test_over_the_bound_chat_is_503_with_retry_after_streaming_or_not(served: Served) -> None:
    writing = open_stream(served)
    writing.first("token")
    waiters = [open_stream(served), open_stream(served)]
    for waiter in waiters:
        waiter.first("progress")
    assert _wait_for(lambda: served.line.waiting == 2)
    headers = {"Authorization": f"Bearer {served.token()}"}
    with httpx.Client(timeout=10) as http:
        for stream in (True, False):
            started = time.monotonic()
            refused = http.post(f"{served.url}/v1/chat", json={"question": QUESTION, "stream": stream}, headers=headers)
            assert time.monotonic() - started < 2
            assert refused.status_code == 503
            assert refused.headers["content-type"] == "application/problem+json"
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["title"] == "Model Busy"
    for opened in (writing, *waiters):
        opened.close()


def test_a_client_that_leaves_while_queued_frees_its_place(served: Served) -> None:
    writing = open_stream(served)
    writing.first("token")
    leaving = open_stream(served)
    assert _wait_for(lambda: served.line.waiting == 1)
    leaving.close()
    assert _wait_for(lambda: served.line.waiting == 0, 1), "a client that left kept its place in the line"
    staying = open_stream(served)
    assert _wait_for(lambda: ("progress", {"stage": "queued", "position": 1}) in staying.events)
    writing.close()
    staying.first("token", 2)
    staying.close()
    assert len(served.model.started) == 2  # the client that left never reached the model


def test_a_plain_request_whose_client_leaves_while_queued_leaves_the_line(served: Served) -> None:
    writing = open_stream(served)
    writing.first("token")
    headers = {"Authorization": f"Bearer {served.token()}"}

    def ask_and_give_up() -> None:
        with httpx.Client(timeout=0.7) as http, pytest.raises(httpx.ReadTimeout):
            http.post(f"{served.url}/v1/chat", json={"question": QUESTION}, headers=headers)

    gives_up = threading.Thread(target=ask_and_give_up)
    gives_up.start()
    assert _wait_for(lambda: served.line.waiting == 1)
    gives_up.join(5)
    assert _wait_for(lambda: served.line.waiting == 0, 1.5), "a plain request kept its place after its client left"
    writing.close()
    assert len(served.model.started) == 1


def test_sources_shown_while_the_model_reads_are_only_the_callers_passages(served: Served) -> None:
    member = open_stream(served, "What was Q3 revenue?")
    sources = member.first("sources")["sources"]
    assert isinstance(sources, list) and sources
    assert all(str(s["source"]).startswith("company/") for s in sources)
    assert SECRET not in json.dumps(member.events)
    member.close()
    analyst = open_stream(served, "What was Q3 revenue?", token=served.token(FIN))
    shown = analyst.first("sources")["sources"]
    assert isinstance(shown, list) and shown[0]["source"] == "finance/q3.md"
    assert not {"acl_allow", "acl_deny", "score", "text"} & set(shown[0])
    analyst.close()


# -- the real llama.cpp runtime ---------------------------------------------------------------------


def test_cancelling_while_the_model_reads_its_prompt_releases_it_within_a_second() -> None:
    from retrieval.generation.llama_cpp import LlamaCppGenerator

    generator = LlamaCppGenerator(model_path=smollm2_path(), threads=2, max_tokens=16, context_tokens=8192)
    text = "The travel policy covers hotels, flights, trains, taxis and meals for every employee. " * 40
    passages = [Passage(f"c{n}", "d", "policy.md", "Travel policy", None, None, None, text, 0.9) for n in range(1, 5)]
    cancel = Cancellation()
    timer = threading.Timer(0.3, cancel.cancel)
    started = time.monotonic()
    timer.start()
    pieces = list(generator.generate(question="What is the meal allowance?", passages=passages, cancel=cancel))
    released = time.monotonic()
    assert pieces == []  # stopped before the first token: reading ~3,000 tokens takes several seconds here
    assert released - started < 1.3, f"released {released - started - 0.3:.2f} s after the cancel"
    # The context is usable at once afterwards: the next request reads and writes normally.
    short = dataclasses.replace(passages[0], text="The meal allowance is 40 euros a day.")
    answer = "".join(generator.generate(question="What is the meal allowance?", passages=[short]))
    assert answer


class Reader:
    """Records what it was given to read; answers from the travel passage, citing it by its number."""

    def __init__(self) -> None:
        self.given: list[Passage] = []

    @property
    def name(self) -> str:
        return "reader"

    def generate(
        self,
        *,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
        prompt: PromptTemplate | None = None,
    ) -> Iterator[str]:
        self.given = list(passages)
        number = next(n for n, p in enumerate(passages, 1) if p.source == "company/travel.md")
        yield f"The meal per diem in standard US cities is $78 a day [{number}]."


def test_the_model_reads_only_the_sentences_it_needs_and_citations_show_the_whole_passage(runtime: Runtime) -> None:
    reader = Reader()
    answers = AnswerService(
        index=runtime.index,
        embedder=runtime.embedder,
        generator=reader,
        fallback=ExtractiveGenerator(),
        min_score=-1.0,
        passage_chars=120,
    )
    assert runtime.dev is not None
    principal = runtime.tokens.authenticate(runtime.dev.idp.mint(tenant_id=TENANT, object_id=ALICE, groups=()))
    question = "What is the meal per diem in a standard US city?"
    full = {p.chunk_id: p for p in runtime.index.search(principal, runtime.embedder.embed_query(question), top_k=5)}
    result = answers.answer(principal, question)
    travel = next(p for p in reader.given if p.source == "company/travel.md")
    assert "$78" in travel.text and "portal" not in travel.text and "audits" not in travel.text
    assert {p.chunk_id for p in reader.given} <= set(full)  # the same passages, numbered as retrieved
    assert all(SECRET not in p.text for p in reader.given)
    assert result.outcome.value == "grounded" and "$78" in result.answer
    (cited,) = result.citations
    assert cited.source == "company/travel.md" and "portal" in cited.snippet  # the passage, not the excerpt
