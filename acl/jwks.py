"""Signing keys of an identity provider, from a JWKS document at an https or file URL.

Entra ID publishes its keys at a JWKS URL and rotates them; the development
provider writes its JWKS to a file. Both go through this one class: the
document is cached for ``lifespan_seconds`` and refetched at most once per
``cooldown_seconds`` when a token names a ``kid`` we do not know (rotation).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import jwt

from core.errors import AuthenticationError


class JwksKeys:
    """Looks up RS256 verification keys by ``kid``."""

    def __init__(
        self,
        *,
        url: str,
        http: httpx.Client | None = None,
        lifespan_seconds: float = 3600.0,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        scheme = urlparse(url).scheme
        if scheme not in ("https", "file") and not _is_loopback_http(url):
            raise ValueError(f"JWKS URL must be https (or file for development): {url}")
        self._url = url
        self._http = http
        self._lifespan = lifespan_seconds
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def get_signing_key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > self._lifespan
            may_refetch = self._fetched_at is None or now - self._fetched_at > self._cooldown
            if stale or (kid not in self._keys and may_refetch):
                self._keys = self._fetch()
                self._fetched_at = now
            key = self._keys.get(kid)
        if key is None:
            raise AuthenticationError("token signing key is unknown")
        return key

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
            client = self._http or httpx.Client(timeout=10.0)
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
