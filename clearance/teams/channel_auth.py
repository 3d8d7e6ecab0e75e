"""Validation of the token Teams (the Bot Framework channel service) puts on each activity.

Why not the Agents SDK's ``JwtTokenValidator``: it fetches keys from hard-coded Microsoft
hosts (so it cannot be pointed at a sovereign cloud's or a test's issuer), checks the issuer
only when opted in, and never binds the token's ``serviceurl`` claim to the activity, which
the Bot Framework protocol requires (otherwise a genuine token could send the bot's replies,
and its access token, to any URL). This validator keeps the SDK's result type
(``ClaimsIdentity``) so the rest of the SDK runs unchanged, and fails closed: RS256 only,
key by ``kid`` from the configured JWKS, pinned issuer and audience (the bot's app id),
``exp``/``nbf`` required, and the activity's ``serviceUrl`` equal to the token's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
from microsoft_agents.hosting.core import ClaimsIdentity

from acl.jwks import JwksKeys
from core.errors import AuthenticationError

_LEEWAY_SECONDS = 300  # the Bot Framework's documented clock skew


class ChannelTokenValidator:
    def __init__(self, *, keys: JwksKeys, issuer: str, app_id: str) -> None:
        if not app_id:
            raise ValueError("the bot's app id is required to validate channel tokens")
        self._keys = keys
        self._issuer = issuer
        self._app_id = app_id

    async def validate(self, authorization: str | None, *, service_url: str | None) -> ClaimsIdentity:
        """The verified identity of the channel; AuthenticationError for anything else."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("missing bearer token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("malformed token") from None
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise AuthenticationError("unsupported token")
        key = await asyncio.to_thread(self._keys.get_signing_key, header["kid"])
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self._app_id,
                issuer=self._issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "nbf", "iss", "aud"]},
            )
        except jwt.PyJWTError:
            raise AuthenticationError("invalid channel token") from None
        claimed_url = claims.get("serviceurl")
        if not isinstance(claimed_url, str) or not service_url or _norm(claimed_url) != _norm(service_url):
            raise AuthenticationError("the activity's serviceUrl is not the token's")
        return ClaimsIdentity(claims, authentication_type="Bearer", security_token=token)


def _norm(url: str) -> str:
    return url.strip().rstrip("/").lower()
