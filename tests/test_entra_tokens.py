"""Entra ID token shapes, v1 and v2, against the HTTPS stub: what is accepted and every shape refused.

Tokens are minted by the stub with its own keys; the validator fetches the
stub's JWKS over HTTPS exactly as it would Entra's. A token refused by a check
that needs no key must not make the validator fetch keys at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from acl.dev.entra_stub import GRAPH_APP_ID, Counters, EntraStub, Switches
from acl.principal import NarrowingReason, tenant_key, user_key
from acl.tokens import DEFAULT_SCOPE, IssuerTemplate, TokenPolicy, TokenValidator, TokenVersion, entra_issuers
from core.errors import AuthenticationError
from tests.conftest import G1, G2, OTHER_TENANT, TENANT
from tests.entra_stub_fixtures import DAEMON_CLIENT, DAEMON_ROLE, new_id, validator

NOT_ALLOWED_TENANT = "e0000000-0000-4000-8000-0000000000ff"
VERSIONS = [TokenVersion.V1, TokenVersion.V2]
OID = "c0000000-0000-4000-8000-000000000001"
APP_ONLY: dict[str, Any] = {"app_roles": frozenset({DAEMON_ROLE}), "app_client_ids": frozenset({DAEMON_CLIENT})}


@pytest.fixture(autouse=True)
def fresh_switches(stub: EntraStub) -> None:
    stub.switches, stub.counters = Switches(), Counters()  # the module's stub (conftest) with no switch left on


def mint(stub: EntraStub, version: TokenVersion, **kwargs: Any) -> str:
    kwargs.setdefault("tenant_id", TENANT)
    kwargs.setdefault("object_id", OID)
    return stub.mint_access_token(version=version, **kwargs)


def rejects(tokens: TokenValidator, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        tokens.authenticate(token)
    return str(info.value)


def rejects_without_fetching_keys(stub: EntraStub, token: str, **overrides: Any) -> str:
    message = rejects(validator(stub, **overrides), token)
    assert stub.counters.jwks == 0, "a token refused by a cheap check must not touch the key set"
    return message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# --- accepted shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_delegated_user_token_with_the_api_scope_is_accepted(stub: EntraStub, version: TokenVersion) -> None:
    principal = validator(stub).authenticate(mint(stub, version, groups=[G1, G2], roles=["Clearance.Admin"]))
    assert (principal.tenant_id, principal.object_id) == (TENANT, OID)
    assert principal.groups == {G1, G2} and principal.roles == {"Clearance.Admin"}
    assert principal.narrowed == frozenset() and tenant_key(TENANT) in principal.access_keys()
    assert stub.counters.jwks == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_token_addressed_to_the_client_id_is_accepted(stub: EntraStub, version: TokenVersion) -> None:
    # v2 tokens carry the application id as aud, v1 tokens the App ID URI: both are pinned.
    assert validator(stub).authenticate(mint(stub, version, audience=stub.client_id)).object_id == OID


@pytest.mark.parametrize("version", VERSIONS)
def test_app_only_token_with_allowed_role_and_client_is_a_non_member(stub: EntraStub, version: TokenVersion) -> None:
    token = mint(stub, version, scopes=None, roles=[DAEMON_ROLE], client_id=DAEMON_CLIENT, acct=None)
    principal = validator(stub, **APP_ONLY).authenticate(token)
    assert principal.roles == {DAEMON_ROLE} and principal.narrowed == frozenset()
    assert principal.guest and principal.access_keys() == {user_key(TENANT, OID)}


def test_extra_scopes_beside_the_required_one_are_accepted(stub: EntraStub) -> None:
    token = mint(stub, TokenVersion.V2, scopes=("User.Read", DEFAULT_SCOPE, "Files.Read"))
    assert validator(stub).authenticate(token).object_id == OID


def test_every_required_scope_must_be_present(stub: EntraStub) -> None:
    required = (DEFAULT_SCOPE, "Clearance.Ask")
    tokens = validator(stub, required_scopes=required)
    assert tokens.authenticate(mint(stub, TokenVersion.V2, scopes=required)).object_id == OID
    assert "scope" in rejects(tokens, mint(stub, TokenVersion.V2, scopes=(DEFAULT_SCOPE,)))


# --- refused before any key is fetched -----------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"aud": "https://graph.microsoft.com"}, "audience"),
        ({"aud": GRAPH_APP_ID}, "audience"),
        ({"aud": "api://another-api"}, "audience"),
        ({"aud": "5e3ce6c0-2b1f-4285-8d4b-75ee78787346"}, "audience"),
        ({"iss": "https://evil.example/{tid}/v2.0"}, "issuer"),
        ({"iss": "https://login.microsoftonline.com/{tid}/v2.0"}, "issuer"),  # the real cloud, not ours
        ({"iss": "{url}/" + OTHER_TENANT + "/v2.0"}, "issuer"),
        ({"tid": NOT_ALLOWED_TENANT}, "tenant"),
        ({"tid": "contoso.onmicrosoft.com"}, "tenant"),
        ({"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 7200}, "expired"),
        ({"nbf": int(time.time()) + 3600, "exp": int(time.time()) + 7200}, "not yet valid"),
        ({"exp": None}, "exp"),
        ({"oid": None}, "oid"),
        ({"ver": None}, "ver"),
        ({"scp": None, "roles": None}, "app-only"),
        ({"scp": "User.Read"}, "scope"),
        ({"scp": ""}, "scope"),
        ({"scp": [DEFAULT_SCOPE]}, "scp"),
        ({"scp": "access_as_users"}, "scope"),
    ],
)
def test_token_failing_a_cheap_check_is_refused_without_fetching_keys(
    stub: EntraStub, version: TokenVersion, overrides: dict[str, Any], expected: str
) -> None:
    claims = _claims(mint(stub, version))
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value.format(tid=TENANT, url=stub.url) if isinstance(value, str) else value
    token = stub.sign(claims, tenant_id=TENANT)
    assert expected in rejects_without_fetching_keys(stub, token)


@pytest.mark.parametrize(("version", "wrong"), [(TokenVersion.V1, "2.0"), (TokenVersion.V2, "1.0")])
def test_version_that_does_not_match_the_issuer_form_is_refused(
    stub: EntraStub, version: TokenVersion, wrong: str
) -> None:
    token = mint(stub, version, extra_claims={"ver": wrong})
    assert "version" in rejects_without_fetching_keys(stub, token)


@pytest.mark.parametrize("version", VERSIONS)
def test_numeric_version_claim_is_refused(stub: EntraStub, version: TokenVersion) -> None:
    token = mint(stub, version, extra_claims={"ver": float(version.value)})
    assert "version" in rejects_without_fetching_keys(stub, token)


@pytest.mark.parametrize("version", VERSIONS)
def test_app_only_tokens_are_refused_when_no_client_is_allowed(stub: EntraStub, version: TokenVersion) -> None:
    token = mint(stub, version, scopes=None, roles=[DAEMON_ROLE], client_id=DAEMON_CLIENT, acct=None)
    assert "app-only" in rejects_without_fetching_keys(stub, token)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("roles", [[], ["Clearance.Other"], None])
def test_app_only_token_without_an_allowed_role_is_refused(
    stub: EntraStub, version: TokenVersion, roles: list[str] | None
) -> None:
    token = mint(stub, version, scopes=None, roles=roles or (), client_id=DAEMON_CLIENT, acct=None)
    assert "role" in rejects_without_fetching_keys(stub, token, **APP_ONLY)


@pytest.mark.parametrize("version", VERSIONS)
def test_app_only_token_from_a_client_not_allowed_is_refused(stub: EntraStub, version: TokenVersion) -> None:
    token = mint(stub, version, scopes=None, roles=[DAEMON_ROLE], client_id=new_id(), acct=None)
    assert "client" in rejects_without_fetching_keys(stub, token, **APP_ONLY)


@pytest.mark.parametrize(("version", "wrong_claim"), [(TokenVersion.V1, "azp"), (TokenVersion.V2, "appid")])
def test_app_only_client_id_is_read_only_from_the_claim_of_its_version(
    stub: EntraStub, version: TokenVersion, wrong_claim: str
) -> None:
    # v2 names the client in azp, v1 in appid: the other claim is not a substitute.
    right_claim = "appid" if wrong_claim == "azp" else "azp"
    shape: dict[str, Any] = {"extra_claims": {wrong_claim: DAEMON_CLIENT}, "omit_claims": (right_claim,)}
    token = mint(stub, version, scopes=None, roles=[DAEMON_ROLE], acct=None, **shape)
    assert "client" in rejects_without_fetching_keys(stub, token, **APP_ONLY)


@pytest.mark.parametrize("version", VERSIONS)
def test_roles_claim_that_is_not_a_list_is_refused_for_app_only_tokens(stub: EntraStub, version: TokenVersion) -> None:
    token = mint(stub, version, scopes=None, client_id=DAEMON_CLIENT, acct=None, extra_claims={"roles": DAEMON_ROLE})
    assert "roles" in rejects_without_fetching_keys(stub, token, **APP_ONLY)


def test_alg_none_is_refused_without_fetching_keys(stub: EntraStub) -> None:
    kid = jwt.get_unverified_header(mint(stub, TokenVersion.V2))["kid"]
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    token = f"{header}.{_b64(json.dumps(_claims(mint(stub, TokenVersion.V2))).encode())}."
    assert "algorithm" in rejects_without_fetching_keys(stub, token)


def test_hs256_signed_with_the_public_key_is_refused(stub: EntraStub) -> None:
    genuine = mint(stub, TokenVersion.V2)
    kid = jwt.get_unverified_header(genuine)["kid"]
    jwk = next(k for k in stub.jwks(TENANT)["keys"] if k["kid"] == kid)
    public = jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(_claims(genuine)).encode())
    signature = _b64(hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert "algorithm" in rejects_without_fetching_keys(stub, f"{header}.{payload}.{signature}")


def test_token_without_a_key_id_is_refused_without_fetching_keys(stub: EntraStub) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(mint(stub, TokenVersion.V2)), other, algorithm="RS256")
    assert "key id" in rejects_without_fetching_keys(stub, token)


# --- refused by the signature --------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_token_signed_by_an_unknown_key_is_refused(stub: EntraStub, version: TokenVersion) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(mint(stub, version)), other, algorithm="RS256", headers={"kid": "not-published"})
    assert "unknown" in rejects(validator(stub), token)


@pytest.mark.parametrize("version", VERSIONS)
def test_known_key_id_with_a_forged_signature_is_refused(stub: EntraStub, version: TokenVersion) -> None:
    genuine = mint(stub, version)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(genuine)["kid"]
    forged = jwt.encode(
        {**_claims(genuine), "roles": ["Clearance.Admin"]}, other, algorithm="RS256", headers={"kid": kid}
    )
    assert "signature" in rejects(validator(stub), forged)


# --- issuers derived from the authority ----------------------------------------------------------


def test_issuers_are_derived_from_the_authority_host_for_sovereign_clouds() -> None:
    v2, v1 = entra_issuers(
        authority="https://login.microsoftonline.us", v1_authority="https://login.microsoftonline.us"
    )
    assert (v2.issuer(TENANT), v2.version) == (f"https://login.microsoftonline.us/{TENANT}/v2.0", TokenVersion.V2)
    assert (v1.issuer(TENANT), v1.version) == (f"https://login.microsoftonline.us/{TENANT}/", TokenVersion.V1)
    public_v2, public_v1 = entra_issuers()
    assert public_v2.issuer(TENANT) == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert public_v1.issuer(TENANT) == f"https://sts.windows.net/{TENANT}/"


@pytest.mark.parametrize(
    "authority", ["http://login.microsoftonline.com", "https://login.microsoftonline.com/tenant", "login.example"]
)
def test_authority_that_is_not_a_bare_https_host_is_refused(authority: str) -> None:
    with pytest.raises(ValueError):
        entra_issuers(authority=authority)


def test_issuer_templates_given_as_strings_take_their_version_from_their_form() -> None:
    policy = TokenPolicy(
        audiences=("api://clearance",),
        issuer_templates=("https://sts.windows.net/{tid}/", "https://login.microsoftonline.com/{tid}/v2.0"),
        allowed_tenants=frozenset({TENANT}),
    )
    assert [issuer.version for issuer in policy.issuers] == [TokenVersion.V1, TokenVersion.V2]


@pytest.mark.parametrize("template", ["https://x.example/v2.0", "https://x.example/{tenant}/", "http://x/{tid}/"])
def test_issuer_template_without_a_tenant_field_or_https_is_refused(template: str) -> None:
    with pytest.raises(ValueError):
        IssuerTemplate.infer(template)


@pytest.mark.parametrize("scopes", [(), ("",), ("two words",)])
def test_policy_without_a_usable_required_scope_is_refused(stub: EntraStub, scopes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        validator(stub, required_scopes=scopes)


def test_app_client_ids_that_are_not_guids_are_refused(stub: EntraStub) -> None:
    with pytest.raises(ValueError):
        validator(stub, app_roles=frozenset({DAEMON_ROLE}), app_client_ids=frozenset({"daemon"}))


def test_delegated_token_without_acct_and_no_directory_is_narrowed_to_guest(stub: EntraStub) -> None:
    principal = validator(stub).authenticate(mint(stub, TokenVersion.V2, acct=None))
    assert principal.guest and principal.narrowed == {NarrowingReason.GUEST_STATUS_UNKNOWN}
