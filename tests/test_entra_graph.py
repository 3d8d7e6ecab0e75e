"""Group overage and member/guest status from Microsoft Graph through msal, against the HTTPS stub.

The real validator, the real msal ConfidentialClientApplication and the real
Graph resolver run against the stub; only its switches (throttling, outage)
and a closed port stand in for Microsoft's bad days.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from acl.dev.entra_stub import Counters, EntraStub, Switches
from acl.graph import GraphGroupResolver, GraphMode
from acl.groups import CachedGroupResolver, GroupSource
from acl.principal import NarrowingReason, group_key, tenant_key, user_key
from acl.tokens import TokenVersion
from core.errors import GroupResolutionError
from tests.conftest import G1, G2, TENANT
from tests.entra_stub_fixtures import DAEMON_CLIENT, DAEMON_ROLE, graph_resolver, guids, new_id, validator

FAILED = NarrowingReason.GROUP_RESOLUTION_FAILED
UNKNOWN = NarrowingReason.GUEST_STATUS_UNKNOWN
MODES = [GraphMode.APP_ONLY, GraphMode.ON_BEHALF_OF]


@pytest.fixture(autouse=True)
def fresh_switches(stub: EntraStub) -> None:
    stub.switches, stub.counters = Switches(), Counters()  # the module's stub (conftest) with no switch left on


def overage_user(stub: EntraStub, count: int = 520, **kwargs: object) -> tuple[str, list[str]]:
    oid, groups = new_id(), guids(count)
    stub.add_user(TENANT, oid, groups=groups, **kwargs)  # type: ignore[arg-type]
    return oid, groups


# --- overage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [TokenVersion.V1, TokenVersion.V2])
def test_overage_is_resolved_app_only_with_one_graph_call(stub: EntraStub, version: TokenVersion) -> None:
    oid, groups = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid, version=version)
    with graph_resolver(stub, GraphMode.APP_ONLY) as graph:
        principal = validator(stub, groups=graph).authenticate(token)
    assert principal.narrowed == frozenset() and principal.groups == frozenset(groups)
    assert group_key(TENANT, groups[517]) in principal.access_keys()
    assert stub.counters.graph == 1


@pytest.mark.parametrize("version", [TokenVersion.V1, TokenVersion.V2])
def test_overage_is_resolved_on_behalf_of_across_pages(stub: EntraStub, version: TokenVersion) -> None:
    oid, groups = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid, version=version)
    with graph_resolver(stub, GraphMode.ON_BEHALF_OF) as graph:
        principal = validator(stub, groups=graph).authenticate(token)
    assert principal.narrowed == frozenset() and principal.groups == frozenset(groups)
    assert stub.counters.graph == 6  # 520 groups, 100 a page


@pytest.mark.parametrize("mode", MODES)
def test_only_security_groups_grant_access_unless_configured_otherwise(stub: EntraStub, mode: GraphMode) -> None:
    unified = new_id()
    oid, groups = overage_user(stub, unified_groups=[unified])
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    with graph_resolver(stub, mode) as graph:
        assert validator(stub, groups=graph).authenticate(token).groups == frozenset(groups)
    with graph_resolver(stub, mode, security_enabled_only=False) as graph:
        assert validator(stub, groups=graph).authenticate(token).groups == frozenset([*groups, unified])


def test_app_token_comes_from_msal_cache_across_users(stub: EntraStub) -> None:
    with graph_resolver(stub, GraphMode.APP_ONLY) as graph:
        for _ in range(3):
            oid, groups = overage_user(stub, count=3)
            assert graph.member_groups(TENANT, oid) == frozenset(groups)
    assert stub.counters.token == 1


def test_on_behalf_of_token_is_reused_for_the_same_user(stub: EntraStub) -> None:
    oid, groups = overage_user(stub, count=3)
    with graph_resolver(stub, GraphMode.ON_BEHALF_OF) as graph:
        for _ in range(3):
            assertion = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
            assert graph.member_groups(TENANT, oid, assertion=assertion) == frozenset(groups)
    assert stub.counters.token == 1


def test_msal_token_cache_is_bounded_by_starting_afresh(stub: EntraStub) -> None:
    users = [overage_user(stub, count=3)[0] for _ in range(3)]
    with graph_resolver(stub, GraphMode.ON_BEHALF_OF, max_cached_users=2) as graph:
        for oid in [*users, users[0]]:
            graph.member_groups(TENANT, oid, assertion=stub.mint_access_token(tenant_id=TENANT, object_id=oid))
    assert stub.counters.token == 4  # the third user overflowed the cache: the first is exchanged again


def test_on_behalf_of_without_the_callers_token_fails(stub: EntraStub) -> None:
    oid, _ = overage_user(stub, count=3)
    with graph_resolver(stub, GraphMode.ON_BEHALF_OF) as graph, pytest.raises(GroupResolutionError):
        graph.member_groups(TENANT, oid)


def test_on_behalf_of_assertion_naming_another_user_is_refused(stub: EntraStub) -> None:
    # Graph would answer about the assertion's user (/me): never file that under someone else.
    asked, other = overage_user(stub, count=3)[0], overage_user(stub, count=4)[0]
    assertion = stub.mint_access_token(tenant_id=TENANT, object_id=other)
    with graph_resolver(stub, GraphMode.ON_BEHALF_OF) as graph, pytest.raises(GroupResolutionError):
        graph.member_groups(TENANT, asked, assertion=assertion)
    assert stub.counters.token == stub.counters.graph == 0


def test_on_behalf_of_refused_by_the_token_endpoint_narrows(stub: EntraStub) -> None:
    oid, _ = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    with graph_resolver(stub, GraphMode.ON_BEHALF_OF, client_credential="wrong-secret") as graph:
        principal = validator(stub, groups=graph).authenticate(token)
    assert principal.narrowed == {FAILED} and principal.access_keys() == {user_key(TENANT, oid), tenant_key(TENANT)}


def test_app_only_caller_cannot_be_resolved_on_behalf_of_and_is_narrowed(stub: EntraStub) -> None:
    oid, _ = overage_user(stub)
    token = stub.mint_access_token(
        tenant_id=TENANT, object_id=oid, scopes=None, roles=[DAEMON_ROLE], client_id=DAEMON_CLIENT, acct=None
    )
    policy: dict[str, Any] = {"app_roles": frozenset({DAEMON_ROLE}), "app_client_ids": frozenset({DAEMON_CLIENT})}
    with graph_resolver(stub, GraphMode.ON_BEHALF_OF) as graph:
        principal = validator(stub, groups=graph, **policy).authenticate(token)
    assert principal.narrowed == {FAILED} and principal.access_keys() == {user_key(TENANT, oid)}
    assert stub.counters.token == 0


def test_paging_beyond_its_bound_fails_the_whole_lookup(stub: EntraStub) -> None:
    oid, _ = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    with graph_resolver(stub, GraphMode.ON_BEHALF_OF, max_pages=3) as graph:
        principal = validator(stub, groups=graph).authenticate(token)
    assert principal.narrowed == {FAILED} and principal.groups == frozenset()


def test_directory_group_source_replaces_the_token_groups_with_transitive_ones(stub: EntraStub) -> None:
    oid = new_id()
    stub.add_user(TENANT, oid, groups=[G2])  # nested: G2 is where the token's G1 leads
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid, groups=[G1])
    with graph_resolver(stub) as graph:
        assert validator(stub, groups=graph).authenticate(token).groups == {G1}
        assert validator(stub, groups=graph, group_source=GroupSource.DIRECTORY).authenticate(token).groups == {G2}


def test_directory_group_source_falls_back_to_the_token_groups_when_graph_fails(stub: EntraStub) -> None:
    oid = new_id()
    stub.add_user(TENANT, oid, groups=[G2])
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid, groups=[G1])
    stub.switches.graph_status = 503
    stub.switches.retry_after = "30"
    with graph_resolver(stub) as graph:
        principal = validator(stub, groups=graph, group_source=GroupSource.DIRECTORY).authenticate(token)
    assert principal.groups == {G1} and principal.narrowed == {FAILED}


# --- throttling and outages ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_throttled_graph_is_retried_after_the_time_it_asks_for(stub: EntraStub, mode: GraphMode) -> None:
    oid, groups = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    with graph_resolver(stub, mode) as graph:
        stub.switches.throttle_count, stub.switches.retry_after = 1, "1"
        started = time.monotonic()
        principal = validator(stub, groups=graph).authenticate(token)
        elapsed = time.monotonic() - started
    assert principal.narrowed == frozenset() and principal.groups == frozenset(groups)
    assert elapsed >= 1.0, "Retry-After: 1 must be waited out"


def test_throttling_beyond_the_time_budget_narrows_at_once(stub: EntraStub) -> None:
    oid, _ = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    stub.switches.throttle_count, stub.switches.retry_after = 10, "5"
    with graph_resolver(stub, retry_budget_seconds=2.0) as graph:
        started = time.monotonic()
        principal = validator(stub, groups=graph).authenticate(token)
        elapsed = time.monotonic() - started
    assert principal.narrowed == {FAILED} and principal.access_keys() == {user_key(TENANT, oid), tenant_key(TENANT)}
    assert elapsed < 2.0, "a wait that would overrun the budget is not started"


def test_repeated_throttling_stops_when_the_budget_is_spent(stub: EntraStub) -> None:
    oid, _ = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    stub.switches.throttle_count, stub.switches.retry_after = 10, "1"
    with graph_resolver(stub, retry_budget_seconds=1.5) as graph:
        started = time.monotonic()
        principal = validator(stub, groups=graph).authenticate(token)
        elapsed = time.monotonic() - started
    assert principal.narrowed == {FAILED}
    assert 1.0 <= elapsed < 2.5 and stub.counters.graph == 2


@pytest.mark.parametrize("mode", MODES)
def test_graph_outage_narrows_the_caller(stub: EntraStub, mode: GraphMode) -> None:
    oid, _ = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    stub.switches.graph_status, stub.switches.retry_after = 503, None
    with graph_resolver(stub, mode, retry_budget_seconds=0.5) as graph:
        principal = validator(stub, groups=graph).authenticate(token)
    assert principal.narrowed == {FAILED} and principal.access_keys() == {user_key(TENANT, oid), tenant_key(TENANT)}


@pytest.mark.parametrize("status", [401, 403, 404, 500])
def test_graph_error_answer_narrows_the_caller(stub: EntraStub, status: int) -> None:
    oid, _ = overage_user(stub)
    stub.switches.graph_status = status
    with graph_resolver(stub) as graph:
        principal = validator(stub, groups=graph).authenticate(stub.mint_access_token(tenant_id=TENANT, object_id=oid))
    assert principal.narrowed == {FAILED} and stub.counters.graph == 1


def test_graph_dropping_the_connection_narrows_the_caller(stub: EntraStub) -> None:
    oid, _ = overage_user(stub)
    stub.switches.graph_disconnect = True
    with graph_resolver(stub) as graph:
        principal = validator(stub, groups=graph).authenticate(stub.mint_access_token(tenant_id=TENANT, object_id=oid))
    assert principal.narrowed == {FAILED}


def test_refused_connection_to_graph_narrows_the_caller(stub: EntraStub) -> None:
    oid, _ = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    with EntraStub() as gone:
        closed_graph = gone.graph_url
    with graph_resolver(stub, graph_url=closed_graph) as graph:
        principal = validator(stub, groups=graph).authenticate(token)
    assert principal.narrowed == {FAILED}


def test_refused_connection_to_the_authority_narrows_the_caller(stub: EntraStub) -> None:
    oid, _ = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    with EntraStub() as gone:
        closed_authority = gone.url
    with graph_resolver(stub, authority=closed_authority) as graph:
        principal = validator(stub, groups=graph).authenticate(token)
    assert principal.narrowed == {FAILED}


def test_failed_resolution_is_not_cached_so_recovery_is_immediate(stub: EntraStub) -> None:
    oid, groups = overage_user(stub)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid)
    with graph_resolver(stub, retry_budget_seconds=0.5) as graph:
        tokens = validator(stub, groups=CachedGroupResolver(inner=graph, ttl_seconds=300))
        stub.switches.graph_status = 503
        assert tokens.authenticate(token).narrowed == {FAILED}
        stub.switches.graph_status = None
        principal = tokens.authenticate(token)
    assert principal.narrowed == frozenset() and principal.groups == frozenset(groups)


# --- member or guest from the directory ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("user_type", "guest"), [("Member", False), ("Guest", True)])
def test_token_without_acct_takes_member_or_guest_from_the_directory(
    stub: EntraStub, mode: GraphMode, user_type: str, guest: bool
) -> None:
    oid = new_id()
    stub.add_user(TENANT, oid, groups=[G1], user_type=user_type)
    token = stub.mint_access_token(tenant_id=TENANT, object_id=oid, acct=None)
    with graph_resolver(stub, mode) as graph:
        principal = validator(stub, groups=graph).authenticate(token)
    assert principal.guest is guest and principal.narrowed == frozenset()
    assert (tenant_key(TENANT) in principal.access_keys()) is not guest


@pytest.mark.parametrize("user_type", [None, "member", "Admin"])
def test_directory_user_type_that_is_not_member_or_guest_narrows_to_guest(
    stub: EntraStub, user_type: str | None
) -> None:
    oid = new_id()
    stub.add_user(TENANT, oid, user_type=user_type)
    with graph_resolver(stub) as graph:
        principal = validator(stub, groups=graph).authenticate(
            stub.mint_access_token(tenant_id=TENANT, object_id=oid, acct=None)
        )
    assert principal.guest and principal.narrowed == {UNKNOWN}


def test_user_unknown_to_the_directory_without_acct_is_narrowed_to_guest(stub: EntraStub) -> None:
    oid = new_id()
    with graph_resolver(stub) as graph:
        principal = validator(stub, groups=graph).authenticate(
            stub.mint_access_token(tenant_id=TENANT, object_id=oid, acct=None)
        )
    assert principal.guest and principal.narrowed == {UNKNOWN}
    assert principal.access_keys() == {user_key(TENANT, oid)}


def test_directory_outage_narrows_a_caller_without_acct_on_both_counts(stub: EntraStub) -> None:
    oid, _ = overage_user(stub)
    stub.switches.graph_status, stub.switches.retry_after = 503, "30"
    with graph_resolver(stub) as graph:
        principal = validator(stub, groups=graph).authenticate(
            stub.mint_access_token(tenant_id=TENANT, object_id=oid, acct=None)
        )
    assert principal.narrowed == {UNKNOWN, FAILED} and principal.access_keys() == {user_key(TENANT, oid)}


def test_token_with_acct_does_not_ask_the_directory(stub: EntraStub) -> None:
    oid = new_id()
    stub.add_user(TENANT, oid, groups=[G1], user_type="Guest")
    with graph_resolver(stub) as graph:
        principal = validator(stub, groups=graph).authenticate(
            stub.mint_access_token(tenant_id=TENANT, object_id=oid, acct=0)
        )
    assert not principal.guest and stub.counters.graph == 0 and stub.counters.token == 0


def test_malformed_acct_is_never_replaced_by_the_directory(stub: EntraStub) -> None:
    oid = new_id()
    stub.add_user(TENANT, oid, user_type="Member")
    with graph_resolver(stub) as graph:
        principal = validator(stub, groups=graph).authenticate(
            stub.mint_access_token(tenant_id=TENANT, object_id=oid, extra_claims={"acct": "0"})
        )
    assert principal.guest and principal.narrowed == {UNKNOWN} and stub.counters.graph == 0


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [{"authority": "http://login.example"}, {"graph_url": "http://graph.example"}, {"page_size": 1000}],
)
def test_insecure_or_out_of_range_graph_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GraphGroupResolver(client_id=new_id(), client_credential="secret", **settings)  # type: ignore[arg-type]


def test_identities_that_are_not_guids_never_reach_a_graph_url(stub: EntraStub) -> None:
    with graph_resolver(stub) as graph, pytest.raises(GroupResolutionError):
        graph.member_groups(TENANT, "../me")
    assert stub.counters.graph == 0
