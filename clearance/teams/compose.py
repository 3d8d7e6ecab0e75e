"""Builds the Teams bot from settings: the only place in this package that reads them."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from microsoft_agents.hosting.core import OutboundHostValidator
from microsoft_agents.hosting.fastapi import CloudAdapter

from acl.jwks import JwksKeys
from clearance.settings import TeamsSettings
from clearance.teams.bot import BotOptions, ClearanceApi, ClearanceBot
from clearance.teams.channel_auth import ChannelTokenValidator
from clearance.teams.endpoint import create_teams_app
from clearance.teams.identity import BotConnections, BotCredentials, MsalTokenProvider


def build_teams_app(
    settings: TeamsSettings,
    *,
    api_transport: httpx.AsyncBaseTransport | None = None,
    allow_insecure_api_http: bool = False,
) -> FastAPI:
    """The bot's ASGI app; ``api_transport`` serves the Clearance API in process (tests)."""
    missing = [name for name in ("app_id", "tenant_id") if not getattr(settings, name)]
    if not settings.app_password.get_secret_value():
        missing.append("app_password")
    if missing:
        raise ValueError("Teams bot settings missing: " + ", ".join(f"CLEARANCE_TEAMS__{m.upper()}" for m in missing))
    provider = MsalTokenProvider(
        BotCredentials(
            app_id=settings.app_id,
            secret=settings.app_password.get_secret_value(),
            tenant_id=settings.tenant_id,
            authority=settings.authority,
            ca_file=settings.ca_file,
        )
    )
    connections = BotConnections(provider)
    adapter = CloudAdapter(
        connection_manager=connections,
        channel_service_client_factory_options={"token_service_endpoint": settings.token_service_url},
        # Beside the channel token's serviceurl binding (channel_auth.py), the SDK's own host check:
        # https only, public addresses, Microsoft's connector hosts plus any configured.
        host_validator=OutboundHostValidator(settings.service_url_hosts, enabled=settings.check_service_url_hosts),
    )
    bot = ClearanceBot(
        connections=connections,
        api=ClearanceApi(
            base_url=settings.api_url,
            scope=settings.api_scope,
            transport=api_transport,
            allow_insecure_http=allow_insecure_api_http,
        ),
        options=BotOptions(
            sso_connection=settings.sso_connection, stream_interval_seconds=settings.stream_interval_seconds
        ),
    )
    validator = ChannelTokenValidator(
        keys=JwksKeys(url=settings.channel_jwks_url), issuer=settings.channel_issuer, app_id=settings.app_id
    )
    return create_teams_app(bot=bot, adapter=adapter, validator=validator)
