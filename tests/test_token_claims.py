"""Claims that decide access are parsed strictly; when unsure, the caller gets the narrower reading.

These tests build a validator over the development identity provider directly
(real RS256 tokens, a JWKS file), without the rest of the runtime.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jwt
import pytest

from acl.dev.directory import Directory, DirectoryGroupResolver
from acl.dev.idp import DEV_ISSUER_TEMPLATE, DevIdentityProvider
from acl.groups import GroupResolver, UnavailableGroupResolver
from acl.jwks import JwksKeys
from acl.principal import NarrowingReason, Principal, group_key, tenant_key, user_key
from acl.tokens import DEFAULT_SCOPE, TokenPolicy, TokenValidator
from core.errors import AuthenticationError
from tests.conftest import G1, G2, OTHER_TENANT, TENANT, write_users

AUDIENCE = "api://clearance"
OID = "c0000000-0000-4000-8000-000000000001"
NOT_ALLOWED_TENANT = "e0000000-0000-4000-8000-0000000000ff"
UNKNOWN = NarrowingReason.GUEST_STATUS_UNKNOWN


@pytest.fixture()
def idp(tmp_path: Path) -> DevIdentityProvider:
    return DevIdentityProvider(key_dir=tmp_path / "idp", audience=AUDIENCE)


def validator(
    idp: DevIdentityProvider,
    *,
    groups: GroupResolver | None = None,
    missing_acct_is_member: bool = False,
    allowed_tenants: frozenset[str] = frozenset({TENANT, OTHER_TENANT}),
) -> TokenValidator:
    policy = TokenPolicy(
        audiences=(AUDIENCE,),
        issuer_templates=(DEV_ISSUER_TEMPLATE,),
        allowed_tenants=allowed_tenants,
        missing_acct_is_member=missing_acct_is_member,
    )
    return TokenValidator(policy=policy, keys=JwksKeys(url=idp.jwks_url), groups=groups or UnavailableGroupResolver())


def mint(idp: DevIdentityProvider, **kwargs: Any) -> str:
    kwargs.setdefault("tenant_id", TENANT)
    kwargs.setdefault("object_id", OID)
    return idp.mint(**kwargs)


def rejects(tokens: TokenValidator, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        tokens.authenticate(token)
    return str(info.value)


# --- member or guest: the `acct` claim ----------------------------------------------------------


def test_member_with_acct_zero_holds_the_tenant_key_and_is_not_narrowed(idp: DevIdentityProvider) -> None:
    principal = validator(idp).authenticate(mint(idp))
    assert not principal.guest and principal.narrowed == frozenset()
    assert tenant_key(TENANT) in principal.access_keys()


def test_guest_with_acct_one_lacks_the_tenant_key_and_is_not_narrowed(idp: DevIdentityProvider) -> None:
    principal = validator(idp).authenticate(mint(idp, guest=True))
    assert principal.guest and principal.narrowed == frozenset()
    assert tenant_key(TENANT) not in principal.access_keys()


def test_token_without_acct_is_read_as_guest_and_says_so(idp: DevIdentityProvider) -> None:
    principal = validator(idp).authenticate(mint(idp, groups=[G1], omit_claims=("acct",)))
    assert principal.guest and principal.narrowed == {UNKNOWN}
    # Still a member of their own groups, never of the whole tenant.
    assert principal.access_keys() == {user_key(TENANT, OID), group_key(TENANT, G1)}


@pytest.mark.parametrize("acct", ["1", "0", "", True, False, 2, -1, 0.0, 1.0, None, [0], {"value": 0}])
def test_acct_that_is_not_the_integer_zero_or_one_is_read_as_guest(idp: DevIdentityProvider, acct: object) -> None:
    principal = validator(idp).authenticate(mint(idp, extra_claims={"acct": acct}))
    assert principal.guest and principal.narrowed == {UNKNOWN}
    assert tenant_key(TENANT) not in principal.access_keys()


def test_missing_acct_is_trusted_as_member_only_when_the_policy_says_so(idp: DevIdentityProvider) -> None:
    token = mint(idp, omit_claims=("acct",))
    trusting = validator(idp, missing_acct_is_member=True).authenticate(token)
    assert not trusting.guest and trusting.narrowed == frozenset()
    assert tenant_key(TENANT) in trusting.access_keys()
    default = validator(idp).authenticate(token)
    assert default.guest and default.narrowed == {UNKNOWN}


@pytest.mark.parametrize("acct", ["0", True, None])
def test_malformed_acct_is_never_trusted_even_when_missing_acct_is_member(
    idp: DevIdentityProvider, acct: object
) -> None:
    principal = validator(idp, missing_acct_is_member=True).authenticate(mint(idp, extra_claims={"acct": acct}))
    assert principal.guest and principal.narrowed == {UNKNOWN}


def test_guest_narrowing_is_logged_without_token_contents(
    idp: DevIdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint(idp, name="Secret Name", groups=[G1], extra_claims={"acct": "1"})
    with caplog.at_level(logging.DEBUG, logger="acl.tokens"):
        validator(idp).authenticate(token)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, "narrowing must be logged"
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        for secret in (TENANT, OID, G1, "Secret Name", token, "'1'"):
            assert secret not in text


def test_principal_with_unknown_guest_status_never_holds_the_tenant_key() -> None:
    principal = Principal(tenant_id=TENANT, object_id=OID, guest=False, narrowed=frozenset({UNKNOWN}))
    assert principal.guest and tenant_key(TENANT) not in principal.access_keys()


def test_principal_narrowing_is_a_frozen_set_of_known_reasons() -> None:
    principal = Principal(tenant_id=TENANT, object_id=OID, narrowed={"group_resolution_failed"})  # type: ignore[arg-type]
    assert principal.narrowed == frozenset({NarrowingReason.GROUP_RESOLUTION_FAILED})
    assert isinstance(principal.narrowed, frozenset) and not principal.groups_complete
    with pytest.raises(ValueError):
        Principal(tenant_id=TENANT, object_id=OID, narrowed=frozenset({"widened"}))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Principal(tenant_id=TENANT, object_id=OID, narrowed="guest_status_unknown")  # type: ignore[arg-type]


def test_unresolved_group_overage_is_signalled_as_group_resolution_failed(idp: DevIdentityProvider) -> None:
    token = mint(idp, groups=[f"c9000000-0000-4000-8000-{i:012d}" for i in range(250)])
    principal = validator(idp).authenticate(token)
    assert principal.narrowed == {NarrowingReason.GROUP_RESOLUTION_FAILED} and not principal.groups_complete
    assert principal.access_keys() == {user_key(TENANT, OID), tenant_key(TENANT)}


def test_both_narrowings_are_signalled_together(idp: DevIdentityProvider) -> None:
    token = mint(idp, groups=[f"c9000000-0000-4000-8000-{i:012d}" for i in range(250)], omit_claims=("acct",))
    principal = validator(idp).authenticate(token)
    assert principal.narrowed == {UNKNOWN, NarrowingReason.GROUP_RESOLUTION_FAILED}
    assert principal.access_keys() == {user_key(TENANT, OID)}


# --- tenant: allow-list and issuer, in any letter case ------------------------------------------


def test_allowed_tenants_are_normalised_at_construction(idp: DevIdentityProvider) -> None:
    tokens = validator(idp, allowed_tenants=frozenset({TENANT.upper()}))
    assert tokens.authenticate(mint(idp)).tenant_id == TENANT


@pytest.mark.parametrize("tenant", ["contoso.onmicrosoft.com", "", "common", f"{TENANT}/x", f" {TENANT}"])
def test_allowed_tenants_that_are_not_guids_are_refused(tenant: str) -> None:
    with pytest.raises(ValueError):
        TokenPolicy(audiences=(AUDIENCE,), issuer_templates=(DEV_ISSUER_TEMPLATE,), allowed_tenants=frozenset({tenant}))


def test_allowed_tenants_given_as_one_string_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenPolicy(audiences=(AUDIENCE,), issuer_templates=(DEV_ISSUER_TEMPLATE,), allowed_tenants=TENANT)  # type: ignore[arg-type]


def test_upper_case_tenant_id_matches_the_allow_list_and_yields_lower_case_keys(idp: DevIdentityProvider) -> None:
    # tid and iss in the same (upper) spelling, as an issuer that writes both from one value would.
    principal = validator(idp).authenticate(mint(idp, tenant_id=TENANT.upper(), groups=[G1.upper()]))
    assert principal.tenant_id == TENANT and principal.groups == {G1}
    assert principal.access_keys() == {user_key(TENANT, OID), group_key(TENANT, G1), tenant_key(TENANT)}


def test_upper_case_tenant_id_off_the_allow_list_is_rejected(idp: DevIdentityProvider) -> None:
    assert "tenant" in rejects(validator(idp), mint(idp, tenant_id=NOT_ALLOWED_TENANT.upper()))


def test_upper_case_tenant_id_with_the_issuer_of_another_allowed_tenant_is_rejected(idp: DevIdentityProvider) -> None:
    token = mint(idp, tenant_id=TENANT.upper(), extra_claims={"iss": DEV_ISSUER_TEMPLATE.format(tid=OTHER_TENANT)})
    assert "issuer" in rejects(validator(idp), token)


def test_tenant_id_and_issuer_in_different_letter_case_are_rejected(idp: DevIdentityProvider) -> None:
    # The issuer is pinned to the tid exactly as the token writes it: a signed pair that
    # disagrees even in case is not what Entra issues, so it is refused rather than guessed at.
    upper_tid = mint(idp, tenant_id=TENANT.upper(), extra_claims={"iss": DEV_ISSUER_TEMPLATE.format(tid=TENANT)})
    upper_iss = mint(idp, extra_claims={"iss": DEV_ISSUER_TEMPLATE.format(tid=TENANT.upper())})
    assert "issuer" in rejects(validator(idp), upper_tid)
    assert "issuer" in rejects(validator(idp), upper_iss)


@pytest.mark.parametrize("tid", [123, None, "contoso.onmicrosoft.com", ["d1f72fea-086f-4448-9dce-2f71deb8ef72"], "{x}"])
def test_tenant_id_that_is_not_a_guid_string_is_rejected(idp: DevIdentityProvider, tid: object) -> None:
    token = mint(idp, extra_claims={"tid": tid, "iss": DEV_ISSUER_TEMPLATE.format(tid=tid)})
    assert "tenant" in rejects(validator(idp), token)


# --- identity and groups -------------------------------------------------------------------------


@pytest.mark.parametrize("oid", [123, None, "alice@example.com", "", [OID], OID.replace("-", "")])
def test_object_id_that_is_not_a_guid_string_is_rejected(idp: DevIdentityProvider, oid: object) -> None:
    rejects(validator(idp), mint(idp, extra_claims={"oid": oid}))


def test_upper_case_object_id_is_normalised(idp: DevIdentityProvider) -> None:
    assert validator(idp).authenticate(mint(idp, object_id=OID.upper())).object_id == OID


def test_group_entries_that_are_not_guids_are_dropped_and_logged_at_debug(
    idp: DevIdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint(idp, groups=[G1, "Finance Team", "g:1", f"{G2}/x", G2.upper()])
    with caplog.at_level(logging.DEBUG, logger="acl.tokens"):
        principal = validator(idp).authenticate(token)
    assert principal.groups == {G1, G2} and principal.narrowed == frozenset()
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("3" in message for message in debug)
    assert not any("Finance Team" in message for message in debug)


@pytest.mark.parametrize("groups", [G1, None, [G1, 7], [G1, None], {"0": G1}, 1])
def test_groups_claim_that_is_not_a_list_of_strings_is_rejected(idp: DevIdentityProvider, groups: object) -> None:
    assert "groups" in rejects(validator(idp), mint(idp, extra_claims={"groups": groups}))


@pytest.mark.parametrize("roles", ["Clearance.Admin", None, ["Clearance.Admin", 1], {"r": "Clearance.Admin"}])
def test_roles_claim_that_is_not_a_list_of_strings_is_rejected(idp: DevIdentityProvider, roles: object) -> None:
    assert "roles" in rejects(validator(idp), mint(idp, extra_claims={"roles": roles}))


@pytest.mark.parametrize("names", [["groups"], "groups", None, 1])
def test_claim_names_that_is_not_an_object_is_rejected(idp: DevIdentityProvider, names: object) -> None:
    token = mint(idp, omit_claims=("groups",), extra_claims={"_claim_names": names})
    assert "_claim_names" in rejects(validator(idp), token)


def test_overage_groups_are_resolved_with_canonical_ids(idp: DevIdentityProvider, tmp_path: Path) -> None:
    directory = Directory.load(write_users(tmp_path / "users.json"))
    user = directory.user("overage")
    resolver = DirectoryGroupResolver(directory=directory)
    token = idp.mint(tenant_id=TENANT.upper(), object_id=user.oid.upper(), groups=user.groups)
    principal = validator(idp, groups=resolver).authenticate(token)
    assert principal.narrowed == frozenset() and principal.groups == frozenset(user.groups)


# --- the development identity provider -----------------------------------------------------------


def test_development_idp_emits_acct_for_members_and_guests(idp: DevIdentityProvider) -> None:
    def acct(token: str) -> object:
        return jwt.decode(token, options={"verify_signature": False}).get("acct", "absent")

    assert acct(mint(idp)) == 0
    assert acct(mint(idp, guest=True)) == 1
    assert acct(mint(idp, omit_claims=("acct",))) == "absent"


def test_development_idp_tokens_carry_the_api_scope_and_pass_the_same_rules(idp: DevIdentityProvider) -> None:
    token = mint(idp)
    assert jwt.decode(token, options={"verify_signature": False})["scp"] == DEFAULT_SCOPE
    assert validator(idp).authenticate(token).object_id == OID


def test_development_token_without_the_api_scope_is_rejected(idp: DevIdentityProvider) -> None:
    assert "scope" in rejects(validator(idp), mint(idp, scopes=("User.Read",)))


def test_development_token_without_scp_is_app_only_and_rejected_by_default(idp: DevIdentityProvider) -> None:
    assert "app-only" in rejects(validator(idp), mint(idp, omit_claims=("scp",)))


def test_development_token_claiming_version_one_is_rejected(idp: DevIdentityProvider) -> None:
    # The development issuer has the v2 form: a "1.0" token from it is not what it issues.
    assert "version" in rejects(validator(idp), mint(idp, extra_claims={"ver": "1.0"}))


def test_narrow_resolver_resolves_overage_but_cannot_tell_guests_from_members(
    idp: DevIdentityProvider, tmp_path: Path
) -> None:
    directory = Directory.load(write_users(tmp_path / "users.json"))
    user = directory.user("overage")
    token = idp.mint(tenant_id=TENANT, object_id=user.oid, groups=user.groups, omit_claims=("acct",))
    principal = validator(idp, groups=DirectoryGroupResolver(directory=directory)).authenticate(token)
    assert principal.groups == frozenset(user.groups) and principal.narrowed == {UNKNOWN}
