"""Validation of Microsoft Entra ID access tokens (and the development provider's).

One code path for every issuer: RS256 only, the key chosen by ``kid`` from a
JWKS document, issuer and audience pinned, ``exp``/``nbf`` with a small skew,
``tid`` on an allow-list, ``tid`` + ``oid`` as identity. The development
identity provider differs only in its issuer template and JWKS location.

Entra v1 tokens are issued by ``https://sts.windows.net/{tid}/`` and v2 tokens
by ``https://login.microsoftonline.com/{tid}/v2.0``; issuers are configured as
templates with ``{tid}`` so a multi-tenant deployment pins each token to the
issuer of its own tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from acl.groups import GroupResolver
from acl.jwks import JwksKeys
from acl.principal import Principal, is_valid_id
from core.errors import AuthenticationError, GroupResolutionError

log = logging.getLogger(__name__)

ALLOWED_ALGORITHM = "RS256"
ENTRA_ISSUER_TEMPLATES = (
    "https://login.microsoftonline.com/{tid}/v2.0",
    "https://sts.windows.net/{tid}/",
)
# Entra's optional `acct` claim: 0 = member of the tenant, 1 = guest.
GUEST_ACCOUNT_TYPE = 1


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What a token must satisfy to be accepted."""

    audiences: tuple[str, ...]
    issuer_templates: tuple[str, ...]
    allowed_tenants: frozenset[str]
    leeway_seconds: int = 60

    def __post_init__(self) -> None:
        if not self.audiences:
            raise ValueError("at least one audience must be pinned")
        if not self.issuer_templates:
            raise ValueError("at least one issuer template must be configured")
        if not self.allowed_tenants:
            raise ValueError("the tenant allow-list must not be empty")


class TokenValidator:
    """Turns a bearer token into a :class:`Principal`, or raises AuthenticationError.

    ``keys`` fetches the JWKS from an https or file URL, caches it and
    refetches when it meets an unknown ``kid``.
    """

    def __init__(self, *, policy: TokenPolicy, keys: JwksKeys, groups: GroupResolver) -> None:
        self._policy = policy
        self._keys = keys
        self._groups = groups

    def authenticate(self, token: str) -> Principal:
        claims = self._verified_claims(token)
        return self._principal(claims)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError("malformed token") from exc
        if header.get("alg") != ALLOWED_ALGORITHM:
            raise AuthenticationError(f"token algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("token has no key id")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthenticationError("malformed token") from exc
        tid = unverified.get("tid")
        if not isinstance(tid, str) or tid not in self._policy.allowed_tenants:
            raise AuthenticationError("token tenant is not allowed")
        signing_key = self._keys.get_signing_key(kid)
        issuers = [template.format(tid=tid) for template in self._policy.issuer_templates]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=signing_key.key,
                algorithms=[ALLOWED_ALGORITHM],
                audience=list(self._policy.audiences),
                issuer=issuers,
                leeway=self._policy.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "tid", "oid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationError("token is not yet valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError("token audience is not accepted") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError("token issuer is not accepted") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token lacks the {exc.claim!r} claim") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError("token signature or claims are invalid") from exc
        if claims.get("tid") != tid:  # defence in depth: the verified tid is the one we pinned
            raise AuthenticationError("token tenant is not allowed")
        return claims

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        tid, oid = claims["tid"], claims["oid"]
        if not (isinstance(tid, str) and is_valid_id(tid) and isinstance(oid, str) and is_valid_id(oid)):
            raise AuthenticationError("token identity claims are malformed")
        roles = _string_set(claims.get("roles"), "roles")
        guest = claims.get("acct") == GUEST_ACCOUNT_TYPE
        groups_complete = True
        if _has_group_overage(claims):
            try:
                groups = self._groups.member_groups(tid, oid)
            except GroupResolutionError as exc:
                # Fail closed: the caller keeps only their user and tenant keys.
                log.warning("group overage unresolved; narrowing caller", extra={"reason": str(exc)})
                groups, groups_complete = frozenset(), False
        else:
            groups = _string_set(claims.get("groups"), "groups")
        groups = frozenset(group for group in groups if is_valid_id(group))
        return Principal(
            tenant_id=tid,
            object_id=oid,
            groups=groups,
            roles=roles,
            guest=guest,
            groups_complete=groups_complete,
            name=_optional_str(claims.get("name")),
        )


def _has_group_overage(claims: Mapping[str, Any]) -> bool:
    names = claims.get("_claim_names")
    return isinstance(names, Mapping) and "groups" in names and "groups" not in claims


def _string_set(value: object, claim: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise AuthenticationError(f"token {claim!r} claim is not a list")
    if not all(isinstance(item, str) for item in value):
        raise AuthenticationError(f"token {claim!r} claim holds a non-string")
    return frozenset(value)


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
