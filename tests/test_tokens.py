"""Token validation: the negatives an attacker tries, and the claims Entra ID sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from acl.dev.idp import DEV_ISSUER_TEMPLATE, DevIdentityProvider
from acl.groups import UnavailableGroupResolver
from acl.jwks import JwksKeys
from acl.principal import NarrowingReason, tenant_key, user_key
from acl.tokens import TokenPolicy, TokenValidator
from clearance.compose import Runtime
from core.errors import AuthenticationError
from ingest.jobs import JobStatus
from ingest.source import FilesystemSource
from tests.conftest import G1, G2, G_FINANCE, OTHER_TENANT, TENANT, write_acl, write_doc

OID = "c0000000-0000-4000-8000-000000000001"
NOT_ALLOWED_TENANT = "e0000000-0000-4000-8000-0000000000ff"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(idp: DevIdentityProvider, **overrides: Any) -> dict[str, Any]:
    token = idp.mint(tenant_id=TENANT, object_id=OID, groups=[G1])
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    claims.update(overrides)
    return claims


def _rejects(runtime: Runtime, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        runtime.tokens.authenticate(token)
    return str(info.value)


def test_valid_token_yields_tenant_qualified_principal(runtime: Runtime, idp: DevIdentityProvider) -> None:
    token = idp.mint(tenant_id=TENANT, object_id=OID, groups=[G1, G2], roles=["Clearance.Admin"], name="Ann")
    principal = runtime.tokens.authenticate(token)
    assert (principal.tenant_id, principal.object_id, principal.name) == (TENANT, OID, "Ann")
    assert principal.groups == {G1, G2} and principal.roles == {"Clearance.Admin"}
    assert {user_key(TENANT, OID), tenant_key(TENANT)} <= principal.access_keys()


def test_guest_account_claim_marks_principal_as_guest(runtime: Runtime, idp: DevIdentityProvider) -> None:
    principal = runtime.tokens.authenticate(idp.mint(tenant_id=TENANT, object_id=OID, guest=True))
    assert principal.guest and tenant_key(TENANT) not in principal.access_keys()


def test_alg_none_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": idp.kid}).encode())
    payload = _b64(json.dumps(_claims(idp)).encode())
    assert "algorithm" in _rejects(runtime, f"{header}.{payload}.")


def test_hs256_signed_with_the_public_key_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    public_pem = idp._key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": idp.kid}).encode())
    payload = _b64(json.dumps(_claims(idp)).encode())
    signature = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert "algorithm" in _rejects(runtime, f"{header}.{payload}.{signature}")


def test_unknown_kid_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(idp), other, algorithm="RS256", headers={"kid": "not-a-known-key"})
    assert "unknown" in _rejects(runtime, token)


def test_known_kid_with_a_forged_signature_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(idp), other, algorithm="RS256", headers={"kid": idp.kid})
    _rejects(runtime, token)


def _signed(idp: DevIdentityProvider, **overrides: Any) -> str:
    claims = _claims(idp, **overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, idp._key, algorithm="RS256", headers={"kid": idp.kid})


def test_wrong_audience_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    assert "audience" in _rejects(runtime, _signed(idp, aud="api://someone-else"))


def test_wrong_issuer_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    assert "issuer" in _rejects(runtime, _signed(idp, iss="https://evil.example/v2.0"))


def test_issuer_of_another_tenant_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    # Signed by the right key, tid of an allowed tenant, issuer of another allowed tenant.
    assert "issuer" in _rejects(runtime, _signed(idp, iss=DEV_ISSUER_TEMPLATE.format(tid=OTHER_TENANT)))


def test_tenant_not_on_the_allow_list_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    token = _signed(idp, tid=NOT_ALLOWED_TENANT, iss=DEV_ISSUER_TEMPLATE.format(tid=NOT_ALLOWED_TENANT))
    assert "tenant" in _rejects(runtime, token)


def test_expired_token_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    past = int(time.time()) - 3600
    assert "expired" in _rejects(runtime, _signed(idp, iat=past - 60, nbf=past - 60, exp=past))


def test_token_not_yet_valid_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    future = int(time.time()) + 3600
    assert "not yet valid" in _rejects(runtime, _signed(idp, nbf=future, exp=future + 3600))


def test_small_clock_skew_is_tolerated(runtime: Runtime, idp: DevIdentityProvider) -> None:
    soon = int(time.time()) + 20
    assert runtime.tokens.authenticate(_signed(idp, nbf=soon)).object_id == OID


def test_missing_oid_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    assert "oid" in _rejects(runtime, _signed(idp, oid=None))


def test_missing_exp_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    assert "exp" in _rejects(runtime, _signed(idp, exp=None))


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 5000])
def test_malformed_token_is_rejected(runtime: Runtime, token: str) -> None:
    _rejects(runtime, token)


def test_groups_claim_that_is_not_a_list_is_rejected(runtime: Runtime, idp: DevIdentityProvider) -> None:
    assert "groups" in _rejects(runtime, _signed(idp, groups=G1))


def test_group_overage_is_resolved_through_the_directory(runtime: Runtime, idp: DevIdentityProvider) -> None:
    assert runtime.dev is not None
    user = runtime.dev.directory.user("overage")
    token = idp.mint_for(user)
    assert "groups" not in jwt.decode(token, options={"verify_signature": False})
    principal = runtime.tokens.authenticate(token)
    assert principal.groups_complete and G_FINANCE in principal.groups and len(principal.groups) == 231


def test_group_overage_with_failed_resolution_keeps_only_user_and_tenant(
    runtime: Runtime, idp: DevIdentityProvider
) -> None:
    unknown = "c0000000-0000-4000-8000-0000000000aa"  # not in the directory: resolution fails
    token = idp.mint(tenant_id=TENANT, object_id=unknown, groups=[f"g{i}" for i in range(250)])
    principal = runtime.tokens.authenticate(token)
    assert not principal.groups_complete and principal.narrowed == {NarrowingReason.GROUP_RESOLUTION_FAILED}
    assert principal.access_keys() == {user_key(TENANT, unknown), tenant_key(TENANT)}


def test_caller_without_acct_cannot_retrieve_tenant_wide_chunk(
    runtime: Runtime, idp: DevIdentityProvider, tmp_path: Any
) -> None:
    # End to end: the token's reading reaches the index filter, not just the key set.
    root = tmp_path / "corpus"
    write_doc(root, "company/handbook.md", "# Handbook\n\nThe company picnic is on 14 June at Riverside Park.")
    write_acl(root / "company", allow=["tenant"])
    job = runtime.pipeline.run(FilesystemSource(root=root, tenant_id=TENANT))
    assert job.status is JobStatus.SUCCEEDED, job.errors
    vector = runtime.embedder.embed_query("When is the company picnic?")

    def sources(token: str) -> set[str]:
        return {p.source for p in runtime.index.search(runtime.tokens.authenticate(token), vector, top_k=10)}

    assert sources(idp.mint(tenant_id=TENANT, object_id=OID)) == {"company/handbook.md"}
    assert sources(idp.mint(tenant_id=TENANT, object_id=OID, omit_claims=("acct",))) == set()
    assert sources(idp.mint(tenant_id=TENANT, object_id=OID, extra_claims={"acct": "0"})) == set()


class _JwksHandler(BaseHTTPRequestHandler):
    document: ClassVar[dict[str, Any]] = {}
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = json.dumps(type(self).document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture()
def jwks_server() -> Iterator[tuple[str, type[_JwksHandler]]]:
    handler = type("Handler", (_JwksHandler,), {"document": {}, "hits": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/keys", handler
    server.shutdown()
    server.server_close()


def test_keys_are_fetched_over_http_and_refetched_on_rotation(
    tmp_path: Any, jwks_server: tuple[str, type[_JwksHandler]]
) -> None:
    url, handler = jwks_server
    old = DevIdentityProvider(key_dir=tmp_path / "old", audience="api://clearance")
    new = DevIdentityProvider(key_dir=tmp_path / "new", audience="api://clearance")
    handler.document = old.jwks
    validator = TokenValidator(
        policy=TokenPolicy(
            audiences=("api://clearance",), issuer_templates=(DEV_ISSUER_TEMPLATE,), allowed_tenants=frozenset({TENANT})
        ),
        keys=JwksKeys(url=url, cooldown_seconds=0),
        groups=UnavailableGroupResolver(),
    )
    assert validator.authenticate(old.mint(tenant_id=TENANT, object_id=OID)).object_id == OID
    handler.document = new.jwks  # the provider rotates its key
    assert validator.authenticate(new.mint(tenant_id=TENANT, object_id=OID)).object_id == OID
    assert handler.hits == 2
    with pytest.raises(AuthenticationError):
        validator.authenticate(old.mint(tenant_id=TENANT, object_id=OID))  # the retired key no longer verifies


def test_jwks_url_must_be_https_outside_loopback() -> None:
    with pytest.raises(ValueError):
        JwksKeys(url="http://login.example.com/keys")
