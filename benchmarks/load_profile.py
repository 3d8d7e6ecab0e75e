"""The server side of the load test: the app served in-process, and where one ``/v1/search`` goes.

:func:`serving` runs an ASGI app under uvicorn on 127.0.0.1 and a free port in a
thread. :func:`profile_search` sends single ``/v1/search`` requests, one at a
time, to the product's app whose components are wrapped in stopwatches (the
authenticator, the embedder, the index, the audit sink, and the ASGI app as a
whole), and reports the median of each stage per request; what the stopwatches
do not cover is the framework (routing, validation, serialization, thread hops)
and, outside the server, HTTP on loopback and the client. A micro-benchmark
splits authentication into token validation and principal building.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, cast

import httpx
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from acl.index_filter import security_filter
from acl.principal import Principal
from acl.principal_cache import PrincipalCache, TokenAuthenticator
from api.app import create_app
from api.schemas import AccessOut, SearchHit, SearchResponse
from clearance.compose import Runtime
from core.records import Passage
from index.ports import ChunkIndex, Embedder
from index.query_cache import QueryEmbeddingCache
from retrieval.answer import AnswerService
from retrieval.audit import AnswerAudit, AuditSink, JsonlAuditSink
from retrieval.generation.extractive import ExtractiveGenerator

SERVER_START_TIMEOUT_S = 30.0
STAGES = ("authenticate", "embed_query", "index_search", "audit_write")


@contextlib.contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 and a free port, in a thread; yields its base URL."""
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every response (headers and body written separately) waited ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # As `clearance serve` runs it, minus the access log (a line per request on stderr).
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, h11_max_incomplete_event_size=16 * 1024, timeout_keep_alive=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="load-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_TIMEOUT_S)
        sock.close()


class Stopwatch:
    """Durations in milliseconds by stage name, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.laps: dict[str, list[float]] = defaultdict(list)

    @contextlib.contextmanager
    def lap(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            with self._lock:
                self.laps[stage].append(elapsed)

    def reset(self) -> None:
        with self._lock:
            self.laps.clear()


class _TimedAuthenticator:
    def __init__(self, inner: TokenAuthenticator, watch: Stopwatch) -> None:
        self._inner, self._watch = inner, watch

    def authenticate(self, token: str) -> Principal:
        with self._watch.lap("authenticate"):
            return self._inner.authenticate(token)


class _TimedEmbedder:
    def __init__(self, inner: Embedder, watch: Stopwatch) -> None:
        self._inner, self._watch = inner, watch

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def fingerprint(self) -> str:
        return self._inner.fingerprint

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        with self._watch.lap("embed_query"):
            return self._inner.embed_query(text)


class _TimedIndex:
    """Times ``search`` (security filter built and applied inside); everything else goes straight through."""

    def __init__(self, inner: ChunkIndex, watch: Stopwatch) -> None:
        self._inner, self._watch = inner, watch

    def search(self, principal: Principal, vector: list[float], **options: Any) -> list[Passage]:
        with self._watch.lap("index_search"):
            return self._inner.search(principal, vector, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _TimedAudit:
    def __init__(self, inner: AuditSink, watch: Stopwatch) -> None:
        self._inner, self._watch = inner, watch

    def record(self, entry: AnswerAudit) -> None:
        with self._watch.lap("audit_write"):
            self._inner.record(entry)


class _TimedApp:
    """The whole request inside the server: from the ASGI call to the last byte handed to uvicorn."""

    def __init__(self, app: ASGIApp, watch: Stopwatch) -> None:
        self._app, self._watch = app, watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        with self._watch.lap("server_total"):
            await self._app(scope, receive, send)


def profile_search(
    runtime: Runtime, *, tokens: dict[str, str], stems: Sequence[str], requests: int = 30, user: str = "alice"
) -> dict[str, Any]:
    """Median milliseconds per stage of one ``/v1/search``, without caches and with each cache warm."""
    validator = runtime.tokens
    auth = runtime.settings.auth
    ttl = max(auth.principal_cache_ttl_seconds, 1.0)

    def principal_cache() -> PrincipalCache:
        return PrincipalCache(inner=validator, ttl_seconds=ttl)

    raw = runtime.embedder
    cases: dict[str, Any] = {
        "no_caches": _profile_case(runtime, validator, raw, tokens[user], stems, requests, repeat=False),
        "principal_cache_warm": _profile_case(
            runtime, principal_cache(), raw, tokens[user], stems, requests, repeat=False
        ),
        "both_caches_warm_repeated_query": _profile_case(
            runtime,
            principal_cache(),
            QueryEmbeddingCache(inner=raw, max_entries=16),
            tokens[user],
            stems,
            requests,
            repeat=True,
        ),
    }
    return {
        "user": user,
        "requests_per_case": requests,
        "stages_median_ms": cases,
        "authentication_split_median_ms": {name: _auth_split(runtime, token) for name, token in tokens.items()},
        "serialization_median_ms": _serialization(runtime, validator.authenticate(tokens[user]), stems[0]),
    }


def _profile_case(
    runtime: Runtime,
    authenticator: TokenAuthenticator,
    embedder: Embedder,
    token: str,
    stems: Sequence[str],
    requests: int,
    *,
    repeat: bool,
) -> dict[str, float | None]:
    watch = Stopwatch()
    settings = runtime.settings
    answers = AnswerService(
        index=cast(ChunkIndex, _TimedIndex(runtime.index, watch)),
        embedder=_TimedEmbedder(embedder, watch),
        generator=ExtractiveGenerator(),
        fallback=ExtractiveGenerator(),
        top_k=settings.retrieval.top_k,
        min_score=settings.retrieval.min_score,
        audit=_TimedAudit(JsonlAuditSink(path=settings.data_dir / "audit" / "answers.jsonl"), watch),
    )
    components = replace(
        runtime.api_components(), authenticator=_TimedAuthenticator(authenticator, watch), answers=answers
    )
    app = _TimedApp(create_app(components), watch)
    headers = {"Authorization": f"Bearer {token}"}
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=30.0) as client:
        for number in range(requests + 3):
            if number == 3:
                watch.reset()  # three warm-up requests fill the caches and the connection
            query = stems[0] if repeat else f"{stems[number % len(stems)]} profile {number}"
            with watch.lap("client_total"):
                response = client.post("/v1/search", json={"query": query}, headers=headers)
            response.raise_for_status()
    laps = watch.laps
    per_request = range(len(laps["client_total"]))
    inside = [sum(laps[s][i] for s in STAGES) for i in per_request]
    result = {stage: _median(laps[stage]) for stage in (*STAGES, "server_total", "client_total")}
    result["framework_and_serialization"] = _median([laps["server_total"][i] - inside[i] for i in per_request])
    result["http_loopback_and_client"] = _median(
        [laps["client_total"][i] - laps["server_total"][i] for i in per_request]
    )
    return result


def _auth_split(runtime: Runtime, token: str, iterations: int = 100) -> dict[str, float | None]:
    """Token validation (decodes, claim checks, RS256) against principal building (claims, groups, Principal).

    Reaches into the validator's two private stages on purpose: the split is what this measures.
    """
    validator = runtime.tokens
    claims, kind = validator._verified_claims(token)
    principal = validator.authenticate(token)
    cache = PrincipalCache(inner=validator, ttl_seconds=60.0)
    cache.authenticate(token)
    return {
        "authenticate": _timed(lambda: validator.authenticate(token), iterations),
        "token_validation": _timed(lambda: validator._verified_claims(token), iterations),
        "principal_building": _timed(lambda: validator._principal(claims, kind, token), iterations),
        "principal_cache_hit": _timed(lambda: cache.authenticate(token), iterations),
        "security_filter": _timed(lambda: security_filter(principal), iterations),
        "groups": len(principal.groups),
    }


def _serialization(runtime: Runtime, principal: Principal, query: str) -> float | None:
    passages = runtime.index.search(principal, runtime.embedder.embed_query(query), top_k=5)

    def encode() -> str:
        return SearchResponse(
            results=[SearchHit.of(p) for p in passages], access=AccessOut.of(principal)
        ).model_dump_json()

    return _timed(encode, 100)


def _timed(operation: Callable[[], object], iterations: int) -> float | None:
    laps = []
    for _ in range(iterations):
        started = time.perf_counter()
        operation()
        laps.append((time.perf_counter() - started) * 1000)
    return _median(laps)


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None
