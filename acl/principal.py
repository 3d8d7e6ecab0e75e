"""The authenticated caller and the principal keys that access lists are made of.

Keys are tenant-qualified strings so that an object id can never match across
tenants: ``user:{tid}/{oid}``, ``group:{tid}/{gid}`` and ``tenant:{tid}`` (every
non-guest member of the tenant). E-mail addresses and display names are never
identity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeGuard

# Entra tenant, user and group ids are GUIDs. Ids are compared in one canonical
# form, lower case, on both sides (manifests, tokens, the directory), so an
# upper-case deny can never be silently ignored. Anything that is not a GUID is
# rejected, so that a key can never smuggle a separator.
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_valid_id(value: object) -> TypeGuard[str]:
    """True for a tenant, user or group id we accept: a GUID, in any letter case."""
    return isinstance(value, str) and bool(_GUID.fullmatch(value.lower()))


def normalize_id(value: str, what: str = "object") -> str:
    """The canonical (lower-case) form of a GUID id; ValueError for anything else."""
    if not is_valid_id(value):
        raise ValueError(f"invalid {what} id (expected a GUID): {value!r}")
    return value.lower()


def _require_id(value: str, what: str) -> str:
    return normalize_id(value, what)


def user_key(tenant_id: str, object_id: str) -> str:
    """The access-list key of one user in one tenant."""
    return f"user:{_require_id(tenant_id, 'tenant')}/{_require_id(object_id, 'user')}"


def group_key(tenant_id: str, group_id: str) -> str:
    """The access-list key of one group in one tenant."""
    return f"group:{_require_id(tenant_id, 'tenant')}/{_require_id(group_id, 'group')}"


def tenant_key(tenant_id: str) -> str:
    """The access-list key meaning every non-guest member of a tenant."""
    return f"tenant:{_require_id(tenant_id, 'tenant')}"


class NarrowingReason(StrEnum):
    """Why a caller holds fewer keys than the token alone would suggest.

    Each reason is a fail-closed reading of an uncertain claim; the API tells the
    caller about it so that a missing answer is not mistaken for a missing document.
    """

    #: ``acct`` was absent or malformed: member or guest cannot be told, so guest.
    GUEST_STATUS_UNKNOWN = "guest_status_unknown"
    #: the token signalled group overage and the groups could not be resolved.
    GROUP_RESOLUTION_FAILED = "group_resolution_failed"


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller after authentication: identity, groups and roles, nothing else.

    ``narrowed`` lists why this caller's keys are narrower than they might be
    (fail closed: narrower, never wider). ``GUEST_STATUS_UNKNOWN`` always
    reads as a guest, whatever ``guest`` was given; ``GROUP_RESOLUTION_FAILED``
    means the caller holds only the groups that could be established (none
    after an unresolved overage).
    """

    tenant_id: str
    object_id: str
    groups: frozenset[str] = field(default_factory=frozenset)
    roles: frozenset[str] = field(default_factory=frozenset)
    guest: bool = False
    narrowed: frozenset[NarrowingReason] = field(default_factory=frozenset)
    name: str | None = None
    # Derived once at construction: a caller with 500 groups took ~0.6 ms per call to rebuild them,
    # and every search asks more than once.
    _keys: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__, once, at construction.
        object.__setattr__(self, "tenant_id", _require_id(self.tenant_id, "tenant"))
        object.__setattr__(self, "object_id", _require_id(self.object_id, "user"))
        object.__setattr__(self, "groups", frozenset(_require_id(group, "group") for group in self.groups))
        object.__setattr__(self, "roles", frozenset(self.roles))
        narrowed = _narrowing_reasons(self.narrowed)
        object.__setattr__(self, "narrowed", narrowed)
        if NarrowingReason.GUEST_STATUS_UNKNOWN in narrowed:
            object.__setattr__(self, "guest", True)  # unknown status is the guest reading, by construction
        keys = {user_key(self.tenant_id, self.object_id)}
        keys.update(group_key(self.tenant_id, group) for group in self.groups)
        if not self.guest:
            keys.add(tenant_key(self.tenant_id))
        object.__setattr__(self, "_keys", frozenset(keys))

    @property
    def groups_complete(self) -> bool:
        """False when group membership could not be fully resolved (kept for existing callers)."""
        return NarrowingReason.GROUP_RESOLUTION_FAILED not in self.narrowed

    @property
    def narrowing_reasons(self) -> tuple[str, ...]:
        """Why this caller's keys were narrowed, as sorted plain strings (responses, headers, audit)."""
        return tuple(sorted(str(reason) for reason in self.narrowed))

    def access_keys(self) -> frozenset[str]:
        """Every access-list key this caller holds.

        Guests are members of their groups but not of ``tenant:{tid}``.
        """
        return self._keys

    def has_role(self, role: str) -> bool:
        return role in self.roles


def _narrowing_reasons(values: Iterable[str]) -> frozenset[NarrowingReason]:
    """A frozen set of reasons; ValueError for anything that is not one."""
    if isinstance(values, str):
        raise ValueError("narrowed must be a collection of NarrowingReason, not a string")
    return frozenset(NarrowingReason(value) for value in values)
