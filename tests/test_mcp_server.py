"""`clearance mcp` through the official MCP SDK's client, against the real MCP app on a loopback port.

Every tool call carries a real RS256 token of the development identity
provider and must be trimmed to its owner; a call without a valid token is
refused before any tool runs, and the refusal points at the protected resource
metadata, which points at the token issuer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from starlette.types import ASGIApp

from clearance.compose import Runtime, build_runtime
from clearance.mcp_server import McpAuthorization, build_mcp_app, mcp_authorization
from clearance.settings import AuthSettings, IndexSettings, IngestSettings, McpSettings, Mode, Settings
from index.embedding import SentenceTransformerEmbedder
from ingest.source import FilesystemSource
from tests import store_fixtures
from tests.conftest import TENANT, write_users
from tests.test_audit_api import _take_store_down, audited  # noqa: F401  (fixture)
from tests.test_permissions import ALICE, FIN, build_corpus

target = store_fixtures.target
FINANCE_FACT = "12.4 million"
DEV_ISSUER = f"https://dev-idp.clearance.invalid/{TENANT}/v2.0"


@contextlib.contextmanager
def serve_mcp(runtime: Runtime, *, audit_ready: Callable[[], None] | None = None) -> Iterator[str]:
    """The MCP app over ``runtime`` on a loopback port bound first (its URL is the resource identifier)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    trail = runtime.store.trail if runtime.store is not None else None
    app: ASGIApp = build_mcp_app(
        authenticator=runtime.identity.authenticator,
        answers=runtime.answers,
        authorization=mcp_authorization(runtime.settings, host="127.0.0.1", port=port),
        host="127.0.0.1",
        audit_ready=audit_ready or (trail.log.ping if trail is not None else lambda: None),
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
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

    def token(self, *groups: str, oid: str = ALICE) -> str:
        assert self.runtime.dev is not None
        return self.runtime.dev.idp.mint(tenant_id=TENANT, object_id=oid, groups=groups)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[World]:
    root = tmp_path_factory.mktemp("mcp")
    corpus = build_corpus(root / "corpus")
    settings = Settings(
        data_dir=root / "data",
        users_file=write_users(root / "users.json"),
        index=IndexSettings(location=":memory:"),
        mode=Mode.DEVELOPMENT,
        ingest=IngestSettings(allowed_roots={TENANT: [corpus]}, isolate_parsing=False),
        auth=AuthSettings(allowed_tenants=[TENANT]),
    )
    runtime = build_runtime(settings, embedder=embedder)
    job = runtime.pipeline.run(FilesystemSource(root=corpus, tenant_id=TENANT))
    assert not job.errors, job.errors
    with serve_mcp(runtime) as url:
        yield World(runtime, url)
    runtime.close()


@contextlib.asynccontextmanager
async def session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as mcp,
    ):
        await mcp.initialize()
        yield mcp


def call(url: str, token: str | None, tool: str, arguments: dict[str, Any]) -> Any:
    async def run() -> Any:
        async with session(url, token) as mcp:
            return await mcp.call_tool(tool, arguments)

    return anyio.run(run)


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result
    found: dict[str, Any] = result.structured_content
    return found


# -- tools run as the caller --------------------------------------------------------------------------


def test_the_tools_are_search_and_ask(world: World) -> None:
    async def run() -> list[str]:
        async with session(world.url, world.token()) as mcp:
            return sorted(tool.name for tool in (await mcp.list_tools()).tools)

    assert anyio.run(run) == ["ask", "search"]


def test_two_people_search_and_get_only_what_each_may_read(world: World) -> None:
    seen = structured(call(world.url, world.token(FIN), "search", {"query": "Q3 revenue", "top_k": 10}))
    unseen = structured(call(world.url, world.token(), "search", {"query": "Q3 revenue", "top_k": 10}))
    assert seen["results"][0]["source"] == "finance/q3.md" and FINANCE_FACT in seen["results"][0]["snippet"]
    assert unseen["results"] and all(hit["source"].startswith("company/") for hit in unseen["results"])
    assert seen["access"] == {"narrowed": False, "reasons": []}


def test_two_people_ask_and_get_answers_trimmed_to_what_each_may_read(world: World) -> None:
    analyst = call(world.url, world.token(FIN), "ask", {"question": "What was the Q3 revenue?"})
    member = call(world.url, world.token(), "ask", {"question": "What was the Q3 revenue?"})
    answer = structured(analyst)
    assert FINANCE_FACT in answer["answer"] and "[1]" in answer["answer"]
    assert [c["source"] for c in answer["citations"]] == ["finance/q3.md"] and answer["outcome"] == "grounded"
    assert answer["answer_id"]
    assert FINANCE_FACT not in json.dumps(structured(member)) and "12.4" not in str(member.content)


def test_tool_arguments_are_bounded(world: World) -> None:
    result = call(world.url, world.token(), "search", {"query": "picnic", "top_k": 500})
    assert result.is_error


# -- authorization ------------------------------------------------------------------------------------


def test_a_request_without_a_token_is_401_pointing_at_the_resource_metadata(world: World) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    response = httpx.post(f"{world.url}/mcp", json=init, headers=headers, timeout=30)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert f'resource_metadata="{world.url}/.well-known/oauth-protected-resource/mcp"' in challenge


def test_a_bad_token_is_refused_by_the_sdk_client_and_never_echoed(world: World) -> None:
    forged = world.token()[:-8] + "AAAAAAAA"
    with pytest.raises(BaseExceptionGroup) as raised:  # the SDK's task group carries the transport's error
        call(world.url, forged, "search", {"query": "Q3 revenue"})
    errors = _leaves(raised.value)
    assert [type(e) for e in errors] == [MCPError] and str(errors[0]) == "Server returned an error response"
    response = httpx.post(
        f"{world.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {forged}", "Accept": "application/json, text/event-stream"},
        timeout=30,
    )
    assert response.status_code == 401 and forged[-40:] not in response.text


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [
        leaf
        for error in group.exceptions
        for leaf in (_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    ]


def test_the_resource_metadata_names_this_resource_its_issuer_and_scopes(world: World) -> None:
    metadata = httpx.get(f"{world.url}/.well-known/oauth-protected-resource/mcp", timeout=30).json()
    assert metadata["resource"] == f"{world.url}/mcp"
    assert metadata["authorization_servers"] == [DEV_ISSUER]
    assert metadata["scopes_supported"] == ["api://clearance/access_as_user"]
    assert metadata["bearer_methods_supported"] == ["header"]


def test_production_metadata_points_at_the_entra_authority(tmp_path: Path) -> None:
    one = Settings(data_dir=tmp_path, auth=AuthSettings(allowed_tenants=[TENANT], audiences=["api://contoso-rag"]))
    assert mcp_authorization(one, host="0.0.0.0", port=8001) == McpAuthorization(
        resource_url="http://0.0.0.0:8001/mcp",
        authorization_server=f"https://login.microsoftonline.com/{TENANT}/v2.0",
        scopes=("api://contoso-rag/access_as_user",),
    )
    several = one.model_copy(
        update={
            "auth": AuthSettings(allowed_tenants=[TENANT, "d397c693-4a32-47ad-9ee4-9ad621108730"]),
            "mcp": McpSettings(resource_url="https://rag.contoso.example/mcp"),
        }
    )
    found = mcp_authorization(several, host="127.0.0.1", port=8001)
    assert found.authorization_server == "https://login.microsoftonline.com/organizations/v2.0"
    assert found.resource_url == "https://rag.contoso.example/mcp"


# -- nothing unaudited ---------------------------------------------------------------------------------


def test_the_store_down_answers_nothing(audited: Runtime, target: store_fixtures.StoreTarget) -> None:  # noqa: F811
    down = _take_store_down(audited, target.backend)
    assert down.dev is not None
    token = down.dev.idp.mint(tenant_id=TENANT, object_id=ALICE, groups=[FIN])
    with serve_mcp(down) as url:
        for tool, arguments in (("ask", {"question": "What was the Q3 revenue?"}), ("search", {"query": "Q3"})):
            result = call(url, token, tool, arguments)
            assert result.is_error and "12.4" not in str(result.content) and "revenue" not in str(result.content)
            assert "audit store is unavailable" in str(result.content)
