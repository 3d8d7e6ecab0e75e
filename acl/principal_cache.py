"""Validated principals reused for the very same token, within the token's lifetime and a TTL.

Validating a token costs four decodes of it, an RS256 signature check and the
claim parsing of :class:`acl.tokens.TokenValidator` on every request, although a
client presents the same token for up to an hour. :class:`PrincipalCache` wraps
any authenticator and answers a token it has seen with the principal it built
then. What makes that safe, and where its limits are:

- **Keyed by the whole raw token**, through a keyed hash (BLAKE2b with a random
  key per process, so the cache holds neither tokens nor digests that could be
  checked against a guessed token). Only the exact bytes that were validated,
  signature included, find an entry. Never by user id: two tokens of one user
  may differ in groups, roles, scopes or ``acct``, and each gets what it says.
- **Never past the token's own lifetime.** An entry is served only while the wall
  clock is within ``[max(nbf, iat), exp)`` read from the validated claims, without
  the validator's leeway: stricter than validation, so a token that validation
  would now refuse for time reasons is never answered from here (a wall clock
  stepping back before ``nbf`` is a miss, too). A claim of an unexpected type
  means the principal is not cached at all.
- **Never longer than** ``ttl_seconds`` (monotonic clock). The composition root
  caps it at the group cache's TTL, so a principal holding directory answers
  (group overage, ``group_source=directory``, ``userType``) is not kept much
  longer than those answers themselves.
- **Only complete principals.** A narrowed principal (groups unresolved, guest
  status unknown) is not cached, as group failures are not: an outage must not
  pin a caller to narrowed access after it ends. Failures are never cached.
- **In-process only, bounded, thread-safe.** A principal is a grant; it is never
  written to a shared store (whoever could write there could grant access).

Revocation caveats (what a cache hit does not notice before its entry expires):

- A user removed from a group in the directory keeps the group for at most the
  group cache TTL plus this TTL when the groups came from the directory; groups
  from the token itself are fixed until ``exp`` with or without this cache.
- A signing key withdrawn from the JWKS (a compromised key) stops tokens at the
  validator after the next key refresh, but cached principals of tokens it signed
  live until their TTL: call :meth:`PrincipalCache.clear` when keys are revoked.
- Entra access tokens themselves cannot be revoked before ``exp``; the validator
  does not check revocation either, so the cache adds nothing there.
- Token policy (tenant allow-list, audiences, scopes) is read at start-up; a
  change needs a restart, which empties this in-process cache.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from acl.principal import Principal


class TokenAuthenticator(Protocol):
    """Turns a bearer token into a principal or raises AuthenticationError."""

    def authenticate(self, token: str) -> Principal: ...


@dataclass(frozen=True, slots=True)
class PrincipalCacheStats:
    hits: int
    misses: int
    entries: int


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    not_before: float  # wall clock, from the token's nbf/iat
    expires_at: float  # wall clock, the token's exp
    stale_at: float  # monotonic clock, insertion + TTL


class PrincipalCache:
    """An authenticator that reuses validated principals per raw token (see the module notes)."""

    def __init__(
        self,
        *,
        inner: TokenAuthenticator,
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive (wire the inner authenticator to disable caching)")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._inner = inner
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._wall_clock = wall_clock
        self._secret = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._generation = 0  # bumped by clear(), so a validation that straddles it is not stored

    def authenticate(self, token: str) -> Principal:
        key = self._key(token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if self._servable(entry):
                    self._entries.move_to_end(key)
                    self._hits += 1
                    return entry.principal
                del self._entries[key]
            self._misses += 1
            generation = self._generation
        # Outside the lock: validation may fetch keys or ask the directory over the network.
        principal = self._inner.authenticate(token)
        entry = self._entry(token, principal)
        if entry is not None:
            with self._lock:
                if generation != self._generation:
                    return principal
                self._entries[key] = entry
                self._entries.move_to_end(key)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return principal

    def clear(self) -> None:
        """Forget every principal (for example when a signing key is revoked)."""
        with self._lock:
            self._entries.clear()
            self._generation += 1

    def stats(self) -> PrincipalCacheStats:
        with self._lock:
            return PrincipalCacheStats(hits=self._hits, misses=self._misses, entries=len(self._entries))

    def _key(self, token: str) -> bytes:
        return hashlib.blake2b(token.encode("utf-8"), key=self._secret, digest_size=32).digest()

    def _servable(self, entry: _Entry) -> bool:
        now = self._wall_clock()
        return entry.not_before <= now < entry.expires_at and self._clock() < entry.stale_at

    def _entry(self, token: str, principal: Principal) -> _Entry | None:
        """The entry for a token the inner authenticator has just accepted, or None when it must not be cached."""
        if principal.narrowed:
            return None
        try:
            # The same bytes whose signature and claims were just verified: reading them again is safe.
            claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        exp = _timestamp(claims, "exp")
        if exp is None:
            return None
        # PyJWT compares int(exp): a fractional exp must not buy the cache the fraction.
        expires_at = float(math.floor(exp))
        starts = [_timestamp(claims, name) for name in ("nbf", "iat") if name in claims]
        if any(start is None for start in starts):
            return None
        not_before = max((start for start in starts if start is not None), default=float("-inf"))
        entry = _Entry(
            principal=principal, not_before=not_before, expires_at=expires_at, stale_at=self._clock() + self._ttl
        )
        return entry if self._servable(entry) else None


def _timestamp(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim as a float; None when absent or not a JSON number (PyJWT also accepts numeric strings)."""
    value = claims.get(name)
    # type() rather than isinstance(): JSON true/false decode to bool, a subclass of int.
    if type(value) is int or type(value) is float:
        return float(value)
    return None
