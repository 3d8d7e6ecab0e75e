"""Development-only routes: the sample users and tokens for them (never in production)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from api.deps import DevIdentityDep
from api.schemas import Strict

router = APIRouter(prefix="/dev", tags=["development"])


class DevTokenRequest(Strict):
    user: str = Field(min_length=1, max_length=64)


@router.get("/users", summary="Sample users of the development directory")
def users(dev: DevIdentityDep) -> dict[str, Any]:
    directory = dev.directory
    return {
        "users": [
            {
                "name": u.name,
                "display_name": u.display_name,
                "title": u.title,
                "tenant": directory.tenant_names.get(u.tenant, u.tenant),
                "groups": [directory.group_names.get(g, g) for g in u.groups[:12]],
                "group_count": len(u.groups),
                "roles": list(u.roles),
                "guest": u.guest,
                "suggested_questions": list(dev.suggestions.get(u.name, ())),
            }
            for u in directory.users
        ]
    }


@router.post("/token", summary="A development access token for a sample user")
def token(body: DevTokenRequest, dev: DevIdentityDep) -> dict[str, str]:
    return {"access_token": dev.idp.mint_for(dev.directory.user(body.user)), "token_type": "Bearer"}
