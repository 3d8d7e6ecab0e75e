"""Signing keys of an identity provider, from a JWKS document at an https or file URL.

Entra ID publishes its keys at a JWKS URL and rotates them; the development
provider writes its JWKS to a file. Both go through this one class, whose rules
keep the identity provider reachable but never hammered, and fail closed:

- the key set is refreshed every ``lifespan_seconds`` (a scheduled refresh);
- a token naming a ``kid`` we do not know triggers a refetch (rotation), but
  fetches are attempted at most once per ``cooldown_seconds``, whatever their
  outcome, so a burst of tokens with made-up ``kid`` s costs one fetch;
- when a refresh fails, the last good key set keeps being served until it is
  ``max_age_seconds`` old; past that, every token is refused until a fetch
  succeeds (fail closed rather than trust keys that may have been revoked);
- one fetch at a time: callers that need the result wait for the fetch in
  flight; callers whose key is known and still within its age are served at
  once while a scheduled refresh runs.

The token validator asks only for tokens that passed every check that needs no
key, so junk tokens never reach this class.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import jwt

from core.errors import AuthenticationError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _KeySet:
    keys: Mapping[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float | None = None  # of the last successful fetch; None before the first


class JwksKeys:
    """Looks up RS256 verification keys by ``kid``."""

    def __init__(
        self,
        *,
        url: str,
        http: httpx.Client | None = None,
        ca_file: Path | None = None,
        lifespan_seconds: float = 3600.0,
        cooldown_seconds: float = 30.0,
        max_age_seconds: float = 86_400.0,
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        scheme = urlparse(url).scheme
        if scheme not in ("https", "file") and not _is_loopback_http(url):
            raise ValueError(f"JWKS URL must be https (or file for development): {url}")
        if not 0 < lifespan_seconds <= max_age_seconds:
            raise ValueError("lifespan_seconds must be positive and at most max_age_seconds")
        if cooldown_seconds < 0:
            raise ValueError("cooldown_seconds must not be negative")
        if http is not None and ca_file is not None:
            raise ValueError("give either an http client or a CA file, not both")
        self._url = url
        self._http = http
        # An explicit context: httpx would otherwise let SSL_CERT_FILE from the environment decide.
        self._verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        self._timeout = timeout_seconds
        self._lifespan = lifespan_seconds
        self._cooldown = cooldown_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._current = _KeySet()
        self._attempted_at: float | None = None  # of the last fetch attempt, successful or not
        self._state_lock = threading.Lock()
        self._fetch_lock = threading.Lock()

    def get_signing_key(self, kid: str) -> jwt.PyJWK:
        current = self._snapshot()
        now = self._clock()
        known = kid in current.keys and self._usable(current, now)
        if known and not self._due(current, now):
            return current.keys[kid]
        if known:
            # A scheduled refresh: one caller does it; the others keep the key they know.
            if not self._fetch_lock.acquire(blocking=False):
                return current.keys[kid]
        else:
            # An unknown kid or no usable key set: wait for any fetch in flight, then decide.
            self._fetch_lock.acquire()
        try:
            current = self._refresh_if_allowed(kid)
        finally:
            self._fetch_lock.release()
        now = self._clock()
        if not self._usable(current, now):
            raise AuthenticationError("signing keys are unavailable")
        key = current.keys.get(kid)
        if key is None:
            raise AuthenticationError("token signing key is unknown")
        return key

    def _refresh_if_allowed(self, kid: str) -> _KeySet:
        """Fetch unless the key set already serves ``kid`` freshly or a fetch was attempted within the cooldown."""
        current = self._snapshot()
        now = self._clock()
        if kid in current.keys and not self._due(current, now):
            return current  # the fetch we waited for brought it
        with self._state_lock:
            if self._attempted_at is not None and now - self._attempted_at < self._cooldown:
                return current
            self._attempted_at = now
        try:
            fetched = _KeySet(keys=self._fetch(), fetched_at=now)
        except AuthenticationError as exc:
            log.warning(
                "JWKS refresh failed; serving the last good key set while it is within its maximum age (%s)",
                exc,
            )
            return current
        with self._state_lock:
            self._current = fetched
        return fetched

    def _snapshot(self) -> _KeySet:
        with self._state_lock:
            return self._current

    def _due(self, current: _KeySet, now: float) -> bool:
        return current.fetched_at is None or now - current.fetched_at >= self._lifespan

    def _usable(self, current: _KeySet, now: float) -> bool:
        return current.fetched_at is not None and now - current.fetched_at <= self._max_age

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        try:
            document = self._read()
            key_set = jwt.PyJWKSet.from_dict(document)
        except (OSError, ValueError, httpx.HTTPError, jwt.PyJWTError) as exc:
            raise AuthenticationError(f"signing keys are unavailable ({type(exc).__name__})") from exc
        return {key.key_id: key for key in key_set.keys if key.key_id and key.algorithm_name == "RS256"}

    def _read(self) -> dict[str, object]:
        parsed = urlparse(self._url)
        if parsed.scheme == "file":
            loaded = json.loads(Path(unquote(parsed.path)).read_text(encoding="utf-8"))
        else:
            client = self._http or httpx.Client(timeout=self._timeout, verify=self._verify)
            try:
                response = client.get(self._url)
                response.raise_for_status()
                loaded = response.json()
            finally:
                if self._http is None:
                    client.close()
        if not isinstance(loaded, dict):
            raise ValueError("JWKS document is not an object")
        return loaded


def _is_loopback_http(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme == "http" and parsed.hostname in {"127.0.0.1", "localhost", "::1"}
