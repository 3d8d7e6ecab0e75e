"""Validation of Microsoft Entra ID access tokens (and the development provider's).

One code path for every issuer: RS256 only, the key chosen by ``kid`` from a
JWKS document, issuer and audience pinned, ``exp``/``nbf`` with a small skew,
``tid`` on an allow-list, ``tid`` + ``oid`` as identity. The development
identity provider differs only in its issuer template and JWKS location.

Entra v1 tokens are issued by ``https://sts.windows.net/{tid}/`` with ``ver``
"1.0" and v2 tokens by ``https://login.microsoftonline.com/{tid}/v2.0`` with
``ver`` "2.0"; :func:`entra_issuers` derives both from the authority hosts
(public cloud, sovereign clouds, the local stub). Issuers are templates with
``{tid}`` so a multi-tenant deployment pins each token to its own tenant, and a
token's ``ver`` must match the form of the issuer that signed it.

Everything that can be checked without the signing key is checked first, on the
unverified claims (algorithm, key id, tenant allow-list, lifetime, audience,
issuer, version, caller kind): a token that fails there never makes the JWKS
cache fetch anything, so junk traffic cannot drive requests to the identity
provider. The same checks run again, by PyJWT, on the verified token.

The caller kind decides what else is required:

- a delegated token (``scp`` present) must carry every ``required_scopes`` entry
  in its space-separated ``scp``;
- an app-only token (no ``scp``) must carry one of ``app_roles`` in ``roles`` and
  come from one of ``app_client_ids`` (``azp`` in v2, ``appid`` in v1). Both
  lists empty, the default, refuses app-only tokens. An application is never a
  member of the tenant: it holds its own user key, its groups and roles only.

Claims that decide access are parsed strictly (DESIGN.md, fail-closed checklist):

- ``tid`` and ``oid`` must be GUID strings; they are compared and keyed in
  lower case. The issuer is checked against the token's ``tid`` exactly as
  written (Entra writes both from the same value), so a token whose ``tid``
  and ``iss`` disagree, even only in letter case, is refused.
- ``acct`` (Entra's optional claim, 0 = member, 1 = guest) must be the JSON
  integer 0 or 1. Absent, the directory's ``userType`` decides; when the
  directory cannot tell (or ``acct`` is malformed) the caller is read as a guest
  (no ``tenant:{tid}`` key) and the principal carries
  ``NarrowingReason.GUEST_STATUS_UNKNOWN``. ``missing_acct_is_member`` turns an
  *absent* ``acct`` into member without asking.
- ``roles`` and ``groups`` must be lists of strings; a group that is not a GUID
  can never match an access-list entry and is dropped.
- ``_claim_names`` must be a JSON object when present; group overage that
  cannot be resolved narrows the caller (``GROUP_RESOLUTION_FAILED``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

import jwt
from jwt.types import Options

from acl.groups import GroupResolver, GroupSource, UserDirectory, UserType, as_directory
from acl.jwks import JwksKeys
from acl.principal import NarrowingReason, Principal, is_valid_id, normalize_id
from core.errors import AuthenticationError, GroupResolutionError

log = logging.getLogger(__name__)

ALLOWED_ALGORITHM = "RS256"
ENTRA_AUTHORITY = "https://login.microsoftonline.com"
ENTRA_V1_AUTHORITY = "https://sts.windows.net"
ENTRA_ISSUER_TEMPLATES = (f"{ENTRA_AUTHORITY}/{{tid}}/v2.0", f"{ENTRA_V1_AUTHORITY}/{{tid}}/")
# The scope an Entra app registration conventionally exposes for user access to an API.
DEFAULT_SCOPE = "access_as_user"
# Entra's optional `acct` claim: 0 = member of the tenant, 1 = guest.
MEMBER_ACCOUNT_TYPE = 0
GUEST_ACCOUNT_TYPE = 1
_REQUIRED_CLAIMS = ("exp", "iss", "aud", "tid", "oid", "ver")


def _options(*, verify_signature: bool) -> Options:
    """The same claim checks for the unverified and the verified pass.

    PyJWT skips every claim check when the signature is not verified unless each
    is asked for explicitly, so they are all spelled out.
    """
    return {
        "verify_signature": verify_signature,
        "verify_exp": True,
        "verify_nbf": True,
        "verify_iat": True,
        "verify_aud": True,
        "verify_iss": True,
        "require": list(_REQUIRED_CLAIMS),
    }


class TokenVersion(StrEnum):
    """Entra's access token versions, as the ``ver`` claim writes them."""

    V1 = "1.0"
    V2 = "2.0"


class CallerKind(StrEnum):
    DELEGATED = "delegated"  # a user through a client application (``scp``)
    APPLICATION = "application"  # an application on its own (client credentials, ``roles``)


@dataclass(frozen=True, slots=True)
class IssuerTemplate:
    """An issuer with ``{tid}`` and the token version it issues."""

    template: str
    version: TokenVersion

    def __post_init__(self) -> None:
        probe = "00000000-0000-0000-0000-000000000000"
        try:
            formatted = self.template.format(tid=probe)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"issuer template must contain only the {{tid}} field: {self.template!r}") from exc
        if probe not in formatted or urlparse(formatted).scheme != "https":
            raise ValueError(f"issuer template must be an https URL containing {{tid}}: {self.template!r}")

    @classmethod
    def infer(cls, template: str) -> IssuerTemplate:
        """Entra's convention: a v2 issuer ends in ``/v2.0``, every other is v1."""
        version = TokenVersion.V2 if template.rstrip("/").endswith("/v2.0") else TokenVersion.V1
        return cls(template=template, version=version)

    def issuer(self, tid: str) -> str:
        return self.template.format(tid=tid)


def entra_issuers(
    *, authority: str = ENTRA_AUTHORITY, v1_authority: str = ENTRA_V1_AUTHORITY
) -> tuple[IssuerTemplate, IssuerTemplate]:
    """Entra's v2 and v1 issuers under the given authority hosts (``https://host[:port]``)."""
    v2_base, v1_base = _https_base(authority), _https_base(v1_authority)
    return (
        IssuerTemplate(template=f"{v2_base}/{{tid}}/v2.0", version=TokenVersion.V2),
        IssuerTemplate(template=f"{v1_base}/{{tid}}/", version=TokenVersion.V1),
    )


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What a token must satisfy to be accepted."""

    audiences: tuple[str, ...]
    issuer_templates: tuple[str | IssuerTemplate, ...]
    allowed_tenants: frozenset[str]
    leeway_seconds: int = 60
    # Entra emits `acct` only when the app registration asks for it as an optional
    # claim. Trust a token *without* `acct` as a member only when explicitly told to;
    # a present but malformed `acct` is never trusted.
    missing_acct_is_member: bool = False
    # Delegated tokens: every one of these must be in `scp`.
    required_scopes: tuple[str, ...] = (DEFAULT_SCOPE,)
    # App-only tokens: one of these in `roles`, and `azp`/`appid` one of these client ids.
    app_roles: frozenset[str] = frozenset()
    app_client_ids: frozenset[str] = frozenset()
    group_source: GroupSource = GroupSource.TOKEN
    issuers: tuple[IssuerTemplate, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.audiences or isinstance(self.audiences, str):
            raise ValueError("at least one audience must be pinned (a tuple of strings)")
        if not self.issuer_templates or isinstance(self.issuer_templates, str):
            raise ValueError("at least one issuer template must be configured")
        issuers = tuple(t if isinstance(t, IssuerTemplate) else IssuerTemplate.infer(t) for t in self.issuer_templates)
        object.__setattr__(self, "issuers", issuers)
        for name in ("allowed_tenants", "app_roles", "app_client_ids", "required_scopes"):
            if isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a collection, not a string")
        # Canonical (lower-case GUID) form, so the allow-list matches whatever case a token uses.
        object.__setattr__(
            self, "allowed_tenants", frozenset(normalize_id(tenant, "tenant") for tenant in self.allowed_tenants)
        )
        if not self.allowed_tenants:
            raise ValueError("the tenant allow-list must not be empty")
        if not self.required_scopes or any(not s or len(s.split()) != 1 for s in self.required_scopes):
            raise ValueError("required_scopes must name at least one scope, each without spaces")
        object.__setattr__(
            self, "app_client_ids", frozenset(normalize_id(client, "client") for client in self.app_client_ids)
        )
        object.__setattr__(self, "app_roles", frozenset(self.app_roles))


class TokenValidator:
    """Turns a bearer token into a :class:`Principal`, or raises AuthenticationError.

    ``keys`` fetches the JWKS, caches it and refetches on rotation; ``groups``
    answers group overage and, where it can, member/guest status (see
    :mod:`acl.groups`; a narrow resolver answers groups only).
    """

    def __init__(self, *, policy: TokenPolicy, keys: JwksKeys, groups: GroupResolver | UserDirectory) -> None:
        self._policy = policy
        self._keys = keys
        self._directory = as_directory(groups)

    def authenticate(self, token: str) -> Principal:
        claims, kind = self._verified_claims(token)
        return self._principal(claims, kind, token)

    def _verified_claims(self, token: str) -> tuple[dict[str, Any], CallerKind]:
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
        # The issuer is built from the tid exactly as the token writes it (a GUID, so it
        # cannot inject into the template): iss and tid must name the same tenant in the
        # same spelling, as Entra issues them.
        issuers = {template.issuer(tid): template.version for template in self._policy.issuers}
        # Cheap checks first, on the claims as sent: nothing below touches the key set
        # (or the network) for a token that could never be accepted.
        kind = self._check_claims(self._decode(token, None, issuers), issuers)
        claims = self._decode(token, self._keys.get_signing_key(kid), issuers)
        if claims.get("tid") != tid:  # defence in depth: the verified tid is the one we pinned
            raise AuthenticationError("token tenant is not allowed")
        return claims, kind

    def _decode(self, token: str, key: jwt.PyJWK | None, issuers: Mapping[str, TokenVersion]) -> dict[str, Any]:
        """PyJWT's checks of lifetime, audience, issuer and required claims; the signature when given a key."""
        try:
            return jwt.decode(
                token,
                key=key.key if key is not None else "",
                algorithms=[ALLOWED_ALGORITHM],
                options=_options(verify_signature=key is not None),
                audience=list(self._policy.audiences),
                issuer=list(issuers),
                leeway=self._policy.leeway_seconds,
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

    def _check_claims(self, claims: Mapping[str, Any], issuers: Mapping[str, TokenVersion]) -> CallerKind:
        """Version against issuer form, then what the caller kind requires."""
        version = issuers[claims["iss"]]  # PyJWT has checked iss is one of these
        if claims["ver"] != version.value:
            raise AuthenticationError(f"token version does not match its issuer (expected {version.value})")
        if "scp" in claims:
            scopes = claims["scp"]
            if not isinstance(scopes, str):
                raise AuthenticationError("token 'scp' claim is not a string")
            missing = set(self._policy.required_scopes) - set(scopes.split())
            if missing:
                raise AuthenticationError("token lacks a required scope")
            return CallerKind.DELEGATED
        # No scp: an application acting on its own. Entra writes the client id as azp (v2) or appid (v1).
        if not (self._policy.app_roles and self._policy.app_client_ids):
            raise AuthenticationError("app-only tokens are not accepted")
        if not self._policy.app_roles & _string_set(claims, "roles"):
            raise AuthenticationError("app-only token lacks an allowed app role")
        client = claims.get("azp" if version is TokenVersion.V2 else "appid")
        if not is_valid_id(client) or normalize_id(client, "client") not in self._policy.app_client_ids:
            raise AuthenticationError("app-only token comes from a client that is not allowed")
        return CallerKind.APPLICATION

    def _principal(self, claims: Mapping[str, Any], kind: CallerKind, token: str) -> Principal:
        tid, oid = claims["tid"], claims["oid"]
        if not (is_valid_id(tid) and is_valid_id(oid)):
            raise AuthenticationError("token identity claims are malformed")
        tid, oid = normalize_id(tid, "tenant"), normalize_id(oid, "user")
        # Every claim is parsed (and a malformed one refused) before the directory is asked anything.
        roles = _string_set(claims, "roles")
        overage = _has_group_overage(claims)
        token_groups = frozenset() if overage else _guid_groups(_string_set(claims, "groups"), source="token")
        narrowed: set[NarrowingReason] = set()
        # An application is not a member of the tenant; on-behalf-of needs a user's token.
        assertion = token if kind is CallerKind.DELEGATED else None
        guest = True if kind is CallerKind.APPLICATION else self._guest(claims, tid, oid, assertion, narrowed)
        if overage or self._policy.group_source is GroupSource.DIRECTORY:
            groups = self._resolved_groups(tid, oid, assertion, fallback=token_groups, narrowed=narrowed)
        else:
            groups = token_groups
        return Principal(
            tenant_id=tid,
            object_id=oid,
            groups=groups,
            roles=roles,
            guest=guest,
            narrowed=frozenset(narrowed),
            name=_optional_str(claims.get("name")),
        )

    def _resolved_groups(
        self, tid: str, oid: str, assertion: str | None, *, fallback: frozenset[str], narrowed: set[NarrowingReason]
    ) -> frozenset[str]:
        try:
            resolved = self._directory.member_groups(tid, oid, assertion=assertion)
        except GroupResolutionError as exc:
            # Fail closed: the token's own (signed, possibly incomplete) groups at most
            # (none after an overage), and say so.
            log.warning("group resolution failed; narrowing caller", extra={"reason": str(exc)})
            narrowed.add(NarrowingReason.GROUP_RESOLUTION_FAILED)
            return fallback
        return _guid_groups(resolved, source="directory")

    def _guest(
        self, claims: Mapping[str, Any], tid: str, oid: str, assertion: str | None, narrowed: set[NarrowingReason]
    ) -> bool:
        """Guest or member from ``acct``, else from the directory; when that cannot be told, guest, and say so."""
        if "acct" not in claims:
            if self._policy.missing_acct_is_member:
                return False
            try:
                return self._directory.user_type(tid, oid, assertion=assertion) is UserType.GUEST
            except GroupResolutionError as exc:
                log.warning(
                    "token has no 'acct' claim and the directory cannot tell; narrowing caller to guest",
                    extra={"reason": str(exc)},
                )
        else:
            acct = claims["acct"]
            # type() rather than isinstance(): JSON true/false decode to bool, a subclass of int.
            if type(acct) is int and acct in (MEMBER_ACCOUNT_TYPE, GUEST_ACCOUNT_TYPE):
                return acct == GUEST_ACCOUNT_TYPE
            log.warning("token 'acct' claim is not the integer 0 or 1; narrowing caller to guest")
        narrowed.add(NarrowingReason.GUEST_STATUS_UNKNOWN)
        return True


def _https_base(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme != "https" or not parsed.netloc or parsed.path.strip("/") or parsed.query:
        raise ValueError(f"an authority must be https://host[:port], nothing more: {url!r}")
    return f"https://{parsed.netloc}"


def _has_group_overage(claims: Mapping[str, Any]) -> bool:
    if "_claim_names" not in claims:
        return False
    names = claims["_claim_names"]
    if not isinstance(names, Mapping):
        raise AuthenticationError("token '_claim_names' claim is not an object")
    return "groups" in names and "groups" not in claims


def _guid_groups(groups: Iterable[str], *, source: str) -> frozenset[str]:
    """Group ids in canonical form; an id that is not a GUID can never match an ACL entry."""
    given = frozenset(groups)
    kept = frozenset(normalize_id(group, "group") for group in given if is_valid_id(group))
    if len(kept) < len(given):
        # The count only: group names from a token are not logged.
        log.debug("dropped %d %s group id(s) that are not GUIDs", len(given) - len(kept), source)
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
