"""The MCP endpoint served by the HTTP API itself, at /mcp on its own port, over its own runtime.

The app is the one `clearance serve` and `clearance demo` run (``build_api``),
served by uvicorn on a loopback port, and reached with the official MCP SDK's
client. Every tool call is trimmed to the owner of its token; a call without a
valid token is refused where the API's other routes would not look (the API's
early token check covers ``/v1/`` only), and the refusal points at metadata the
same server actually serves. The rest of the API is as it was. Each store
backend (SQLite, PostgreSQL) gets its own world: the MCP answers go to the same
audit as the API's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from clearance.compose import Runtime, build_api, build_runtime
from clearance.settings import (
    AuthSettings,
    IndexSettings,
    IngestSettings,
    McpSettings,
    Mode,
    ServerSettings,
    Settings,
    StoreSettings,
)
from index.embedding import SentenceTransformerEmbedder
from ingest.source import FilesystemSource
from tests import store_fixtures
from tests.conftest import TENANT, write_users
from tests.test_audit_api import AUDITOR, AUDITOR_ROLE, _take_store_down
from tests.test_mcp_server import FINANCE_FACT, call, structured
from tests.test_permissions import ALICE, FIN, GRACE, build_corpus

target = store_fixtures.target
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}
METADATA_PATH = "/.well-known/oauth-protected-resource/mcp"


@contextlib.contextmanager
def serve_api(runtime: Runtime, settings: Settings | None = None) -> Iterator[str]:
    """The API app over ``runtime`` with uvicorn on a loopback port, bound first: the app is built knowing its
    own address, as `clearance serve` builds it (the MCP resource URL derives from it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = settings or runtime.settings
    bound = base.model_copy(update={"server": base.server.model_copy(update={"host": "127.0.0.1", "port": port})})
    server = uvicorn.Server(uvicorn.Config(build_api(bound, runtime=runtime), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclasses.dataclass
class World:
    runtime: Runtime
    url: str

    def token(self, *groups: str, oid: str = ALICE, roles: tuple[str, ...] = ()) -> str:
        assert self.runtime.dev is not None
        return self.runtime.dev.idp.mint(tenant_id=TENANT, object_id=oid, groups=groups, roles=roles)

    def bearer(self, *groups: str, oid: str = ALICE, roles: tuple[str, ...] = ()) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*groups, oid=oid, roles=roles)}"}


def world_settings(root: Path, store: store_fixtures.StoreTarget) -> Settings:
    corpus = build_corpus(root / "corpus")
    return Settings(
        data_dir=root / "data",
        users_file=write_users(root / "users.json"),
        index=IndexSettings(location=":memory:"),
        mode=Mode.DEVELOPMENT,
        ingest=IngestSettings(allowed_roots={TENANT: [corpus]}, isolate_parsing=False),
        auth=AuthSettings(allowed_tenants=[TENANT]),
        store=StoreSettings(url=SecretStr(store.url), schema_name=store.schema),
    )


@pytest.fixture(scope="module", params=store_fixtures.BACKENDS)
def store_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[store_fixtures.StoreTarget]:
    yield from store_fixtures.store_target(request.param, tmp_path_factory.mktemp(f"store-{request.param}"))


@pytest.fixture(scope="module")
def runtime(
    store_target: store_fixtures.StoreTarget,
    tmp_path_factory: pytest.TempPathFactory,
    embedder: SentenceTransformerEmbedder,
) -> Iterator[Runtime]:
    root = tmp_path_factory.mktemp("mcp-mounted")
    settings = world_settings(root, store_target)
    built = build_runtime(settings, embedder=embedder)
    try:
        job = built.pipeline.run(FilesystemSource(root=root / "corpus", tenant_id=TENANT))
        assert not job.errors, job.errors
        yield built
    finally:
        built.close()


@pytest.fixture(scope="module")
def world(runtime: Runtime) -> Iterator[World]:
    with serve_api(runtime) as url:
        yield World(runtime, url)


# -- the tools on the API's port run as the caller ---------------------------------------------------


def test_two_people_search_over_the_api_port_and_get_only_what_each_may_read(world: World) -> None:
    seen = structured(call(world.url, world.token(FIN), "search", {"query": "Q3 revenue", "top_k": 10}))
    unseen = structured(call(world.url, world.token(), "search", {"query": "Q3 revenue", "top_k": 10}))
    assert seen["results"][0]["source"] == "finance/q3.md" and FINANCE_FACT in seen["results"][0]["snippet"]
    assert unseen["results"] and all(hit["source"].startswith("company/") for hit in unseen["results"])
    assert FINANCE_FACT not in json.dumps(unseen)


def test_two_people_ask_over_the_api_port_and_the_answers_are_in_the_apis_audit(world: World) -> None:
    question = "What was the Q3 revenue?"
    analyst = structured(call(world.url, world.token(FIN), "ask", {"question": question}))
    member = call(world.url, world.token(oid=GRACE), "ask", {"question": question})
    assert FINANCE_FACT in analyst["answer"] and [c["source"] for c in analyst["citations"]] == ["finance/q3.md"]
    assert FINANCE_FACT not in json.dumps(structured(member)) and "12.4" not in str(member.content)
    # One runtime: the API's auditors see the MCP answers in the same chain, under each asker.
    auditor = world.bearer(oid=AUDITOR, roles=(AUDITOR_ROLE,))
    listed = httpx.get(f"{world.url}/v1/audit/records", headers=auditor, timeout=30)
    assert listed.status_code == 200, listed.text
    by_actor = {r["actor"]: r for r in listed.json()["records"] if r["personal"].get("question") == question}
    assert set(by_actor) == {ALICE, GRACE} and {r["kind"] for r in by_actor.values()} == {"answer"}
    assert by_actor[ALICE]["record"]["cited"] and not by_actor[GRACE]["record"]["cited"]


# -- authorization on the API's port -------------------------------------------------------------------


def test_no_token_is_401_pointing_at_metadata_the_api_serves(world: World) -> None:
    response = httpx.post(f"{world.url}/mcp", json=INIT, headers=MCP_ACCEPT, timeout=30)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    metadata_url = f"{world.url}{METADATA_PATH}"
    assert f'resource_metadata="{metadata_url}"' in challenge
    metadata = httpx.get(metadata_url, timeout=30)
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == f"{world.url}/mcp"
    assert metadata.json()["authorization_servers"] == [f"https://dev-idp.clearance.invalid/{TENANT}/v2.0"]


def test_a_forged_or_foreign_token_is_refused_and_never_echoed(world: World) -> None:
    forged = world.token(FIN)[:-8] + "AAAAAAAA"
    assert world.runtime.dev is not None
    foreign = world.runtime.dev.idp.mint(
        tenant_id="d397c693-4a32-47ad-9ee4-9ad621108730", object_id=ALICE, groups=[FIN]
    )
    for token in (forged, foreign, "not-a-jwt"):
        headers = {**MCP_ACCEPT, "Authorization": f"Bearer {token}"}
        call_tool = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "search"}}
        response = httpx.post(f"{world.url}/mcp", json=call_tool, headers=headers, timeout=30)
        assert response.status_code == 401 and token[-40:] not in response.text and "12.4" not in response.text


def test_a_body_over_the_api_bound_is_refused_before_the_token_is_looked_at(world: World) -> None:
    limit = world.runtime.settings.server.max_body_bytes
    response = httpx.post(
        f"{world.url}/mcp", content=b"x" * (limit + 1), headers={**MCP_ACCEPT, "Content-Type": "application/json"}
    )
    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"


def test_a_streamed_body_over_the_bound_is_refused_with_a_valid_token(world: World) -> None:
    limit = world.runtime.settings.server.max_body_bytes

    def chunks() -> Iterator[bytes]:  # no Content-Length: only the running count can stop it
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    headers = {**MCP_ACCEPT, **world.bearer(FIN), "Content-Type": "application/json"}
    response = httpx.post(f"{world.url}/mcp", content=chunks(), headers=headers, timeout=30)
    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"


# -- the rest of the API is as it was -----------------------------------------------------------------


def test_the_rest_of_the_api_is_unaffected(world: World) -> None:
    assert httpx.get(f"{world.url}/healthz", timeout=30).json() == {"status": "ok"}
    me = httpx.get(f"{world.url}/v1/me", headers=world.bearer(FIN), timeout=30)
    assert me.status_code == 200 and me.json()["object_id"] == ALICE
    refused = httpx.get(f"{world.url}/v1/me", timeout=30)
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
    for path in ("/mcpx", "/mcp/tools", "/.well-known/oauth-protected-resource", "/.well-known/other"):
        missing = httpx.get(f"{world.url}{path}", timeout=30, follow_redirects=True)
        assert missing.status_code == 404, path
        assert missing.headers["content-type"] == "application/problem+json", path
    schema = httpx.get(f"{world.url}/openapi.json", timeout=30).json()
    assert "/v1/chat" in schema["paths"] and not any(p.startswith(("/mcp", "/.well-known")) for p in schema["paths"])


# -- switched off, not started, started twice ----------------------------------------------------------


def test_switched_off_there_is_no_mcp_endpoint_and_no_metadata(runtime: Runtime) -> None:
    off = runtime.settings.model_copy(update={"mcp": McpSettings(enabled=False)})
    with TestClient(build_api(off, runtime=runtime)) as client:
        for path in ("/mcp", METADATA_PATH):
            response = client.post(path, json=INIT, headers=MCP_ACCEPT)
            assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
        assert client.get("/healthz").status_code == 200


def test_an_app_not_started_answers_503_and_one_started_twice_serves_each_time(runtime: Runtime) -> None:
    app: FastAPI = build_api(runtime.settings, runtime=runtime)
    response = TestClient(app).post("/mcp", json=INIT, headers=MCP_ACCEPT)  # no lifespan: no task group
    assert response.status_code == 503 and response.json()["title"] == "Service Unavailable"
    token = World(runtime, "").token(FIN)
    for _ in range(2):  # the SDK's session manager runs once: each start builds a fresh one
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            headers = {**MCP_ACCEPT, "Authorization": f"Bearer {token}"}
            initialized = client.post("/mcp", json=INIT, headers=headers)
            assert initialized.status_code == 200 and '"name":"clearance"' in initialized.text, initialized.text


def test_the_resource_url_setting_names_the_endpoint_in_metadata_and_challenge(runtime: Runtime) -> None:
    public = runtime.settings.model_copy(
        update={"mcp": McpSettings(resource_url="https://rag.contoso.example/mcp"), "server": ServerSettings()}
    )
    with TestClient(build_api(public, runtime=runtime), base_url="http://127.0.0.1:8000") as client:
        challenge = client.post("/mcp", json=INIT, headers=MCP_ACCEPT).headers["www-authenticate"]
        assert f'resource_metadata="https://rag.contoso.example{METADATA_PATH}"' in challenge
        assert client.get(METADATA_PATH).json()["resource"] == "https://rag.contoso.example/mcp"


# -- nothing unaudited ---------------------------------------------------------------------------------


def test_the_store_down_answers_nothing_over_the_api_port(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, target: store_fixtures.StoreTarget
) -> None:
    built = build_runtime(world_settings(tmp_path, target), embedder=embedder)
    try:
        built.pipeline.run(FilesystemSource(root=tmp_path / "corpus", tenant_id=TENANT))
        down = _take_store_down(built, target.backend)
        token = World(down, "").token(FIN)
        with serve_api(down) as url:
            for tool, arguments in (("ask", {"question": "What was the Q3 revenue?"}), ("search", {"query": "Q3"})):
                result = call(url, token, tool, arguments)
                assert result.is_error and "12.4" not in str(result.content)
                assert "audit store is unavailable" in str(result.content)
    finally:
        built.close()
