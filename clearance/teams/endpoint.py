"""``POST /api/messages``: the one route Teams calls, refusing any activity whose channel token fails."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from microsoft_agents.hosting.core import MessageFactory, TurnContext
from microsoft_agents.hosting.fastapi import CloudAdapter

from clearance.teams.bot import ClearanceBot
from clearance.teams.channel_auth import ChannelTokenValidator
from core.errors import AuthenticationError

log = logging.getLogger(__name__)
MAX_ACTIVITY_BYTES = 256 * 1024  # Teams caps a message at about 28 KB; anything far larger is not Teams


def create_teams_app(*, bot: ClearanceBot, adapter: CloudAdapter, validator: ChannelTokenValidator) -> FastAPI:
    app = FastAPI(title="Clearance for Microsoft Teams", docs_url=None, redoc_url=None, openapi_url=None)

    async def on_turn_error(context: TurnContext, error: Exception) -> None:
        # The SDK's default echoes the exception text into the chat; say nothing internal.
        log.error("turn failed: %s", type(error).__name__, exc_info=error)
        await context.send_activity(MessageFactory.text("Something went wrong. Please try again."))

    adapter.on_turn_error = on_turn_error

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/messages")
    async def messages(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_ACTIVITY_BYTES):
            return JSONResponse({"error": "activity too large"}, status_code=413)
        body = await request.body()
        if len(body) > MAX_ACTIVITY_BYTES:
            return JSONResponse({"error": "activity too large"}, status_code=413)
        try:
            activity = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "invalid activity"}, status_code=400)
        service_url = activity.get("serviceUrl") if isinstance(activity, dict) else None
        try:
            identity = await validator.validate(
                request.headers.get("authorization"), service_url=service_url if isinstance(service_url, str) else None
            )
        except AuthenticationError:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        request.state.claims_identity = identity
        response = await adapter.process(request, bot.app)
        return response if response is not None else Response(status_code=202)

    return app
