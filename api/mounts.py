"""Other ASGI apps the API serves on its own port, at exact paths, for as long as the API runs.

The composition root builds them (the MCP endpoint lives above this layer) and
hands them to :func:`api.app.create_app` as :class:`MountedApp` values; the API
knows nothing of what they are. Each is routed by exact path, so every other
path keeps the API's own behaviour (problem+json 404s), and each passes through
the API's request bounds (:mod:`api.limits`) like any route. A mounted app does
its own authentication: the API's early token check covers ``/v1/`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp


@dataclass(frozen=True, slots=True)
class MountedApp:
    """An ASGI app served at ``paths``; ``running()`` is entered when the API starts and left when it stops."""

    app: ASGIApp
    paths: tuple[str, ...]
    running: Callable[[], AbstractAsyncContextManager[None]]


def add_mounted_routes(api: FastAPI, mounted: MountedApp) -> None:
    """Routes each of ``mounted.paths`` (every method) to ``mounted.app``, outside the OpenAPI schema."""
    for path in mounted.paths:
        # An ASGI app as a route's endpoint receives the request unchanged: its own router matches the same path.
        api.router.routes.append(Route(path, endpoint=mounted.app, include_in_schema=False))
