"""The group cache shared by replicas: Redis when a URL is configured, in-process otherwise.

Every replica behind a load balancer asks the directory about the same users;
sharing one cache means one Graph lookup per user per TTL for the whole
deployment rather than per replica, and a user sees the same principals
whichever replica answers. :func:`build_group_cache` picks the store; the
caching rules themselves (TTL, failures never cached) live in one place,
:class:`acl.groups.CachedGroupResolver`.

Redis is treated as a cache, never as an authority: an unreachable server is a
miss (the directory is asked, the request is not failed), and an entry that does
not decode to what this code writes is a miss too. Whoever can write to the
Redis database can grant groups, so production Redis needs authentication and
TLS (``rediss://``) and a database no one else writes to.
"""

from __future__ import annotations

import logging
import math

import redis

from acl.groups import CachedGroupResolver, GroupResolver, InProcessGroupStore, UserDirectory

log = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "clearance:groups:"


class RedisGroupStore:
    """Entries in Redis under ``key_prefix``, with Redis's own expiry (``SET ... PX``)."""

    def __init__(
        self,
        *,
        url: str | None = None,
        client: redis.Redis | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        timeout_seconds: float = 0.5,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("give either a Redis URL or a client")
        if not key_prefix:
            raise ValueError("a key prefix is required, so that the cache never touches other keys")
        # A short timeout: a slow cache must cost less than the Graph call it saves.
        self._client = client or redis.Redis.from_url(
            url or "", socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._owns_client = client is None
        self._prefix = key_prefix

    def get(self, key: str) -> str | None:
        try:
            raw = self._client.get(self._prefix + key)
        except redis.RedisError as exc:
            log.warning("group cache unavailable; asking the directory (%s)", type(exc).__name__)
            return None
        if raw is None:
            return None
        if isinstance(raw, bytes):
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return raw if isinstance(raw, str) else None

    def put(self, key: str, value: str, ttl_seconds: float) -> None:
        # Milliseconds, rounded up to at least one: Redis refuses a zero expiry.
        ttl_ms = max(1, math.ceil(ttl_seconds * 1000))
        try:
            self._client.set(self._prefix + key, value, px=ttl_ms)
        except redis.RedisError as exc:
            log.warning("group cache write failed (%s)", type(exc).__name__)

    def delete(self, key: str) -> None:
        try:
            self._client.delete(self._prefix + key)
        except redis.RedisError as exc:
            # An entry that cannot be deleted still expires with its TTL.
            log.warning("group cache delete failed (%s)", type(exc).__name__)

    def ping(self) -> bool:
        """True when the server answers (readiness probes, tests)."""
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def build_group_cache(
    *,
    inner: GroupResolver | UserDirectory,
    ttl_seconds: float,
    redis_url: str | None = None,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    max_entries: int = 10_000,
) -> CachedGroupResolver:
    """The cache the composition root wires: shared in Redis when ``redis_url`` is set, else in-process."""
    if redis_url:
        store: RedisGroupStore | InProcessGroupStore = RedisGroupStore(url=redis_url, key_prefix=key_prefix)
    else:
        store = InProcessGroupStore(max_entries=max_entries)
    return CachedGroupResolver(inner=inner, ttl_seconds=ttl_seconds, store=store)
