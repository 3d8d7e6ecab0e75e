"""Validation of Microsoft Entra ID access tokens (and the development provider's).

One code path for every issuer: RS256 only, the key chosen by ``kid`` from a
JWKS document, issuer and audience pinned, ``exp``/``nbf`` with a small skew,
``tid`` on an allow-list, ``tid`` + ``oid`` as identity. The development
identity provider differs only in its issuer template and JWKS location.

Entra v1 tokens are issued by ``https://sts.windows.net/{tid}/`` and v2 tokens
by ``https://login.microsoftonline.com/{tid}/v2.0``; issuers are configured as
templates with ``{tid}`` so a multi-tenant deployment pins each token to the
issuer of its own tenant.

Claims that decide access are parsed strictly (DESIGN.md, fail-closed checklist):

- ``tid`` and ``oid`` must be GUID strings; they are compared and keyed in
  lower case. The issuer is checked against the token's ``tid`` exactly as
  written (Entra writes both from the same value), so a token whose ``tid``
  and ``iss`` disagree, even only in letter case, is refused.
- ``acct`` (Entra's optional claim, 0 = member, 1 = guest) must be the JSON
  integer 0 or 1. Absent or anything else, member/guest status cannot be
  established: the caller is read as a guest (no ``tenant:{tid}`` key) and the
  principal carries ``NarrowingReason.GUEST_STATUS_UNKNOWN``. Only
  ``TokenPolicy.missing_acct_is_member`` turns an *absent* ``acct`` into member.
- ``roles`` and ``groups`` must be lists of strings; a group that is not a GUID
  can never match an access-list entry and is dropped.
- ``_claim_names`` must be a JSON object when present; group overage that
  cannot be resolved narrows the caller (``GROUP_RESOLUTION_FAILED``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from acl.groups import GroupResolver
from acl.jwks import JwksKeys
from acl.principal import NarrowingReason, Principal, is_valid_id, normalize_id
from core.errors import AuthenticationError, GroupResolutionError

log = logging.getLogger(__name__)

ALLOWED_ALGORITHM = "RS256"
ENTRA_ISSUER_TEMPLATES = (
    "https://login.microsoftonline.com/{tid}/v2.0",
    "https://sts.windows.net/{tid}/",
)
# Entra's optional `acct` claim: 0 = member of the tenant, 1 = guest.
MEMBER_ACCOUNT_TYPE = 0
GUEST_ACCOUNT_TYPE = 1


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What a token must satisfy to be accepted."""

    audiences: tuple[str, ...]
    issuer_templates: tuple[str, ...]
    allowed_tenants: frozenset[str]
    leeway_seconds: int = 60
    # Entra emits `acct` only when the app registration asks for it as an optional
    # claim. Trust a token *without* `acct` as a member only when explicitly told to;
    # a present but malformed `acct` is never trusted.
    missing_acct_is_member: bool = False

    def __post_init__(self) -> None:
        if not self.audiences:
            raise ValueError("at least one audience must be pinned")
        if not self.issuer_templates:
            raise ValueError("at least one issuer template must be configured")
        if isinstance(self.allowed_tenants, str):
            raise ValueError("allowed_tenants must be a collection of tenant ids, not a string")
        # Canonical (lower-case GUID) form, so the allow-list matches whatever case a token uses.
        object.__setattr__(
            self, "allowed_tenants", frozenset(normalize_id(tenant, "tenant") for tenant in self.allowed_tenants)
        )
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
        if not is_valid_id(tid) or normalize_id(tid, "tenant") not in self._policy.allowed_tenants:
            raise AuthenticationError("token tenant is not allowed")
        signing_key = self._keys.get_signing_key(kid)
        # The issuer is built from the tid exactly as the token writes it (a GUID, so it
        # cannot inject into the template): iss and tid must name the same tenant in the
        # same spelling, as Entra issues them. Lower-casing here would be safe too, but
        # accepting only one spelling keeps the signed pair byte-for-byte consistent.
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
        if not (is_valid_id(tid) and is_valid_id(oid)):
            raise AuthenticationError("token identity claims are malformed")
        tid, oid = normalize_id(tid, "tenant"), normalize_id(oid, "user")
        roles = _string_set(claims, "roles")
        narrowed: set[NarrowingReason] = set()
        guest = self._guest(claims, narrowed)
        if _has_group_overage(claims):
            try:
                resolved = self._groups.member_groups(tid, oid)
            except GroupResolutionError as exc:
                # Fail closed: the caller keeps only their user key (and tenant key if a member).
                log.warning("group overage unresolved; narrowing caller", extra={"reason": str(exc)})
                resolved = frozenset()
                narrowed.add(NarrowingReason.GROUP_RESOLUTION_FAILED)
            groups = _guid_groups(resolved, source="directory")
        else:
            groups = _guid_groups(_string_set(claims, "groups"), source="token")
        return Principal(
            tenant_id=tid,
            object_id=oid,
            groups=groups,
            roles=roles,
            guest=guest,
            narrowed=frozenset(narrowed),
            name=_optional_str(claims.get("name")),
        )

    def _guest(self, claims: Mapping[str, Any], narrowed: set[NarrowingReason]) -> bool:
        """Guest or member from ``acct``; when that cannot be told, guest, and say so."""
        if "acct" not in claims:
            if self._policy.missing_acct_is_member:
                return False
            log.warning("token has no 'acct' claim; member/guest status unknown, narrowing caller to guest")
        else:
            acct = claims["acct"]
            # type() rather than isinstance(): JSON true/false decode to bool, a subclass of int.
            if type(acct) is int and acct in (MEMBER_ACCOUNT_TYPE, GUEST_ACCOUNT_TYPE):
                return acct == GUEST_ACCOUNT_TYPE
            log.warning("token 'acct' claim is not the integer 0 or 1; narrowing caller to guest")
        narrowed.add(NarrowingReason.GUEST_STATUS_UNKNOWN)
        return True


def _has_group_overage(claims: Mapping[str, Any]) -> bool:
    if "_claim_names" not in claims:
        return False
    names = claims["_claim_names"]
    if not isinstance(names, Mapping):
        raise AuthenticationError("token '_claim_names' claim is not an object")
    return "groups" in names and "groups" not in claims


def _guid_groups(groups: frozenset[str], *, source: str) -> frozenset[str]:
    """Group ids in canonical form; an id that is not a GUID can never match an ACL entry."""
    kept = frozenset(normalize_id(group, "group") for group in groups if is_valid_id(group))
    if len(kept) < len(groups):
        # The count only: group names from a token are not logged.
        log.debug("dropped %d %s group id(s) that are not GUIDs", len(groups) - len(kept), source)
    return kept


def _string_set(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    """An absent claim is empty; a present one must be a JSON array of strings."""
    if claim not in claims:
        return frozenset()
    value = claims[claim]
    if not isinstance(value, list):
        raise AuthenticationError(f"token {claim!r} claim is not a list")
    if not all(isinstance(item, str) for item in value):
        raise AuthenticationError(f"token {claim!r} claim holds a non-string")
    return frozenset(value)


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
