"""Group membership beyond the token: overage resolution, cached, failing closed.

Entra ID puts at most 200 groups in a token; past that it omits ``groups`` and
names a Graph endpoint in ``_claim_names``/``_claim_sources`` instead. A
:class:`GroupResolver` answers "which groups is this user in"; the development
directory implements it now, Microsoft Graph through msal slots in later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from core.errors import GroupResolutionError


class GroupResolver(Protocol):
    """Resolves the (transitive) group ids of one user of one tenant."""

    def member_groups(self, tenant_id: str, object_id: str) -> frozenset[str]:
        """Group object ids; raises GroupResolutionError when it cannot tell."""
        ...


class UnavailableGroupResolver:
    """The resolver when none is configured: every lookup fails, so callers narrow."""

    def member_groups(self, tenant_id: str, object_id: str) -> frozenset[str]:
        raise GroupResolutionError("no group resolver is configured")


class CachedGroupResolver:
    """Caches successful lookups for ``ttl_seconds``; failures are never cached.

    A failure is not cached so that a transient outage does not pin a user to
    their narrowed principals longer than the outage itself.
    """

    def __init__(
        self,
        *,
        inner: GroupResolver,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._inner = inner
        self._ttl = ttl_seconds
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def member_groups(self, tenant_id: str, object_id: str) -> frozenset[str]:
        key = (tenant_id, object_id)
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        groups = self._inner.member_groups(tenant_id, object_id)
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (now + self._ttl, groups)
        return groups

    def invalidate(self, tenant_id: str, object_id: str) -> None:
        with self._lock:
            self._entries.pop((tenant_id, object_id), None)
