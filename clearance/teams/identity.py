"""The bot's own Entra credentials, through msal, as the Agents SDK's connection interfaces.

Two uses, one registration: the bot's app-only token for the Bot Framework connector (to
send replies) and the on-behalf-of exchange of the person's single sign-on token for a
token to the Clearance API (so every question is asked with that person's identity, never
the bot's). The SDK's own ``MsalAuth`` builds msal clients with instance discovery on and
the system CA only, which cannot reach a sovereign authority behind a private CA or the
local Entra stub; this provider passes both explicitly, as the rest of Clearance does.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msal  # type: ignore[import-untyped]
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import AgentAuthConfiguration, ClaimsIdentity

from acl.graph import graph_session
from core.errors import AuthenticationError


@dataclass(frozen=True)
class BotCredentials:
    app_id: str
    secret: str
    tenant_id: str
    authority: str  # the Entra host, e.g. https://login.microsoftonline.com
    ca_file: Path | None = None


class MsalTokenProvider:
    """An ``AccessTokenProviderBase`` over one confidential client (the bot's registration)."""

    def __init__(self, credentials: BotCredentials) -> None:
        self._credentials = credentials
        # The session Clearance's Graph client uses: bounded in time, the CA pinned even where
        # REQUESTS_CA_BUNDLE is set (requests lets it override a session's verify).
        session = graph_session(ca_file=credentials.ca_file, timeout_seconds=10.0)
        self._app = msal.ConfidentialClientApplication(
            credentials.app_id,
            client_credential=credentials.secret,
            authority=f"{credentials.authority.rstrip('/')}/{credentials.tenant_id}",
            instance_discovery=False,
            http_client=session,
        )
        self._lock = threading.Lock()  # msal's token cache is shared; one call at a time per client
        self._configuration = AgentAuthConfiguration(
            client_id=credentials.app_id, tenant_id=credentials.tenant_id, connection_name="bot"
        )

    @property
    def configuration(self) -> AgentAuthConfiguration:
        return self._configuration

    async def get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        wanted = scopes or [f"{resource_url.rstrip('/')}/.default"]
        result = await asyncio.to_thread(self._call, lambda: self._app.acquire_token_for_client(scopes=wanted))
        return _token(result, "the bot could not get its own access token")

    async def acquire_token_on_behalf_of(self, scopes: list[str], user_assertion: str) -> str:
        result = await asyncio.to_thread(
            self._call, lambda: self._app.acquire_token_on_behalf_of(user_assertion, scopes=scopes)
        )
        return _token(result, "the user's token could not be exchanged for the Clearance API")

    def get_token_credential(self) -> Any:
        raise NotImplementedError("not used by Clearance's bot")

    async def get_agentic_application_token(self, *args: Any, **kwargs: Any) -> str | None:
        raise NotImplementedError("agentic identities are not used by Clearance's bot")

    async def get_agentic_instance_token(self, *args: Any, **kwargs: Any) -> tuple[str, str]:
        raise NotImplementedError("agentic identities are not used by Clearance's bot")

    async def get_agentic_user_token(self, *args: Any, **kwargs: Any) -> str | None:
        raise NotImplementedError("agentic identities are not used by Clearance's bot")

    def _call(self, acquire: Any) -> dict[str, Any]:
        with self._lock:
            result: dict[str, Any] = acquire()
            return result


def _token(result: dict[str, Any], message: str) -> str:
    token = result.get("access_token") if isinstance(result, dict) else None
    if not isinstance(token, str) or not token:
        # msal's error text can quote the request; it stays out of user-visible messages.
        raise AuthenticationError(message)
    return token


class BotConnections:
    """The SDK's ``Connections``: one named connection, the bot's registration."""

    def __init__(self, provider: MsalTokenProvider, *, name: str = "bot") -> None:
        self._provider = provider
        self._name = name

    def get_connection(self, connection_name: str) -> MsalTokenProvider:
        if connection_name != self._name:
            raise ValueError(f"unknown connection {connection_name!r}")
        return self._provider

    def get_default_connection(self) -> MsalTokenProvider:
        return self._provider

    def get_token_provider(self, claims_identity: ClaimsIdentity, service_url: str) -> MsalTokenProvider:
        return self._provider

    def get_token_provider_from_activity(
        self, claims_identity: ClaimsIdentity, activity: Activity
    ) -> MsalTokenProvider:
        return self._provider

    def get_default_connection_configuration(self) -> AgentAuthConfiguration:
        return self._provider.configuration
