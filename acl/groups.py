"""What the directory says about a caller beyond the token: groups and member/guest status.

Entra ID puts at most 200 groups in a token; past that it omits ``groups`` and
names a Graph endpoint in ``_claim_names``/``_claim_sources`` instead, and a
token without the optional ``acct`` claim does not say whether the caller is a
member or a guest. Two ports answer those questions:

- :class:`GroupResolver`, the narrow one: "which groups is this user in". The
  development directory implements only this.
- :class:`UserDirectory`, the full one: groups and user type, each optionally
  on behalf of the caller (``assertion`` is the caller's raw access token, which
  an on-behalf-of implementation such as ``acl.graph.GraphGroupResolver``
  exchanges for a Microsoft Graph token). :func:`as_directory` lifts a narrow
  resolver into the full port; it cannot tell user types, so those callers stay
  narrowed exactly as before.

Every implementation answers completely or raises :class:`GroupResolutionError`;
a partial answer is never returned, so nothing narrower than the truth can be
cached or mistaken for the whole membership.

:class:`CachedGroupResolver` caches successful answers per (tenant, user) for a
TTL in a :class:`GroupStore`: in-process by default, Redis through
``acl.group_cache`` when replicas should share it. Failures are never cached.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol, runtime_checkable

from core.errors import GroupResolutionError

log = logging.getLogger(__name__)


class GroupSource(StrEnum):
    """Where a caller's groups come from."""

    #: the token's ``groups`` claim; the directory only on group overage (Entra's default shape).
    TOKEN = "token"
    #: always the directory: transitive (nested) membership, whatever the token lists.
    DIRECTORY = "directory"


class UserType(StrEnum):
    """Microsoft Graph's ``userType`` of a user object."""

    MEMBER = "Member"
    GUEST = "Guest"


class GroupResolver(Protocol):
    """Resolves the (transitive) group ids of one user of one tenant."""

    def member_groups(self, tenant_id: str, object_id: str) -> frozenset[str]:
        """Group object ids; raises GroupResolutionError when it cannot tell."""
        ...


@runtime_checkable
class UserDirectory(Protocol):
    """Groups and member/guest status of one user, optionally on behalf of the caller.

    ``assertion`` is the caller's own access token (already validated); an
    implementation that acts on behalf of the user exchanges it, one that acts
    as the application ignores it.
    """

    def member_groups(self, tenant_id: str, object_id: str, *, assertion: str | None = None) -> frozenset[str]:
        """Group object ids, complete; raises GroupResolutionError when it cannot tell."""
        ...

    def user_type(self, tenant_id: str, object_id: str, *, assertion: str | None = None) -> UserType:
        """Member or guest; raises GroupResolutionError when it cannot tell."""
        ...


class UnavailableGroupResolver:
    """The resolver when none is configured: every lookup fails, so callers narrow."""

    def member_groups(self, tenant_id: str, object_id: str, *, assertion: str | None = None) -> frozenset[str]:
        raise GroupResolutionError("no group resolver is configured")

    def user_type(self, tenant_id: str, object_id: str, *, assertion: str | None = None) -> UserType:
        raise GroupResolutionError("no directory is configured")


class _GroupsOnly:
    """A narrow resolver seen through the full port: groups only, user type unknown."""

    def __init__(self, resolver: GroupResolver) -> None:
        self._resolver = resolver

    def member_groups(self, tenant_id: str, object_id: str, *, assertion: str | None = None) -> frozenset[str]:
        return self._resolver.member_groups(tenant_id, object_id)

    def user_type(self, tenant_id: str, object_id: str, *, assertion: str | None = None) -> UserType:
        raise GroupResolutionError("the group resolver cannot tell members from guests")


def as_directory(resolver: GroupResolver | UserDirectory) -> UserDirectory:
    """The full port over any resolver; a narrow one answers groups and fails user types."""
    if isinstance(resolver, UserDirectory):
        return resolver
    return _GroupsOnly(resolver)


class GroupStore(Protocol):
    """A string key-value store with per-entry expiry (in-process, or Redis for replicas)."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str, ttl_seconds: float) -> None: ...

    def delete(self, key: str) -> None: ...

    def close(self) -> None: ...


class InProcessGroupStore:
    """Entries in this process's memory, bounded; the oldest go first when full."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if hit[0] <= self._clock():
                del self._entries[key]
                return None
            return hit[1]

    def put(self, key: str, value: str, ttl_seconds: float) -> None:
        with self._lock:
            self._entries.pop(key, None)  # re-inserted last, so eviction order is age of writing
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (self._clock() + ttl_seconds, value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def close(self) -> None:
        with self._lock:
            self._entries.clear()


class CachedGroupResolver:
    """Caches successful lookups for ``ttl_seconds`` in ``store``; failures are never cached.

    A failure is not cached so that a transient outage does not pin a user to
    their narrowed principals longer than the outage itself. The TTL bounds how
    long a removed group keeps granting access. Entries are keyed by (tenant,
    user) only: whichever token the caller presents, the answer is about them.
    """

    def __init__(
        self,
        *,
        inner: GroupResolver | UserDirectory,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
        store: GroupStore | None = None,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        self._inner = as_directory(inner)
        self._ttl = ttl_seconds
        self._store: GroupStore = store or InProcessGroupStore(clock=clock, max_entries=max_entries)

    def member_groups(self, tenant_id: str, object_id: str, *, assertion: str | None = None) -> frozenset[str]:
        key = _key(tenant_id, object_id, "groups")
        cached = _decode_groups(self._store.get(key)) if self._ttl > 0 else None
        if cached is not None:
            return cached
        groups = self._inner.member_groups(tenant_id, object_id, assertion=assertion)
        if self._ttl > 0:
            self._store.put(key, json.dumps(sorted(groups)), self._ttl)
        return groups

    def user_type(self, tenant_id: str, object_id: str, *, assertion: str | None = None) -> UserType:
        key = _key(tenant_id, object_id, "usertype")
        cached = _decode_user_type(self._store.get(key)) if self._ttl > 0 else None
        if cached is not None:
            return cached
        user_type = self._inner.user_type(tenant_id, object_id, assertion=assertion)
        if self._ttl > 0:
            self._store.put(key, user_type.value, self._ttl)
        return user_type

    def invalidate(self, tenant_id: str, object_id: str) -> None:
        for what in ("groups", "usertype"):
            self._store.delete(_key(tenant_id, object_id, what))

    def close(self) -> None:
        self._store.close()


def _key(tenant_id: str, object_id: str, what: str) -> str:
    # Lower case on both parts: the validator asks in canonical form, and a cache shared
    # between replicas must not hold two spellings of one user.
    return f"{tenant_id.lower()}/{object_id.lower()}/{what}"


def _decode_groups(raw: str | None) -> frozenset[str] | None:
    """A cached group list, or None (a miss) for anything that is not a JSON list of strings."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        # A shared store is outside this process: an entry we did not write is a miss, never a grant.
        log.warning("ignoring a malformed group cache entry")
        return None
    return frozenset(value)


def _decode_user_type(raw: str | None) -> UserType | None:
    if raw is None:
        return None
    try:
        return UserType(raw)
    except ValueError:
        log.warning("ignoring a malformed user type cache entry")
        return None
