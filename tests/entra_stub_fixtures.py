"""Shared pieces of the Entra ID tests: the real validator, msal and Graph resolver over the HTTPS stub.

Nothing here fakes a library: the stub is a real HTTPS server on loopback with its
own CA, and everything else is the production code configured to talk to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from acl.dev.entra_stub import EntraStub
from acl.graph import GraphGroupResolver, GraphMode, graph_session
from acl.group_cache import RedisGroupStore
from acl.groups import GroupResolver, UnavailableGroupResolver, UserDirectory
from acl.jwks import JwksKeys
from acl.tokens import TokenPolicy, TokenValidator
from tests.conftest import OTHER_TENANT, TENANT

REDIS_URL = "redis://127.0.0.1:6379/0"
# A daemon that calls the API on its own (client credentials), and the app role it holds.
DAEMON_CLIENT = "b0000000-0000-4000-8000-0000000000d1"
DAEMON_ROLE = "Clearance.Search.All"


def new_id() -> str:
    return str(uuid.uuid4())


def guids(count: int) -> list[str]:
    return [new_id() for _ in range(count)]


def policy(stub: EntraStub, **overrides: Any) -> TokenPolicy:
    """What production configures, with the stub as authority (v1 and v2 issuers derived from it)."""
    settings: dict[str, Any] = {
        "audiences": (stub.api_audience, stub.client_id),
        "issuer_templates": stub.issuers(),
        "allowed_tenants": frozenset({TENANT, OTHER_TENANT}),
    }
    settings.update(overrides)
    return TokenPolicy(**settings)


def validator(
    stub: EntraStub,
    *,
    groups: GroupResolver | UserDirectory | None = None,
    keys: JwksKeys | None = None,
    **overrides: Any,
) -> TokenValidator:
    return TokenValidator(
        policy=policy(stub, **overrides),
        keys=keys or JwksKeys(url=stub.jwks_url, ca_file=stub.ca_file),
        groups=groups or UnavailableGroupResolver(),
    )


@contextmanager
def graph_resolver(
    stub: EntraStub, mode: GraphMode = GraphMode.APP_ONLY, **overrides: Any
) -> Iterator[GraphGroupResolver]:
    """The production resolver against the stub: msal with the stub as authority, its CA pinned."""
    session = graph_session(ca_file=stub.ca_file, timeout_seconds=5.0)
    settings: dict[str, Any] = {
        "client_id": stub.client_id,
        "client_credential": stub.client_secret,
        "mode": mode,
        "authority": stub.url,
        "graph_url": stub.graph_url,
        "session": session,
        "retry_budget_seconds": 5.0,
    }
    settings.update(overrides)
    resolver = GraphGroupResolver(**settings)
    try:
        yield resolver
    finally:
        resolver.close()
        session.close()


@contextmanager
def redis_store() -> Iterator[RedisGroupStore]:
    """A store under a fresh key prefix on the local Redis, removed afterwards; skips when none answers."""
    prefix = f"clearance-test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        pytest.skip(f"no Redis server answers at {REDIS_URL}: the shared group cache is untested here")
    store = RedisGroupStore(client=client, key_prefix=prefix)
    try:
        yield store
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()
