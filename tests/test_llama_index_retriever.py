"""The llama-index retriever on the sample company: two people, the same questions, different nodes.

Bob (financial analyst) reads finance but not engineering; Alice (engineer)
reads engineering but not finance (samples/questions.json says who may read
what). The retriever runs in-process with each person's validated principal
and over HTTP with each person's token, inside llama-index's own query and
chat engines with its MockLLM, which echoes the prompt it is given: what the
LLM would have seen is checked, not only the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import nbclient
import nbformat
import pytest
from llama_index.core.chat_engine import ContextChatEngine
from llama_index.core.llms import MockLLM
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore

from acl.principal import Principal
from clearance.client import AsyncClient, Client, UnauthorizedError
from clearance.compose import Runtime, build_api
from clearance.integrations.llama_index import ClearanceRetriever
from tests.conftest import REPO_ROOT
from tests.test_client import serve
from tests.test_samples import QUESTIONS, sample_runtime  # noqa: F401  (fixture)

NOTEBOOK = REPO_ROOT / "notebooks" / "llama_index_retriever.ipynb"
PEOPLE = ("bob", "alice")
# One question each can answer and the other cannot.
FINANCE, ENGINEERING = "q3-revenue", "planner-interval"


def question(qid: str) -> dict[str, Any]:
    found = next((q for q in QUESTIONS if q["id"] == qid), None)
    assert found is not None, f"samples/questions.json has no question {qid!r}"
    return found


def relative(document: str) -> str:
    return document.split("/", 1)[1]  # questions name "<tenant folder>/<path>"; sources are paths in the source


def hidden_from(user: str) -> set[str]:
    """Every sample document the questions say ``user`` may not read."""
    return {relative(q["document"]) for q in QUESTIONS if user in q["hidden_from"]}


def token(runtime: Runtime, user: str) -> str:
    assert runtime.dev is not None
    return runtime.dev.idp.mint_for(runtime.dev.directory.user(user))


def principal(runtime: Runtime, user: str) -> Principal:
    return runtime.tokens.authenticate(token(runtime, user))  # the API's validation path


def in_process(runtime: Runtime, user: str, top_k: int = 5) -> ClearanceRetriever:
    return ClearanceRetriever.in_process(search=runtime.answers.search, principal=principal(runtime, user), top_k=top_k)


def sources(nodes: list[NodeWithScore]) -> list[str]:
    return [str(n.node.metadata["source"]) for n in nodes]


@contextlib.contextmanager
def own_event_loop() -> Iterator[None]:
    """llama-index's synchronous paths (``async_utils.asyncio_run``, used to count tokens) run coroutines on
    the thread's event loop and create one, never closed, when there is none: give them one we close."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@pytest.fixture(scope="module")
def url(sample_runtime: Runtime) -> Iterator[str]:  # noqa: F811
    with serve(build_api(sample_runtime.settings, runtime=sample_runtime)) as (address, _):
        yield address


@pytest.mark.parametrize("user", PEOPLE)
def test_each_person_gets_nodes_only_from_documents_they_may_read(sample_runtime: Runtime, user: str) -> None:  # noqa: F811
    retriever = in_process(sample_runtime, user, top_k=50)
    forbidden = hidden_from(user)
    assert forbidden, user
    for qid in (FINANCE, ENGINEERING):
        found = set(sources(retriever.retrieve(question(qid)["question"])))
        assert found and not found & forbidden, (user, qid, found & forbidden)


def test_the_same_question_gives_two_people_different_trimmed_nodes(sample_runtime: Runtime) -> None:  # noqa: F811
    for qid in (FINANCE, ENGINEERING):
        asked = question(qid)
        document = relative(asked["document"])
        for user in PEOPLE:
            found = sources(in_process(sample_runtime, user).retrieve(asked["question"]))
            if user in asked["visible_to"]:
                assert document in found, (user, qid)
            else:
                assert user in asked["hidden_from"] and document not in found, (user, qid)


def test_over_http_the_nodes_are_those_of_the_callers_token(sample_runtime: Runtime, url: str) -> None:  # noqa: F811
    asked = question(FINANCE)["question"]
    for user in PEOPLE:
        with Client(url, token=token(sample_runtime, user), timeout=60) as client:
            remote = ClearanceRetriever.over_http(client).retrieve(asked)
        local = in_process(sample_runtime, user).retrieve(asked)
        assert [n.node.node_id for n in remote] == [n.node.node_id for n in local], user
        for far, near in zip(remote, local, strict=True):
            assert far.score == pytest.approx(near.score, abs=1e-4)
            # /v1/search returns the passage's start; in-process nodes hold all of it.
            assert near.node.get_content().startswith(far.node.get_content().rstrip("…"))
            assert far.node.metadata["text_complete"] is False and near.node.metadata["text_complete"] is True


def test_nodes_carry_citation_metadata_and_nothing_of_the_acl(sample_runtime: Runtime) -> None:  # noqa: F811
    nodes = in_process(sample_runtime, "bob").retrieve(question(FINANCE)["question"])
    node = nodes[0].node
    assert node.node_id == node.metadata["chunk_id"] and node.ref_doc_id == node.metadata["source"]
    assert {"source", "title", "chunk_id", "citation", "text_complete"} <= set(node.metadata)
    assert str(node.metadata["citation"]).endswith(f"({node.metadata['source']})")
    assert not {key for key in node.metadata if "acl" in key or "allow" in key or "deny" in key or "tenant" in key}
    shown_to_llm = node.get_content(metadata_mode=MetadataMode.LLM)
    assert f"source: {node.metadata['source']}" in shown_to_llm and "chunk_id" not in shown_to_llm


def test_query_engine_llm_sees_only_what_the_asker_may_read(sample_runtime: Runtime) -> None:  # noqa: F811
    asked = question(FINANCE)
    document = relative(asked["document"])
    readers_nodes = in_process(sample_runtime, "bob", top_k=50).retrieve(asked["question"])
    hidden_texts = [n.node.get_content() for n in readers_nodes if n.node.metadata["source"] == document]
    assert hidden_texts
    for user in PEOPLE:
        engine = RetrieverQueryEngine.from_args(in_process(sample_runtime, user), llm=MockLLM())
        with own_event_loop():
            response = engine.query(asked["question"])
        prompt = str(response)  # MockLLM answers with the prompt it was given
        assert sources(response.source_nodes) == sources(in_process(sample_runtime, user).retrieve(asked["question"]))
        if user in asked["visible_to"]:
            assert document in prompt and any(text in prompt for text in hidden_texts), user
        else:
            assert document not in prompt and asked["answer_contains"] not in prompt, user
            assert not any(text in prompt for text in hidden_texts), user


def test_chat_engine_answers_each_person_from_their_own_nodes(sample_runtime: Runtime) -> None:  # noqa: F811
    asked = question(ENGINEERING)
    document = relative(asked["document"])
    for user in PEOPLE:
        # An in-process memory: llama-index's default one leaves aiosqlite connections open (ResourceWarning).
        memory = ChatMemoryBuffer.from_defaults(token_limit=3000)
        engine = ContextChatEngine.from_defaults(
            retriever=in_process(sample_runtime, user), llm=MockLLM(), memory=memory
        )
        with own_event_loop():
            response = engine.chat(asked["question"])
        assert (document in sources(response.source_nodes)) is (user in asked["visible_to"]), user
        assert not set(sources(response.source_nodes)) & hidden_from(user)


def test_async_retrieval_returns_what_sync_retrieval_does(sample_runtime: Runtime, url: str) -> None:  # noqa: F811
    asked = question(ENGINEERING)["question"]

    async def both() -> tuple[list[NodeWithScore], list[NodeWithScore]]:
        async with AsyncClient(url, token=token(sample_runtime, "alice"), timeout=60) as client:
            remote = ClearanceRetriever.over_http(async_client=client)
            local = in_process(sample_runtime, "alice")
            found = await asyncio.gather(remote.aretrieve(asked), local.aretrieve(asked))
            return found[0], found[1]

    remote, local = asyncio.run(both())
    expected = [n.node.node_id for n in in_process(sample_runtime, "alice").retrieve(asked)]
    assert [n.node.node_id for n in remote] == [n.node.node_id for n in local] == expected


def test_in_process_retrieval_refuses_anything_but_a_principal(sample_runtime: Runtime) -> None:  # noqa: F811
    claims = {"tid": "d1f72fea-086f-4448-9dce-2f71deb8ef72", "oid": "x", "groups": []}
    fakes: list[Any] = [None, claims]  # what an untyped caller might pass
    for fake in fakes:
        with pytest.raises(TypeError):
            ClearanceRetriever.in_process(search=sample_runtime.answers.search, principal=fake)


def test_over_http_a_refused_token_raises_rather_than_returning_nothing(url: str) -> None:
    with Client(url, token="not-a-token") as client, pytest.raises(UnauthorizedError):
        ClearanceRetriever.over_http(client).retrieve("What was Q3 revenue?")


def test_http_mode_imports_without_the_servers_dependencies() -> None:
    """An integrator's process needs llama-index-core, the client and two stdlib-only modules (acl.principal,
    core.records) for the in-process types: nothing of the server (web framework, model, index)."""
    blocked = ["api", "retrieval", "index", "ingest", "fastapi", "starlette", "uvicorn", "torch", "qdrant_client"]
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from clearance.client import Client
from clearance.integrations.llama_index import ClearanceRetriever
ClearanceRetriever.over_http(Client("https://clearance.example.com", token="t"))
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_notebook_runs_offline_in_a_kernel_and_shows_trimmed_nodes() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]  # nbformat is unannotated
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}
    )
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    bob, alice = listed(text, "bob:"), listed(text, "alice:")
    assert any("(finance/q3-results.xlsx)" in line for line in bob), bob
    assert alice and not any("finance/" in line for line in alice), alice
    # Over HTTP, the same people get the same passages (scores printed aside).
    assert listed(text, "bob (over HTTP):") == bob and listed(text, "alice (over HTTP):") == alice


def listed(text: str, header: str) -> list[str]:
    """The citations the notebook printed under ``header`` (indented lines: score, then citation)."""
    lines = text.split("\n")
    assert header in lines, header
    block = itertools.takewhile(lambda line: line.startswith("  "), lines[lines.index(header) + 1 :])
    return [line.split(maxsplit=1)[1] for line in block]
