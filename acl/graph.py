"""Group membership and member/guest status from Microsoft Graph, with tokens from msal.

:class:`GraphGroupResolver` implements :class:`acl.groups.UserDirectory` in one of
two modes:

- ``APP_ONLY``: the application's own token (client credentials) and
  ``POST /v1.0/users/{oid}/getMemberObjects`` (transitive; security groups only
  when ``security_enabled_only``), ``GET /v1.0/users/{oid}?$select=userType``.
  Needs the application permissions GroupMember.Read.All and User.Read.All.
- ``ON_BEHALF_OF``: the caller's access token exchanged for a Graph token
  (``acquire_token_on_behalf_of``), then
  ``GET /v1.0/me/transitiveMemberOf/microsoft.graph.group`` following
  ``@odata.nextLink`` and ``GET /v1.0/me?$select=id,userType``. Graph then
  answers with the caller's own rights; no application-wide read permission.

One msal ``ConfidentialClientApplication`` per tenant, kept for the process, so
msal's token cache serves the app token until it expires, and an on-behalf-of
token is reused for the same user (looked up by account) rather than
exchanged on every cache miss. The token cache is bounded: past
``max_cached_users`` accounts a tenant's application is replaced by a fresh one.

Throttling (429) and unavailability (503) are honoured with ``Retry-After``
within ``retry_budget_seconds`` per lookup; a wait that would overrun the
budget fails the lookup at once, and the caller is narrowed. An answer is
complete or a :class:`GroupResolutionError`: a page that cannot be read fails
the whole lookup, never returns part of it.

All HTTP goes through one ``requests.Session`` (:func:`graph_session`): it puts a
timeout on every request (msal sets none on a session it is given) and, when a
CA file is pinned (a private CA, the local stub), uses it whatever
``REQUESTS_CA_BUNDLE`` says (requests lets that variable override
``Session.verify``).
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jwt
import msal  # type: ignore[import-untyped]
import requests
from requests.adapters import HTTPAdapter

from acl.groups import UserType
from acl.principal import is_valid_id, normalize_id
from acl.tokens import ENTRA_AUTHORITY
from core.errors import GroupResolutionError

log = logging.getLogger(__name__)

GRAPH_URL = "https://graph.microsoft.com"
_RETRYABLE = frozenset({429, 503})
# When Graph says 429/503 without Retry-After: wait this long before the next try.
_DEFAULT_RETRY_SECONDS = 1.0


class GraphMode(StrEnum):
    APP_ONLY = "app_only"
    ON_BEHALF_OF = "on_behalf_of"


class _PinnedAdapter(HTTPAdapter):
    """A default timeout for every request, and the pinned CA whatever the environment says."""

    def __init__(self, *, timeout_seconds: float, ca_file: Path | None) -> None:
        super().__init__()
        self._timeout = timeout_seconds
        self._ca = str(ca_file) if ca_file else None

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=self._timeout if timeout is None else timeout,
            verify=self._ca or verify,
            cert=cert,
            proxies=proxies,
        )


def graph_session(*, ca_file: Path | None = None, timeout_seconds: float = 10.0) -> requests.Session:
    """The session msal and the Graph calls share: bounded in time, CA pinned when given."""
    session = requests.Session()
    if ca_file is not None:
        session.verify = str(ca_file)
    adapter = _PinnedAdapter(timeout_seconds=timeout_seconds, ca_file=ca_file)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class GraphGroupResolver:
    """Groups and user type of Entra users from Microsoft Graph (see the module docstring)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_credential: str | Mapping[str, str],
        mode: GraphMode = GraphMode.APP_ONLY,
        authority: str = ENTRA_AUTHORITY,
        graph_url: str = GRAPH_URL,
        graph_scope: str | None = None,
        security_enabled_only: bool = True,
        session: requests.Session | None = None,
        timeout_seconds: float = 5.0,
        retry_budget_seconds: float = 10.0,
        page_size: int = 999,
        max_pages: int = 100,
        max_cached_users: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name, url in (("authority", authority), ("graph_url", graph_url)):
            if urlparse(url).scheme != "https":
                raise ValueError(f"{name} must be an https URL: {url!r}")  # msal refuses anything else too
        if not 1 <= page_size <= 999:
            raise ValueError("page_size must be between 1 and 999 (Graph's limit)")
        self._client_id = client_id
        self._credential = dict(client_credential) if isinstance(client_credential, Mapping) else client_credential
        self._mode = mode
        self._authority = authority.rstrip("/")
        self._graph = graph_url.rstrip("/")
        self._scope = graph_scope or f"{self._graph}/.default"
        self._security_only = security_enabled_only
        self._owns_session = session is None
        self._session = session or graph_session(timeout_seconds=timeout_seconds)
        self._timeout = timeout_seconds
        self._budget = retry_budget_seconds
        self._page_size = page_size
        self._max_pages = max_pages
        self._max_cached_users = max_cached_users
        self._clock = clock
        self._sleep = sleep
        self._apps: dict[str, Any] = {}
        self._apps_lock = threading.Lock()

    # --- the UserDirectory port ------------------------------------------------------------------

    def member_groups(self, tenant_id: str, object_id: str, *, assertion: str | None = None) -> frozenset[str]:
        tid, oid = _ids(tenant_id, object_id)
        deadline = self._clock() + self._budget
        token = self._token(tid, oid, assertion)
        if self._mode is GraphMode.APP_ONLY:
            url = f"{self._graph}/v1.0/users/{oid}/getMemberObjects"
            body = {"securityEnabledOnly": self._security_only}
            return frozenset(self._pages(url, token, deadline, body=body, item=_string_item))
        # $select keeps pages small; securityEnabled lets both modes apply the same filter.
        url = f"{self._graph}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id,securityEnabled"
        url += f"&$top={self._page_size}"
        item = _security_group_id if self._security_only else _group_id
        return frozenset(group for group in self._pages(url, token, deadline, body=None, item=item) if group)

    def user_type(self, tenant_id: str, object_id: str, *, assertion: str | None = None) -> UserType:
        tid, oid = _ids(tenant_id, object_id)
        deadline = self._clock() + self._budget
        token = self._token(tid, oid, assertion)
        path = f"users/{oid}" if self._mode is GraphMode.APP_ONLY else "me"
        answer = self._call("GET", f"{self._graph}/v1.0/{path}?$select=id,userType", token, deadline, body=None)
        answered_id = answer.get("id")
        if not isinstance(answered_id, str) or answered_id.lower() != oid:
            raise GroupResolutionError("Graph answered about another user")
        try:
            return UserType(str(answer.get("userType")))
        except ValueError:
            # null (some older accounts) or a new value: unknown, so the caller is narrowed.
            raise GroupResolutionError("Graph did not give a known userType") from None

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    # --- tokens through msal ---------------------------------------------------------------------

    def _token(self, tid: str, oid: str, assertion: str | None) -> str:
        if self._mode is GraphMode.ON_BEHALF_OF:
            if not assertion:
                raise GroupResolutionError("on-behalf-of needs the caller's own token")
            # Graph answers about whoever the assertion names (/me): it must be the user asked about,
            # or one user's groups would be cached under another's key.
            if _unverified_subject(assertion) != (tid, oid):
                raise GroupResolutionError("the assertion names another user")
        app = self._app(tid)
        scopes = [self._scope]
        try:
            if self._mode is GraphMode.APP_ONLY:
                result = app.acquire_token_for_client(scopes=scopes)  # msal looks in its cache first
            else:
                result = self._on_behalf_of(app, tid, oid, assertion or "", scopes)
        except (requests.RequestException, ValueError) as exc:
            raise GroupResolutionError(f"token endpoint unreachable ({type(exc).__name__})") from exc
        token = result.get("access_token") if isinstance(result, dict) else None
        if not isinstance(token, str) or not token:
            error = result.get("error") if isinstance(result, dict) else None
            raise GroupResolutionError(f"no Graph token ({error or 'unexpected answer'})")
        return token

    def _on_behalf_of(self, app: Any, tid: str, oid: str, assertion: str, scopes: list[str]) -> Any:
        # The same user's Graph token from msal's cache first (the assertion names this user,
        # checked above). Accounts are keyed by the home tenant: a guest's differs from ours,
        # and simply misses.
        for account in app.get_accounts():
            if account.get("home_account_id") == f"{oid}.{tid}":
                cached = app.acquire_token_silent(scopes, account=account)
                if cached and "access_token" in cached:
                    return cached
                break
        result = app.acquire_token_on_behalf_of(user_assertion=assertion, scopes=scopes)
        if len(app.get_accounts()) > self._max_cached_users:
            with self._apps_lock:
                # Bounded memory: msal's cache has no eviction, so the tenant starts a fresh one.
                if self._apps.get(tid) is app:
                    del self._apps[tid]
        return result

    def _app(self, tid: str) -> Any:
        with self._apps_lock:
            app = self._apps.get(tid)
            if app is not None:
                return app
            try:
                # instance_discovery=False: the authority is the operator's configuration (a
                # sovereign cloud, the local stub), not something to look up at Microsoft.
                app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=self._credential,
                    authority=f"{self._authority}/{tid}",
                    http_client=self._session,
                    instance_discovery=False,
                )
            except (requests.RequestException, ValueError, RuntimeError) as exc:
                # Not kept: the next lookup tries the authority again.
                raise GroupResolutionError(f"authority unreachable ({type(exc).__name__})") from exc
            self._apps[tid] = app
            return app

    # --- Graph over HTTP ---------------------------------------------------------------------------

    def _pages(
        self, url: str, token: str, deadline: float, *, body: dict[str, Any] | None, item: Callable[[object], str]
    ) -> list[str]:
        """Every item of every page; the whole lookup fails on any page that cannot be read."""
        found: list[str] = []
        method = "GET" if body is None else "POST"
        for _ in range(self._max_pages):
            answer = self._call(method, url, token, deadline, body=body)
            values = answer.get("value")
            if not isinstance(values, list):
                raise GroupResolutionError("Graph page has no value list")
            found.extend(item(value) for value in values)
            next_link = answer.get("@odata.nextLink")
            if next_link is None:
                return found
            # The bearer token goes only to Graph itself, never to a host a page names.
            if not isinstance(next_link, str) or not next_link.startswith(f"{self._graph}/"):
                raise GroupResolutionError("Graph page links outside Graph")
            url, method, body = next_link, "GET", None
        raise GroupResolutionError("Graph paging exceeded its bound")

    def _call(
        self, method: str, url: str, token: str, deadline: float, *, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise GroupResolutionError("Graph time budget exhausted")
            try:
                response = self._session.request(
                    method,
                    url,
                    json=body,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                    timeout=min(self._timeout, remaining),
                )
            except requests.RequestException as exc:
                raise GroupResolutionError(f"Graph unreachable ({type(exc).__name__})") from exc
            with response:
                if response.status_code in _RETRYABLE:
                    wait = _retry_after(response.headers.get("Retry-After"))
                    if wait > deadline - self._clock():
                        # Waiting would overrun the budget: fail now rather than hold the request.
                        raise GroupResolutionError(f"Graph answered {response.status_code} beyond the time budget")
                    log.info("Graph answered %d; retrying in %.1f s", response.status_code, wait)
                    self._sleep(wait)
                    continue
                if response.status_code != 200:
                    raise GroupResolutionError(f"Graph answered {response.status_code}")
                try:
                    answer = response.json()
                except ValueError as exc:
                    raise GroupResolutionError("Graph answer is not JSON") from exc
            if not isinstance(answer, dict):
                raise GroupResolutionError("Graph answer is not an object")
            return answer


def _ids(tenant_id: str, object_id: str) -> tuple[str, str]:
    # GUIDs only: both go into URLs.
    try:
        return normalize_id(tenant_id, "tenant"), normalize_id(object_id, "user")
    except ValueError as exc:
        raise GroupResolutionError("identity is not a GUID") from exc


def _retry_after(value: str | None) -> float:
    """Seconds to wait: Retry-After as seconds or an HTTP date; a default when absent or unreadable."""
    if value is None:
        return _DEFAULT_RETRY_SECONDS
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return _DEFAULT_RETRY_SECONDS
    return max(0.0, when.timestamp() - time.time())


def _string_item(value: object) -> str:
    if not isinstance(value, str):
        raise GroupResolutionError("Graph listed a member object that is not an id")
    return value


def _group_id(value: object) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise GroupResolutionError("Graph listed a group without an id")
    return str(value["id"])


def _security_group_id(value: object) -> str:
    """The id of a security group, or "" for any other group (filtered out by the caller)."""
    group_id = _group_id(value)
    return group_id if isinstance(value, dict) and value.get("securityEnabled") is True else ""


def _unverified_subject(assertion: str) -> tuple[str, str] | None:
    """(tid, oid) of an assertion the validator has already verified, in canonical form."""
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    tid, oid = claims.get("tid"), claims.get("oid")
    if not (is_valid_id(tid) and is_valid_id(oid)):
        return None
    return tid.lower(), oid.lower()
