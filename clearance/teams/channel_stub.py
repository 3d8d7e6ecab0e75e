"""A local stand-in for the Bot Framework side of Teams, over HTTP on loopback, for tests and trials.

The bot talks to three Microsoft services besides Entra ID; this stub plays all three so
the real Agents SDK clients run unchanged against it:

- the **channel token issuer**: OpenID metadata (``/v1/.well-known/openidconfiguration``)
  and its JWKS (``/v1/.well-known/keys``); :meth:`ChannelStub.channel_token` signs the
  token Teams puts on each activity (issuer ``https://api.botframework.com``);
- the **connector** (an activity's ``serviceUrl``): replies, updates and streamed
  chunks are recorded in :attr:`ChannelStub.received`, with the bearer token they came with;
- the **Bot Framework token service** (``/api/usertoken/...``): the user tokens the bot's
  OAuth connection holds, and the single sign-on exchange of a Teams token, which succeeds
  only for tokens registered with :meth:`ChannelStub.allow_exchange` (otherwise
  "Consent Required", as the service answers when the user must sign in).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"


@dataclass(frozen=True)
class ReceivedActivity:
    method: str
    path: str
    authorization: str
    activity: dict[str, Any]
    reply_id: str  # the id the connector answered with (a streamed message keeps its first update's)


class ChannelStub:
    """The stub server; use as a context manager or call :meth:`close`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_urlsafe(8)
        self._user_tokens: dict[tuple[str, str], str] = {}
        self._exchanges: dict[str, str] = {}
        self.received: list[ReceivedActivity] = []
        self._server = _Server(("127.0.0.1", 0), stub=self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.service_url = f"{self.url}/connector/"
        self.jwks_url = f"{self.url}/v1/.well-known/keys"
        self._thread = threading.Thread(target=self._server.serve_forever, name="channel-stub", daemon=True)
        self._thread.start()

    def __enter__(self) -> ChannelStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- what tests arrange ----------------------------------------------------------------------

    def channel_token(
        self,
        *,
        app_id: str,
        service_url: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        issuer: str = BOT_FRAMEWORK_ISSUER,
        lifetime_seconds: int = 3600,
    ) -> str:
        """The token Teams sends with an activity; ``key`` other than the stub's forges one."""
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": app_id,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
            "serviceurl": service_url or self.service_url,
        }
        return jwt.encode(claims, key or self._key, algorithm="RS256", headers={"kid": self._kid})

    def store_user_token(self, *, user_id: str, connection: str, token: str) -> None:
        """A token the bot's OAuth connection already holds for this user (signed in before)."""
        with self._lock:
            self._user_tokens[(user_id, connection)] = token

    def allow_exchange(self, *, sso_token: str, result: str) -> None:
        """The token service can exchange this Teams SSO token (consent given), yielding ``result``."""
        with self._lock:
            self._exchanges[sso_token] = result

    def activities(self, conversation_id: str) -> list[ReceivedActivity]:
        with self._lock:
            return [r for r in self.received if f"/conversations/{conversation_id}/" in r.path]

    # --- HTTP ------------------------------------------------------------------------------------

    def _handle(self, method: str, path: str, query: dict[str, str], auth: str, body: bytes) -> tuple[int, Any]:
        if path == "/v1/.well-known/openidconfiguration":
            return 200, {"issuer": BOT_FRAMEWORK_ISSUER, "jwks_uri": self.jwks_url}
        if path == "/v1/.well-known/keys":
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
            jwk.update({"kid": self._kid, "use": "sig", "alg": "RS256", "endorsements": ["msteams"]})
            return 200, {"keys": [jwk]}
        if path.startswith("/connector/"):
            activity = json.loads(body or b"{}")
            parts = path.rstrip("/").split("/")
            reply_id = parts[-1] if method == "PUT" else activity.get("id") or str(uuid.uuid4())
            with self._lock:
                self.received.append(ReceivedActivity(method, path, auth, activity, reply_id))
            return 200, {"id": reply_id}
        if path.startswith("/api/usertoken/"):
            return self._token_service(path.removeprefix("/api/usertoken/"), query, body)
        return 404, {"error": "not_found"}

    def _token_service(self, operation: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        key = (query.get("userId", ""), query.get("connectionName", ""))
        with self._lock:
            stored = self._user_tokens.get(key)
        if operation == "GetTokenOrSignInResource":
            if stored:
                return 200, {"tokenResponse": _token_response(key[1], stored)}
            resource = {
                "signInLink": f"{self.url}/signin?state={secrets.token_urlsafe(8)}",
                "tokenExchangeResource": {"id": str(uuid.uuid4()), "uri": "api://bot-sso", "providerId": "aadv2"},
                "tokenPostResource": {"sasUrl": f"{self.url}/tokenpost"},
            }
            return 200, {"signInResource": resource}
        if operation == "GetToken":
            return (200, _token_response(key[1], stored)) if stored else (404, {})
        if operation == "exchange":
            sso_token = str(json.loads(body or b"{}").get("token", ""))
            with self._lock:
                result = self._exchanges.get(sso_token)
                if result:
                    self._user_tokens[key] = result
            if not result:
                return 400, {"error": {"code": "ConsentRequired", "message": "Consent Required"}}
            return 200, _token_response(key[1], result)
        if operation == "SignOut":
            with self._lock:
                self._user_tokens.pop(key, None)
            return 200, {}
        return 404, {}


def _token_response(connection: str, token: str) -> dict[str, Any]:
    expiration = jwt.decode(token, options={"verify_signature": False}).get("exp", int(time.time()) + 3600)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiration))
    return {"channelId": "msteams", "connectionName": connection, "token": token, "expiration": stamp}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, stub: ChannelStub) -> None:
        self.stub = stub
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        status, payload = self.server.stub._handle(
            method, split.path, query, self.headers.get("Authorization", ""), body
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return
