"""Latency that group resolution adds to a request, printed as JSON (milliseconds, p50/p95).

    python -m benchmarks.identity [--iterations 200] [--redis-url redis://127.0.0.1:6379/0]

Everything runs against the local Entra ID and Graph stub over HTTPS on loopback
(real msal, the real Graph resolver, real Redis when it answers), so the numbers
are the client side's cost plus a loopback round trip, not Microsoft's latency:

- ``cold_app_only``: a cache miss in app-only mode, one ``getMemberObjects`` call
  (msal's app token already cached, as in steady state);
- ``cold_on_behalf_of``: a cache miss in on-behalf-of mode for a new user: the
  token exchange plus ``transitiveMemberOf`` over 6 pages (520 groups, 100 a page);
- ``warm_in_process`` and ``warm_redis``: a cache hit (250 groups);
- ``token_validation``: the whole validator for a token that lists its groups
  (no directory involved), for scale.

``measure_identity()`` returns the report for a benchmark command to include.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from acl.dev.entra_stub import EntraStub
from acl.graph import GraphGroupResolver, GraphMode, graph_session
from acl.group_cache import RedisGroupStore
from acl.groups import CachedGroupResolver, UnavailableGroupResolver
from acl.jwks import JwksKeys
from acl.tokens import TokenPolicy, TokenValidator

TENANT = "d1f72fea-086f-4448-9dce-2f71deb8ef72"


def _stats(samples: list[float]) -> dict[str, float | int]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(samples), "p50_ms": round(statistics.median(ordered) * 1000, 3), "p95_ms": round(p95 * 1000, 3)}


def _timed(call: Callable[[], object], iterations: int) -> dict[str, float | int]:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return _stats(samples)


def _users(stub: EntraStub, count: int, groups: int) -> list[str]:
    users = [str(uuid.uuid4()) for _ in range(count)]
    for oid in users:
        stub.add_user(TENANT, oid, groups=[str(uuid.uuid4()) for _ in range(groups)])
    return users


def measure_identity(*, iterations: int = 200, redis_url: str | None = "redis://127.0.0.1:6379/0") -> dict[str, Any]:
    report: dict[str, Any] = {"iterations": iterations}
    with EntraStub() as stub:
        session = graph_session(ca_file=stub.ca_file)
        common: dict[str, Any] = {
            "client_id": stub.client_id,
            "client_credential": stub.client_secret,
            "authority": stub.url,
            "graph_url": stub.graph_url,
            "session": session,
        }
        app_only = GraphGroupResolver(mode=GraphMode.APP_ONLY, **common)
        on_behalf_of = GraphGroupResolver(mode=GraphMode.ON_BEHALF_OF, **common)
        try:
            warm_user = _users(stub, 1, 250)[0]
            started = time.perf_counter()
            app_only.member_groups(TENANT, warm_user)  # authority discovery and the app token, once
            report["first_lookup_ms"] = round((time.perf_counter() - started) * 1000, 3)

            cold_users = iter(_users(stub, iterations, 250))
            report["cold_app_only"] = _timed(lambda: app_only.member_groups(TENANT, next(cold_users)), iterations)

            obo_users = _users(stub, iterations, 520)
            assertions = iter([(oid, stub.mint_access_token(tenant_id=TENANT, object_id=oid)) for oid in obo_users])

            def obo() -> object:
                oid, assertion = next(assertions)
                return on_behalf_of.member_groups(TENANT, oid, assertion=assertion)

            report["cold_on_behalf_of"] = _timed(obo, iterations)

            local = CachedGroupResolver(inner=app_only, ttl_seconds=3600)
            local.member_groups(TENANT, warm_user)
            report["warm_in_process"] = _timed(lambda: local.member_groups(TENANT, warm_user), iterations)

            report["warm_redis"] = _warm_redis(app_only, warm_user, iterations, redis_url)
            report["token_validation"] = _validation(stub, iterations)
        finally:
            app_only.close()
            on_behalf_of.close()
            session.close()
    return report


def _warm_redis(inner: GraphGroupResolver, oid: str, iterations: int, redis_url: str | None) -> dict[str, Any]:
    if not redis_url:
        return {"skipped": "no Redis URL given"}
    store = RedisGroupStore(url=redis_url, key_prefix=f"clearance-bench:{uuid.uuid4().hex}:")
    try:
        if not store.ping():
            return {"skipped": f"no Redis server answers at {redis_url}"}
        shared = CachedGroupResolver(inner=inner, ttl_seconds=3600, store=store)
        shared.member_groups(TENANT, oid)
        result = _timed(lambda: shared.member_groups(TENANT, oid), iterations)
        shared.invalidate(TENANT, oid)
        return result
    finally:
        store.close()


def _validation(stub: EntraStub, iterations: int) -> dict[str, float | int]:
    tokens = TokenValidator(
        policy=TokenPolicy(
            audiences=(stub.api_audience,), issuer_templates=stub.issuers(), allowed_tenants=frozenset({TENANT})
        ),
        keys=JwksKeys(url=stub.jwks_url, ca_file=stub.ca_file),
        groups=UnavailableGroupResolver(),
    )
    token = stub.mint_access_token(
        tenant_id=TENANT, object_id=str(uuid.uuid4()), groups=[str(uuid.uuid4()) for _ in range(5)]
    )
    tokens.authenticate(token)  # the key set, once
    return _timed(lambda: tokens.authenticate(token), iterations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="empty: skip the Redis measurement")
    args = parser.parse_args()
    print(json.dumps(measure_identity(iterations=args.iterations, redis_url=args.redis_url or None), indent=2))


if __name__ == "__main__":
    main()
