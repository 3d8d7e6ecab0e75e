"""The development identity provider: an RSA key, a JWKS file and token minting.

It stands in for Entra ID on a laptop and in tests. Its tokens have the shape of
Entra v2 access tokens and are validated by exactly the code that validates
Entra tokens; only the issuer template and the JWKS location differ.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from acl.dev.directory import DirectoryUser
from acl.tokens import DEFAULT_SCOPE

DEV_ISSUER_TEMPLATE = "https://dev-idp.clearance.invalid/{tid}/v2.0"
# Entra ID stops listing groups in a token past this many and signals overage.
GROUP_OVERAGE_LIMIT = 200
KEY_FILE = "signing-key.pem"
JWKS_FILE = "jwks.json"


class DevIdentityProvider:
    """Holds (or creates) a signing key under ``key_dir`` and mints tokens with it."""

    def __init__(self, *, key_dir: Path, audience: str, issuer_template: str = DEV_ISSUER_TEMPLATE) -> None:
        self._audience = audience
        self._issuer_template = issuer_template
        self._key = _load_or_create_key(key_dir)
        public_jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        self.kid = _thumbprint(public_jwk)
        public_jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        self.jwks: dict[str, Any] = {"keys": [public_jwk]}
        self.jwks_path = key_dir / JWKS_FILE
        _write_if_changed(self.jwks_path, json.dumps(self.jwks, indent=2))

    @property
    def jwks_url(self) -> str:
        return self.jwks_path.resolve().as_uri()

    def mint(
        self,
        *,
        tenant_id: str,
        object_id: str,
        groups: Iterable[str] = (),
        roles: Iterable[str] = (),
        guest: bool = False,
        name: str | None = None,
        lifetime_seconds: int = 3600,
        extra_claims: dict[str, Any] | None = None,
        omit_claims: Iterable[str] = (),
        scopes: Iterable[str] = (DEFAULT_SCOPE,),
    ) -> str:
        """A signed, delegated access token; more than 200 groups become an overage claim.

        ``acct`` is always emitted (0 member, 1 guest) unless named in
        ``omit_claims``, which removes claims after ``extra_claims`` is applied:
        tests use it to mint what a misconfigured Entra app sends (no ``acct``).
        ``scp`` carries ``scopes``, the API's scope by default, so that the token
        passes the same rules as an Entra user token.
        """
        now = int(time.time())
        group_list = list(groups)
        claims: dict[str, Any] = {
            "iss": self._issuer_template.format(tid=tenant_id),
            "aud": self._audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
            "tid": tenant_id,
            "oid": object_id,
            "sub": object_id,
            "ver": "2.0",
            "scp": " ".join(scopes),
            "acct": 1 if guest else 0,
            "roles": list(roles),
        }
        if name:
            claims["name"] = name
        if len(group_list) > GROUP_OVERAGE_LIMIT:
            claims["_claim_names"] = {"groups": "src1"}
            claims["_claim_sources"] = {
                "src1": {"endpoint": f"https://graph.microsoft.com/v1.0/users/{object_id}/getMemberObjects"}
            }
        else:
            claims["groups"] = group_list
        claims.update(extra_claims or {})
        for claim in omit_claims:
            claims.pop(claim, None)
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def mint_for(self, user: DirectoryUser, *, lifetime_seconds: int = 3600) -> str:
        return self.mint(
            tenant_id=user.tenant,
            object_id=user.oid,
            groups=user.groups,
            roles=user.roles,
            guest=user.guest,
            name=user.display_name,
            lifetime_seconds=lifetime_seconds,
        )


def _load_or_create_key(key_dir: Path) -> rsa.RSAPrivateKey:
    path = key_dir / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA key")
        return key
    key_dir.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Written owner-only and atomically: a half-written key would lock everyone out.
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.replace(tmp, path)
    return key


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an RSA public JWK, used as the key id."""
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
