"""What routes may use: one Annotated dependency per capability, nothing else.

The composition root builds an :class:`ApiComponents` and hands it to
:func:`api.app.create_app`; routes never see settings or a service locator.
Authentication is a dependency too: every route but health declares the
caller it needs (any caller, or one holding the admin role).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from acl.dev.directory import Directory
from acl.dev.idp import DevIdentityProvider
from acl.principal import Principal
from api.limits import PRINCIPAL_SCOPE_KEY
from core.errors import AuthenticationError, AuthorizationError, NotFoundError
from ingest.service import IngestionService
from retrieval.answer import AnswerService


class Authenticator(Protocol):
    """Turns a bearer token into a principal or raises AuthenticationError."""

    def authenticate(self, token: str) -> Principal: ...


@dataclass(frozen=True, slots=True)
class DevIdentity:
    """The development directory and the provider that mints tokens for it (development mode only)."""

    directory: Directory
    idp: DevIdentityProvider


@dataclass(frozen=True, slots=True)
class HttpBounds:
    """Limits every request obeys before route code runs (see :mod:`api.limits`)."""

    max_body_bytes: int = 1_048_576
    body_timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ApiComponents:
    """The capabilities the HTTP API is built from."""

    authenticator: Authenticator
    answers: AnswerService
    ingestion: IngestionService
    readiness: Callable[[], None]  # raises IndexUnavailableError when the index cannot answer
    admin_role: str
    dev: DevIdentity | None = None
    docs: bool = False  # serve /docs and /openapi.json
    bounds: HttpBounds = HttpBounds()


_bearer = HTTPBearer(auto_error=False, description="A Microsoft Entra ID access token (or a development token)")


def components_of(request: Request) -> ApiComponents:
    components: ApiComponents = request.app.state.components
    return components


def _answers(request: Request) -> AnswerService:
    return components_of(request).answers


def _ingestion(request: Request) -> IngestionService:
    return components_of(request).ingestion


def _dev_identity(request: Request) -> DevIdentity:
    dev = components_of(request).dev
    if dev is None:
        raise NotFoundError("development mode is off")
    return dev


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    validated = request.scope.get("state", {}).get(PRINCIPAL_SCOPE_KEY)
    if isinstance(validated, Principal):
        return validated  # the request-limits middleware validated this token before reading the body
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError("missing bearer token")
    return components_of(request).authenticator.authenticate(credentials.credentials)


def admin_principal(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    role = components_of(request).admin_role
    if not principal.has_role(role):
        raise AuthorizationError(f"the {role} role is required")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
Answers = Annotated[AnswerService, Depends(_answers)]
Ingestion = Annotated[IngestionService, Depends(_ingestion)]
DevIdentityDep = Annotated[DevIdentity, Depends(_dev_identity)]
