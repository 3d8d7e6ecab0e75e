"""A local Microsoft Entra ID and Microsoft Graph, over HTTPS on loopback, for development and tests.

The real msal and the real token validator talk to it exactly as to Entra ID:
only the authority (``stub.url``), the Graph URL (``stub.graph_url``) and the CA
(``stub.ca_file``, generated at start with trustme) differ. It serves

- per-tenant OpenID metadata, v2 (``/{tid}/v2.0/.well-known/openid-configuration``)
  and v1 (``/{tid}/.well-known/openid-configuration``);
- per-tenant JWKS (``/{tid}/discovery/v2.0/keys``, ``/{tid}/discovery/keys``) and
  their union (``/common/discovery/v2.0/keys``), with key rotation;
- a token endpoint (``/{tid}/oauth2/v2.0/token``) for client credentials and
  on-behalf-of (the incoming assertion's signature, issuer, audience and
  lifetime are checked, as Entra does); on-behalf-of for the Clearance API's own
  audience (a Teams bot's exchange) yields a delegated API token for that person;
- Graph under ``/graph/v1.0``: ``users/{oid}/getMemberObjects``,
  ``me/transitiveMemberOf/microsoft.graph.group`` (paged with ``@odata.nextLink``),
  ``users/{oid}`` and ``me`` (``userType``);
- switches tests set: throttling (429 with Retry-After), outage (any status, or
  connections dropped without an answer), a failing or slow JWKS; and counters
  of what was asked. Connection refused is :meth:`EntraStub.close`.

Tokens for the Clearance API (v1 and v2 shapes, delegated or app-only) are minted
with :meth:`EntraStub.mint_access_token`, or by hand at ``POST /_stub/token``.
By hand: ``python -m acl.dev.entra_stub`` prints its URL, CA file, client and a
sample token as JSON, and serves until interrupted. Loopback only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import secrets
import shutil
import signal
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa

from acl.tokens import DEFAULT_SCOPE, IssuerTemplate, TokenVersion, entra_issuers

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GROUP_OVERAGE_LIMIT = 200  # Entra stops listing groups in a token past this many
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access"})


@dataclass
class StubUser:
    groups: list[str]
    user_type: str | None = "Member"  # Graph's userType; None is what some older accounts answer
    unified_groups: list[str] = field(default_factory=list)  # Microsoft 365 groups: not security-enabled


@dataclass
class StubClient:
    secret: str
    api_audiences: tuple[str, ...]  # what an on-behalf-of assertion must be addressed to


@dataclass
class Switches:
    """What tests turn on and off; read under the stub's lock."""

    throttle_count: int = 0  # the next N Graph requests answer 429
    retry_after: str | None = "1"  # Retry-After on 429 and outage answers (None: no header)
    graph_status: int | None = None  # every Graph request answers this status (an outage)
    graph_disconnect: bool = False  # every Graph request is dropped without an answer (a network failure)
    jwks_status: int | None = None  # every JWKS request answers this status
    jwks_delay_seconds: float = 0.0
    max_page_size: int = 100  # Graph's default page; $top may ask for less


@dataclass
class Counters:
    jwks: int = 0
    token: int = 0
    graph: int = 0


class EntraStub:
    """The stub server; use as a context manager or call :meth:`close`."""

    def __init__(self, *, port: int = 0) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="entra-stub-"))
        ca = trustme.CA()
        self.ca_file = self._dir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._lock = threading.Lock()
        self._keys: dict[str, list[tuple[str, rsa.RSAPrivateKey]]] = {}
        self._users: dict[tuple[str, str], StubUser] = {}
        self._clients: dict[str, StubClient] = {}
        self.switches = Switches()
        self.counters = Counters()
        self._server = _Server(("127.0.0.1", port), stub=self, context=context)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self.graph_url = f"{self.url}/graph"
        self.jwks_url = f"{self.url}/common/discovery/v2.0/keys"
        self.api_audience = "api://clearance"
        self.client_id = str(uuid.uuid4())  # the Clearance API's own registration (a confidential client)
        self.client_secret = secrets.token_urlsafe(24)
        self.register_client(self.client_id, self.client_secret, api_audiences=(self.api_audience, self.client_id))
        self.calling_client_id = str(uuid.uuid4())  # the app a user signs in to (azp/appid of their token)
        self._thread = threading.Thread(target=self._server.serve_forever, name="entra-stub", daemon=True)
        self._thread.start()

    def __enter__(self) -> EntraStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving; afterwards connections to :attr:`url` are refused."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- directory and registrations -------------------------------------------------------------

    def issuers(self) -> tuple[IssuerTemplate, IssuerTemplate]:
        return entra_issuers(authority=self.url, v1_authority=self.url)

    def register_client(self, client_id: str, secret: str, *, api_audiences: Iterable[str]) -> None:
        with self._lock:
            self._clients[client_id] = StubClient(secret=secret, api_audiences=tuple(api_audiences))

    def add_user(
        self,
        tenant_id: str,
        object_id: str,
        *,
        groups: Iterable[str] = (),
        user_type: str | None = "Member",
        unified_groups: Iterable[str] = (),
    ) -> None:
        with self._lock:
            self._users[(tenant_id.lower(), object_id.lower())] = StubUser(
                groups=list(groups), user_type=user_type, unified_groups=list(unified_groups)
            )

    def set_groups(self, tenant_id: str, object_id: str, groups: Iterable[str]) -> None:
        with self._lock:
            self._users[(tenant_id.lower(), object_id.lower())].groups = list(groups)

    def rotate_keys(self, tenant_id: str, *, keep_previous: bool = True) -> str:
        """A new signing key for the tenant; the previous one stays published unless told otherwise."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = secrets.token_urlsafe(12)
        with self._lock:
            ring = self._keys.setdefault(tenant_id.lower(), [])
            if not keep_previous:
                ring.clear()
            ring.append((kid, key))
        return kid

    def _signing_key(self, tenant_id: str) -> tuple[str, rsa.RSAPrivateKey]:
        with self._lock:
            ring = self._keys.get(tenant_id.lower())
            if ring:
                return ring[-1]
        self.rotate_keys(tenant_id)
        return self._signing_key(tenant_id)

    def jwks(self, tenant_id: str | None = None) -> dict[str, Any]:
        """The published key set of a tenant, or of all tenants (``common``)."""
        with self._lock:
            rings = [self._keys.get(tenant_id.lower(), [])] if tenant_id else list(self._keys.values())
            pairs = [pair for ring in rings for pair in ring]
        keys = []
        for kid, key in pairs:
            jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
            keys.append(jwk)
        return {"keys": keys}

    # --- tokens ----------------------------------------------------------------------------------

    def mint_access_token(
        self,
        *,
        tenant_id: str,
        object_id: str,
        audience: str | None = None,
        version: TokenVersion = TokenVersion.V2,
        scopes: Iterable[str] | None = (DEFAULT_SCOPE,),
        roles: Iterable[str] = (),
        client_id: str | None = None,
        acct: int | None = 0,
        groups: Iterable[str] | None = None,
        lifetime_seconds: int = 3600,
        extra_claims: dict[str, Any] | None = None,
        omit_claims: Iterable[str] = (),
    ) -> str:
        """An access token as Entra would issue it to the Clearance API.

        ``scopes=None`` makes an app-only token (no ``scp``); ``acct=None`` omits
        ``acct``; ``groups=None`` takes the registered user's groups, and more
        than 200 become an overage claim. ``extra_claims`` then ``omit_claims``
        shape the negatives.
        """
        now = int(time.time())
        base = f"{self.url}/{tenant_id}"
        claims: dict[str, Any] = {
            "aud": audience or self.api_audience,
            "iss": f"{base}/v2.0" if version is TokenVersion.V2 else f"{base}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
            "tid": tenant_id,
            "oid": object_id,
            "sub": secrets.token_urlsafe(16),
            "ver": version.value,
            "azp" if version is TokenVersion.V2 else "appid": client_id or self.calling_client_id,
        }
        if scopes is not None:
            claims["scp"] = " ".join(scopes)
        if acct is not None:
            claims["acct"] = acct
        if roles:
            claims["roles"] = list(roles)
        if groups is None:
            with self._lock:
                user = self._users.get((tenant_id.lower(), object_id.lower()))
            groups = list(user.groups) if user else []
        group_list = list(groups)
        if len(group_list) > GROUP_OVERAGE_LIMIT:
            claims["_claim_names"] = {"groups": "src1"}
            endpoint = f"{self.graph_url}/v1.0/users/{object_id}/getMemberObjects"
            claims["_claim_sources"] = {"src1": {"endpoint": endpoint}}
        elif group_list:
            claims["groups"] = group_list
        claims.update(extra_claims or {})
        for claim in omit_claims:
            claims.pop(claim, None)
        return self.sign(claims, tenant_id=tenant_id)

    def sign(self, claims: dict[str, Any], *, tenant_id: str) -> str:
        kid, key = self._signing_key(tenant_id)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})

    def _graph_token(self, tenant_id: str, *, client_id: str, resource: str, user: str | None) -> str:
        """What the token endpoint hands out for Graph: app-only (roles) or delegated (scp)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": f"{self.url}/{tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "tid": tenant_id,
            "azp": client_id,
            "ver": "1.0",
        }
        if user is None:
            claims.update({"oid": client_id, "roles": ["GroupMember.Read.All", "User.Read.All"], "idtyp": "app"})
        else:
            claims.update({"oid": user, "scp": "GroupMember.Read.All User.Read", "idtyp": "user"})
        return self.sign(claims, tenant_id=tenant_id)

    def _verify(self, token: str, tenant_id: str, audiences: Iterable[str]) -> dict[str, Any]:
        """A token this stub issued for the tenant and one of the audiences; jwt.PyJWTError otherwise."""
        kid = jwt.get_unverified_header(token).get("kid")
        with self._lock:
            keys = {k: key for k, key in self._keys.get(tenant_id.lower(), [])}
        if kid not in keys:
            raise jwt.InvalidTokenError("unknown key")
        issuers = [template.issuer(tenant_id) for template in self.issuers()]
        claims: dict[str, Any] = jwt.decode(
            token, keys[kid].public_key(), algorithms=["RS256"], audience=list(audiences), issuer=issuers
        )
        return claims

    # --- HTTP ------------------------------------------------------------------------------------

    def _handle(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> _Reply:
        parts = [part for part in path.split("/") if part]
        if parts[:1] == ["graph"]:
            return self._graph(method, parts[1:], query, headers, body)
        if parts == ["_stub", "token"] and method == "POST":
            request = json.loads(body or b"{}")
            version = TokenVersion(request.pop("version", "2.0"))
            return _Reply(200, {"access_token": self.mint_access_token(version=version, **request)})
        if len(parts) >= 2 and parts[1:] in (["discovery", "v2.0", "keys"], ["discovery", "keys"]):
            return self._jwks_reply(None if parts[0] == "common" else parts[0])
        if len(parts) >= 2 and parts[-2:] == [".well-known", "openid-configuration"]:
            return _Reply(200, self._metadata(parts[0], v2=parts[1] == "v2.0"))
        if parts[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
            return self._token(parts[0], {k: v[0] for k, v in parse_qs(body.decode()).items()})
        return _Reply(404, {"error": "not_found"})

    def _metadata(self, tenant_id: str, *, v2: bool) -> dict[str, Any]:
        base = f"{self.url}/{tenant_id}"
        return {
            "issuer": f"{base}/v2.0" if v2 else f"{base}/",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize" if v2 else f"{base}/oauth2/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token" if v2 else f"{base}/oauth2/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys" if v2 else f"{base}/discovery/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "NA",
        }

    def _jwks_reply(self, tenant_id: str | None) -> _Reply:
        with self._lock:
            self.counters.jwks += 1
            status, delay = self.switches.jwks_status, self.switches.jwks_delay_seconds
        if delay:
            time.sleep(delay)
        if status is not None:
            return _Reply(status, {"error": "unavailable"})
        return _Reply(200, self.jwks(tenant_id))

    def _token(self, tenant_id: str, form: dict[str, str]) -> _Reply:
        with self._lock:
            self.counters.token += 1
            client = self._clients.get(form.get("client_id", ""))
        if client is None or not secrets.compare_digest(client.secret, form.get("client_secret", "")):
            return _Reply(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client."})
        requested = [s for s in form.get("scope", "").split() if s not in _OIDC_SCOPES]
        if len(requested) != 1 or not requested[0].endswith("/.default"):
            return _Reply(400, {"error": "invalid_scope"})
        resource = requested[0].removesuffix("/.default")
        grant = form.get("grant_type")
        user: str | None = None
        assertion: dict[str, Any] = {}
        if grant == _JWT_BEARER and form.get("requested_token_use") == "on_behalf_of":
            try:
                assertion = self._verify(form.get("assertion", ""), tenant_id, client.api_audiences)
            except jwt.PyJWTError:
                return _Reply(400, {"error": "invalid_grant", "error_description": "AADSTS50013: Assertion failed."})
            user = str(assertion["oid"]).lower()
        elif grant != "client_credentials":
            return _Reply(400, {"error": "unsupported_grant_type"})
        if user is not None and resource == self.api_audience:
            # On-behalf-of for the Clearance API itself (a Teams bot's exchange): a delegated API token
            # for the same person, carrying their groups and, as Entra does, only the acct the assertion had.
            token = self.mint_access_token(
                tenant_id=tenant_id, object_id=user, client_id=form["client_id"], acct=assertion.get("acct")
            )
        else:
            token = self._graph_token(tenant_id, client_id=form["client_id"], resource=resource, user=user)
        reply: dict[str, Any] = {"token_type": "Bearer", "expires_in": 3599, "access_token": token}
        if user is not None:
            reply["scope"] = " ".join(requested)
            info = json.dumps({"uid": user, "utid": tenant_id.lower()}).encode()
            reply["client_info"] = base64.urlsafe_b64encode(info).rstrip(b"=").decode()
        return _Reply(200, reply)

    def _graph(self, method: str, parts: list[str], query: dict[str, list[str]], headers: Any, body: bytes) -> _Reply:
        with self._lock:
            self.counters.graph += 1
            switches = self.switches
            outage, retry_after, dropped = switches.graph_status, switches.retry_after, switches.graph_disconnect
            throttled = switches.throttle_count > 0
            switches.throttle_count -= 1 if throttled else 0
        extra = {"Retry-After": retry_after} if retry_after is not None else {}
        if dropped:
            return _Reply(0, {})
        if outage is not None:
            return _Reply(outage, {"error": {"code": "serviceNotAvailable"}}, extra)
        if throttled:
            return _Reply(429, {"error": {"code": "TooManyRequests"}}, extra)
        auth = headers.get("Authorization", "")
        try:
            unverified = jwt.decode(auth.removeprefix("Bearer "), options={"verify_signature": False})
            tenant_id = str(unverified["tid"])
            claims = self._verify(auth.removeprefix("Bearer "), tenant_id, (self.graph_url, GRAPH_APP_ID))
        except (jwt.PyJWTError, KeyError):
            return _Reply(401, {"error": {"code": "InvalidAuthenticationToken"}})
        if parts[:1] != ["v1.0"]:
            return _Reply(404, {"error": {"code": "BadRequest"}})
        route, delegated = parts[1:], "scp" in claims
        me = str(claims["oid"]).lower() if delegated else None
        oid = me if route[:1] == ["me"] else (route[1].lower() if len(route) > 1 and route[0] == "users" else None)
        with self._lock:
            user = self._users.get((tenant_id.lower(), oid or ""))
            user = StubUser(list(user.groups), user.user_type, list(user.unified_groups)) if user else None
        if oid is None or user is None or (route[:1] == ["me"] and not delegated):
            return _Reply(404, {"error": {"code": "Request_ResourceNotFound"}})
        if route[2:] == ["getMemberObjects"] and method == "POST":
            security_only = json.loads(body or b"{}").get("securityEnabledOnly")
            if not isinstance(security_only, bool):
                return _Reply(400, {"error": {"code": "BadRequest"}})
            return _Reply(200, {"value": user.groups + ([] if security_only else user.unified_groups)})
        if route[1:] == ["transitiveMemberOf", "microsoft.graph.group"] and method == "GET":
            return _Reply(200, self._member_page(user, query))
        if len(route) == (1 if route[0] == "me" else 2) and method == "GET":
            return _Reply(200, {"id": oid, "userType": user.user_type})
        return _Reply(404, {"error": {"code": "BadRequest"}})

    def _member_page(self, user: StubUser, query: dict[str, list[str]]) -> dict[str, Any]:
        items = [{"id": g, "securityEnabled": True} for g in user.groups]
        items += [{"id": g, "securityEnabled": False} for g in user.unified_groups]
        size = min(int(query.get("$top", ["100"])[0]), self.switches.max_page_size)
        start = int(query.get("$skiptoken", ["0"])[0])
        page: dict[str, Any] = {"value": items[start : start + size]}
        if start + size < len(items):
            page["@odata.nextLink"] = (
                f"{self.graph_url}/v1.0/me/transitiveMemberOf/microsoft.graph.group"
                f"?$select=id,securityEnabled&$top={size}&$skiptoken={start + size}"
            )
        return page


@dataclass
class _Reply:
    status: int  # 0: no answer at all, the connection is closed
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, stub: EntraStub, context: ssl.SSLContext) -> None:
        self.stub = stub
        self.context = context
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[Any, Any]:
        # TLS per connection, its handshake in the handler's thread: a slow client cannot stall accept().
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hangs up mid-handshake is not the stub's error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Entra and Graph: latencies measured here are not TLS setup
    timeout = 10
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no delayed-ACK stalls
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        split = urlsplit(self.path)
        try:
            reply = self.server.stub._handle(method, split.path, parse_qs(split.query), self.headers, body)
        except (ValueError, KeyError, TypeError) as exc:
            reply = _Reply(400, {"error": "invalid_request", "error_description": type(exc).__name__})
        if reply.status == 0:  # the disconnect switch: hang up without a word
            self.close_connection = True
            return
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in {"Content-Type": "application/json", **reply.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


def main() -> None:
    parser = argparse.ArgumentParser(description="A local Entra ID and Microsoft Graph stub (loopback, HTTPS).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tenant", default="d1f72fea-086f-4448-9dce-2f71deb8ef72")
    parser.add_argument("--user", default="a0000000-0000-4000-8000-000000000001")
    args = parser.parse_args()
    with EntraStub(port=args.port) as stub:
        stub.add_user(args.tenant, args.user, groups=[str(uuid.uuid4()) for _ in range(3)])
        info = {
            "url": stub.url,
            "ca_file": str(stub.ca_file),
            "graph_url": stub.graph_url,
            "jwks_url": stub.jwks_url,
            "client_id": stub.client_id,
            "client_secret": stub.client_secret,
            "audience": stub.api_audience,
            "tenant": args.tenant,
            "user": args.user,
            "token": stub.mint_access_token(tenant_id=args.tenant, object_id=args.user),
        }
        print(json.dumps(info, indent=2), flush=True)
        stop = threading.Event()
        # SIGTERM as well as Ctrl-C: either way the server stops and its CA directory is removed.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(0.5):
                pass


if __name__ == "__main__":
    main()
