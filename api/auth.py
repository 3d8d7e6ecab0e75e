"""Auth dependencies: every route but health needs a bearer token; admin routes a role."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from acl.principal import Principal
from clearance.errors import AuthenticationError, AuthorizationError
from clearance.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="A Microsoft Entra ID access token (or a development token)")


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError("missing bearer token")
    return runtime_of(request).tokens.authenticate(credentials.credentials)


def admin_principal(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    role = runtime_of(request).settings.auth.admin_role
    if not principal.has_role(role):
        raise AuthorizationError(f"the {role} role is required")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
