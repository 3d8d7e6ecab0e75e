"""`clearance mcp`: the Model Context Protocol server (streamable HTTP) with `search` and `ask` tools.

Every tool call runs as the person whose bearer token came with it: the token
is validated by the API's own authenticator (the same validator, policy and
group resolution), and the principal it yields is what the answer service
trims by. There is no service identity: a request without a valid token is
refused with 401 and a ``WWW-Authenticate`` header naming the protected
resource metadata (RFC 9728), which points clients at the Entra ID authority
to get a token from, as the MCP authorization rules ask.

The server is stateless (no MCP sessions): every HTTP request carries and
proves its own identity, so no call can ride on another person's session.

The HTTP API serves the same endpoint at ``/mcp`` on its own port, over its own
runtime (:func:`mounted_mcp`, unless ``CLEARANCE_MCP__ENABLED=false``);
`clearance mcp` serves it alone, for deployments that run it as a process of its
own against a Qdrant server index.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, TypeVar

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import AnyHttpUrl, ConfigDict, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from acl.principal import Principal
from acl.principal_cache import TokenAuthenticator
from api.mounts import MountedApp
from api.schemas import AccessOut, ChatResponse, SearchHit, SearchResponse
from clearance.settings import Mode, Settings
from core.errors import AuthenticationError, ClearanceError, StoreUnavailableError
from retrieval.answer import AnswerService

if TYPE_CHECKING:
    from clearance.compose import Runtime

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MAX_QUERY_CHARS = 2000  # as /v1/search and /v1/chat
_T = TypeVar("_T")


class PrincipalToken(AccessToken):
    """The SDK's access token, carrying the principal the token was validated into."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    principal: Principal


class PrincipalVerifier:
    """The SDK's token verifier over Clearance's authenticator: a token is valid iff the API would accept it."""

    def __init__(self, *, authenticator: TokenAuthenticator, scopes: tuple[str, ...]) -> None:
        self._authenticator = authenticator
        self._scopes = list(scopes)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            # Validation may fetch signing keys or resolve groups over the network: off the event loop.
            principal = await anyio.to_thread.run_sync(self._authenticator.authenticate, token)
        except AuthenticationError as exc:
            log.info("MCP request refused: %s", type(exc).__name__)
            return None
        return PrincipalToken(
            token=token,
            client_id="entra",
            # The validator enforced the token policy (audience, scopes or app roles); the SDK's scope check
            # then only repeats it in the names the metadata advertises.
            scopes=self._scopes,
            subject=f"{principal.tenant_id}/{principal.object_id}",
            principal=principal,
        )


@dataclass(frozen=True, slots=True)
class McpAuthorization:
    """What the protected resource metadata says: this resource, who issues its tokens, which scopes."""

    resource_url: str
    authorization_server: str
    scopes: tuple[str, ...]


def mcp_authorization(settings: Settings, *, host: str, port: int) -> McpAuthorization:
    """The metadata from settings: the configured URLs, or the Entra ID issuer of the allowed tenant."""
    auth = settings.auth
    resource = settings.mcp.resource_url or f"http://{_url_host(host)}:{port}{MCP_PATH}"
    issuer = settings.mcp.authorization_server
    if not issuer:
        if settings.mode is Mode.DEVELOPMENT:
            from acl.dev.idp import DEV_ISSUER_TEMPLATE

            tenants = sorted(settings.auth.allowed_tenants)
            issuer = DEV_ISSUER_TEMPLATE.format(tid=tenants[0] if len(tenants) == 1 else "organizations")
        else:
            tenants = sorted(auth.allowed_tenants)
            tenant = tenants[0] if len(tenants) == 1 else "organizations"
            issuer = f"{auth.authority.rstrip('/')}/{tenant}/v2.0"
    # Entra scopes are named after the API's application ID URI: api://clearance/access_as_user.
    audience = auth.audiences[0].rstrip("/")
    scopes = tuple(f"{audience}/{scope}" for scope in auth.required_scopes)
    return McpAuthorization(resource_url=resource, authorization_server=issuer, scopes=scopes)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def build_mcp_server(
    *,
    authenticator: TokenAuthenticator,
    answers: AnswerService,
    authorization: McpAuthorization,
    audit_ready: Callable[[], None] = lambda: None,
) -> MCPServer:
    """The MCP server: tools over ``answers``, callers authenticated by ``authenticator``.

    ``audit_ready`` raises when the audit store cannot be written: nothing is
    answered unaudited (the answer service's own audit write would fail too,
    after the work).
    """
    server: MCPServer = MCPServer(
        name="clearance",
        title="Clearance",
        instructions=(
            "Search and ask over the company's documents. Every result is trimmed to what the signed-in "
            "person may open; answers cite passages as [n], listed in `citations`."
        ),
        token_verifier=PrincipalVerifier(authenticator=authenticator, scopes=authorization.scopes),
        auth=AuthSettings(
            issuer_url=AnyHttpUrl(authorization.authorization_server),
            resource_server_url=AnyHttpUrl(authorization.resource_url),
            required_scopes=list(authorization.scopes) or None,
            # Clearance's validator pins the audience itself (Entra tokens carry no RFC 8707 resource).
            validate_token_resource=False,
        ),
    )

    @server.tool(description="Passages from documents you may read, nearest first, with their source and score.")
    async def search(
        query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description="what to look for")],
        ctx: Context,
        top_k: Annotated[int, Field(ge=1, le=50, description="how many passages")] = 5,
    ) -> SearchResponse:
        principal = _caller(ctx)
        passages = await _run(audit_ready, lambda: answers.search(principal, query, top_k=top_k))
        return SearchResponse(results=[SearchHit.of(p) for p in passages], access=AccessOut.of(principal))

    @server.tool(
        description="A short answer from documents you may read, citing passages as [n] (listed in `citations`); "
        "when nothing you may read answers the question, it says it does not know."
    )
    async def ask(
        question: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description="the question")],
        ctx: Context,
    ) -> ChatResponse:
        principal = _caller(ctx)
        result = await _run(audit_ready, lambda: answers.answer(principal, question))
        return ChatResponse.of(result, principal)

    return server


def _caller(ctx: Context) -> Principal:
    """The principal of this HTTP request's own bearer token (set by the SDK's bearer middleware)."""
    request = ctx.request_context.request
    user = getattr(request, "user", None)
    token = user.access_token if isinstance(user, AuthenticatedUser) else None
    if not isinstance(token, PrincipalToken):
        raise ToolError("not authenticated")  # unreachable behind the bearer middleware: refuse, never guess
    return token.principal


async def _run(audit_ready: Callable[[], None], work: Callable[[], _T]) -> _T:
    """Runs blocking service work off the event loop; domain errors become tool errors with fixed texts."""
    try:
        await anyio.to_thread.run_sync(audit_ready)
        return await anyio.to_thread.run_sync(work)
    except StoreUnavailableError:
        raise ToolError("the audit store is unavailable; nothing is answered unaudited") from None
    except ClearanceError as exc:
        log.info("MCP tool failed: %s", type(exc).__name__)
        raise ToolError(str(exc) if exc.public else "the request could not be completed") from None


def build_mcp_app(
    *,
    authenticator: TokenAuthenticator,
    answers: AnswerService,
    authorization: McpAuthorization,
    host: str,
    audit_ready: Callable[[], None] = lambda: None,
    max_body_bytes: int = 1_048_576,
) -> Starlette:
    """The ASGI app: the MCP endpoint at /mcp and its protected resource metadata under /.well-known/."""
    server = build_mcp_server(
        authenticator=authenticator, answers=answers, authorization=authorization, audit_ready=audit_ready
    )
    # Stateless: each request is authenticated on its own; DNS-rebinding protection on loopback binds.
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, host=host, max_request_body_size=max_body_bytes
    )
    # Served by the API, a body over its bound is refused from inside this app: say so as the API does.
    app.add_exception_handler(HTTPException, _http_problem)
    return app


async def _http_problem(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    problem = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    return JSONResponse(problem, status_code=status, media_type="application/problem+json")


def runtime_mcp_app(runtime: Runtime, *, settings: Settings, host: str, port: int) -> Starlette:
    """The MCP app over ``runtime``'s authenticator, answers and audit, as served on ``host``:``port``."""
    trail = runtime.store.trail if runtime.store is not None else None
    return build_mcp_app(
        authenticator=runtime.identity.authenticator,
        answers=runtime.answers,
        authorization=mcp_authorization(settings, host=host, port=port),
        host=host,
        audit_ready=trail.log.ping if trail is not None else lambda: None,
        max_body_bytes=settings.server.max_body_bytes,
    )


class McpEndpoint:
    """The MCP app as routes of another server: a fresh SDK app for each run, since its session manager runs once.

    Between runs (an app built but not started) it answers 503: the SDK's
    transport needs its task group, which only :meth:`running` provides.
    """

    def __init__(self, build: Callable[[], Starlette]) -> None:
        self._build = build
        self._serving: Starlette | None = None
        # Paths are fixed by the settings: the endpoint, and its metadata where the 401's challenge points.
        self.paths = tuple(route.path for route in build().routes if isinstance(route, Route))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        serving = self._serving
        if serving is None:
            problem = {"type": "about:blank", "title": "Service Unavailable", "status": 503}
            await JSONResponse(problem, status_code=503, media_type="application/problem+json")(scope, receive, send)
            return
        await serving(scope, receive, send)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        app = self._build()
        async with app.router.lifespan_context(app):
            self._serving = app
            try:
                yield
            finally:
                self._serving = None


def mounted_mcp(runtime: Runtime, *, settings: Settings) -> MountedApp:
    """The MCP endpoint for the HTTP API to serve at /mcp on its own host and port (``settings.server``)."""
    host, port = settings.server.host, settings.server.port
    if not settings.mcp.resource_url and host in ("0.0.0.0", "::", ""):  # listening everywhere names no address
        log.warning(
            "MCP resource URL is http://%s:%d/mcp, which clients cannot reach: set CLEARANCE_MCP__RESOURCE_URL",
            host,
            port,
        )
    endpoint = McpEndpoint(lambda: runtime_mcp_app(runtime, settings=settings, host=host, port=port))
    return MountedApp(app=endpoint, paths=endpoint.paths, running=endpoint.running)


def serve_mcp(settings: Settings, *, host: str, port: int) -> None:
    """Builds the runtime (index, identity, answers, audit) and serves the MCP app alone with uvicorn until stopped."""
    import uvicorn

    from clearance.compose import build_runtime

    runtime = build_runtime(settings)
    try:
        app = runtime_mcp_app(runtime, settings=settings, host=host, port=port)
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            h11_max_incomplete_event_size=16 * 1024,  # bounded request heads, as `clearance serve`
            timeout_keep_alive=5,
        )
    finally:
        runtime.close()
