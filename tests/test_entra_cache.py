"""The group cache: per (tenant, user), with a TTL, in-process or shared in Redis; failures never cached.

The Redis tests run against the real server at 127.0.0.1:6379 under a fresh key
prefix that is removed afterwards; they skip, saying so, when no server answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from acl.dev.entra_stub import Counters, EntraStub, Switches
from acl.graph import GraphMode
from acl.group_cache import RedisGroupStore, build_group_cache
from acl.groups import CachedGroupResolver, InProcessGroupStore, UserType
from acl.principal import NarrowingReason, group_key
from core.errors import GroupResolutionError
from tests.conftest import TENANT, ManualClock
from tests.entra_stub_fixtures import graph_resolver, guids, new_id, redis_store, validator

FAILED = NarrowingReason.GROUP_RESOLUTION_FAILED


@pytest.fixture(autouse=True)
def fresh_switches(stub: EntraStub) -> None:
    stub.switches, stub.counters = Switches(), Counters()  # the module's stub (conftest) with no switch left on


def overage_user(stub: EntraStub) -> tuple[str, list[str]]:
    oid, groups = new_id(), guids(250)
    stub.add_user(TENANT, oid, groups=groups)
    return oid, groups


# --- in-process ------------------------------------------------------------------------------------


def test_removed_group_stops_granting_access_when_the_in_process_ttl_ends(stub: EntraStub) -> None:
    oid, groups = overage_user(stub)
    removed = groups[0]
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    clock = ManualClock(start=0.0)
    with graph_resolver(stub) as graph:
        tokens = validator(stub, groups=CachedGroupResolver(inner=graph, ttl_seconds=60, clock=clock))
        assert group_key(TENANT, removed) in tokens.authenticate(token).access_keys()
        stub.set_groups(TENANT, oid, groups[1:])
        clock.now = 59.0  # within the TTL the cached answer stands: one Graph call so far
        assert group_key(TENANT, removed) in tokens.authenticate(token).access_keys()
        assert stub.counters.graph == 1
        clock.now = 60.0
        assert group_key(TENANT, removed) not in tokens.authenticate(token).access_keys()
    assert stub.counters.graph == 2


def test_user_type_is_cached_beside_the_groups(stub: EntraStub) -> None:
    oid = new_id()
    stub.add_user(TENANT, oid, user_type="Guest")
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid, acct=None)
    with graph_resolver(stub) as graph:
        tokens = validator(stub, groups=CachedGroupResolver(inner=graph, ttl_seconds=60))
        assert all(tokens.authenticate(token).guest for _ in range(3))
    assert stub.counters.graph == 1


def test_in_process_store_evicts_the_oldest_entry_when_full() -> None:
    store = InProcessGroupStore(max_entries=2)
    for key in ("a", "b", "c"):
        store.put(key, key, 60)
    assert (store.get("a"), store.get("b"), store.get("c")) == (None, "b", "c")


def test_zero_ttl_caches_nothing(stub: EntraStub) -> None:
    oid, groups = overage_user(stub)
    with graph_resolver(stub) as graph:
        cache = CachedGroupResolver(inner=graph, ttl_seconds=0)
        assert cache.member_groups(TENANT, oid) == cache.member_groups(TENANT, oid) == frozenset(groups)
    assert stub.counters.graph == 2


# --- Redis -----------------------------------------------------------------------------------------


@pytest.fixture()
def store() -> Iterator[RedisGroupStore]:
    with redis_store() as shared:
        yield shared


def test_removed_group_stops_granting_access_when_the_redis_ttl_ends(stub: EntraStub, store: RedisGroupStore) -> None:
    oid, groups = overage_user(stub)
    removed = groups[0]
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    with graph_resolver(stub) as graph:
        tokens = validator(stub, groups=CachedGroupResolver(inner=graph, ttl_seconds=1.0, store=store))
        assert group_key(TENANT, removed) in tokens.authenticate(token).access_keys()
        stub.set_groups(TENANT, oid, groups[1:])
        assert group_key(TENANT, removed) in tokens.authenticate(token).access_keys()  # cached, within the TTL
        time.sleep(1.1)
        principal = tokens.authenticate(token)
    assert group_key(TENANT, removed) not in principal.access_keys() and principal.narrowed == frozenset()
    assert stub.counters.graph == 2


def test_replicas_sharing_redis_ask_graph_once_per_user(stub: EntraStub, store: RedisGroupStore) -> None:
    oid, groups = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    with graph_resolver(stub, GraphMode.ON_BEHALF_OF) as first, graph_resolver(stub, GraphMode.ON_BEHALF_OF) as second:
        replicas = [
            validator(stub, groups=CachedGroupResolver(inner=g, ttl_seconds=60, store=store)) for g in (first, second)
        ]
        assert [r.authenticate(token).groups for r in replicas] == [frozenset(groups)] * 2
    assert stub.counters.graph == 3  # 250 groups on three pages, asked by the first replica only
    assert stub.counters.token == 1


def test_failed_lookup_leaves_nothing_in_redis(stub: EntraStub, store: RedisGroupStore) -> None:
    oid, groups = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid, acct=None)
    stub.switches.graph_status, stub.switches.retry_after = 503, "30"
    with graph_resolver(stub) as graph:
        tokens = validator(stub, groups=CachedGroupResolver(inner=graph, ttl_seconds=60, store=store))
        narrowed = tokens.authenticate(token)
        assert narrowed.narrowed == {FAILED, NarrowingReason.GUEST_STATUS_UNKNOWN}
        assert _keys(store) == []
        stub.switches.graph_status = None
        recovered = tokens.authenticate(token)
    assert recovered.narrowed == frozenset() and recovered.groups == frozenset(groups)
    assert len(_keys(store)) == 2  # groups and user type, now that they are known


def test_redis_entry_this_code_did_not_write_is_a_miss_never_a_grant(stub: EntraStub, store: RedisGroupStore) -> None:
    oid, groups = overage_user(stub)
    with graph_resolver(stub) as graph:
        cache = CachedGroupResolver(inner=graph, ttl_seconds=60, store=store)
        assert cache.member_groups(TENANT, oid) == frozenset(groups)
        for key in _keys(store):
            store._client.set(key, b'{"groups": ["not-a-list"]}')
        assert cache.member_groups(TENANT, oid) == frozenset(groups)
        for key in _keys(store):
            store._client.set(key, b"\xff\xfe")
        assert cache.member_groups(TENANT, oid) == frozenset(groups)
    assert stub.counters.graph == 3


def test_invalidation_removes_the_users_entries(stub: EntraStub, store: RedisGroupStore) -> None:
    oid, _ = overage_user(stub)
    with graph_resolver(stub) as graph:
        cache = CachedGroupResolver(inner=graph, ttl_seconds=60, store=store)
        cache.member_groups(TENANT, oid)
        assert cache.user_type(TENANT, oid) is UserType.MEMBER
        assert len(_keys(store)) == 2
        cache.invalidate(TENANT, oid)
        assert _keys(store) == []


def test_unreachable_redis_falls_back_to_the_directory(stub: EntraStub) -> None:
    oid, groups = overage_user(stub)
    store = RedisGroupStore(url="redis://127.0.0.1:1/0", timeout_seconds=0.2)
    try:
        assert not store.ping()
        with graph_resolver(stub) as graph:
            cache = CachedGroupResolver(inner=graph, ttl_seconds=60, store=store)
            assert cache.member_groups(TENANT, oid) == frozenset(groups)
    finally:
        store.close()


def test_redis_store_needs_a_key_prefix() -> None:
    with pytest.raises(ValueError):
        RedisGroupStore(url="redis://127.0.0.1:6379/0", key_prefix="")


def test_group_cache_is_shared_in_redis_only_when_a_url_is_configured(stub: EntraStub) -> None:
    with redis_store():  # skips when no server answers
        pass
    oid, groups = overage_user(stub)
    with graph_resolver(stub) as graph:
        local = build_group_cache(inner=graph, ttl_seconds=60)
        assert isinstance(local._store, InProcessGroupStore)
        shared = build_group_cache(
            inner=graph, ttl_seconds=60, redis_url="redis://127.0.0.1:6379/0", key_prefix=f"t:{oid}:"
        )
        try:
            assert isinstance(shared._store, RedisGroupStore)
            assert shared.member_groups(TENANT, oid) == frozenset(groups)
            shared.invalidate(TENANT, oid)
        finally:
            shared.close()


def test_cache_without_a_directory_fails_rather_than_inventing_a_user_type() -> None:
    class GroupsOnly:
        def member_groups(self, tenant_id: str, object_id: str) -> frozenset[str]:
            return frozenset()

    with pytest.raises(GroupResolutionError):
        CachedGroupResolver(inner=GroupsOnly(), ttl_seconds=60).user_type(TENANT, new_id())


def _keys(store: RedisGroupStore) -> list[bytes]:
    return sorted(store._client.scan_iter(match=f"{store._prefix}*"))
