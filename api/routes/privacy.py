"""Forget user (Clearance.Admin): a person's conversations and feedback deleted, their audit records pseudonymised.

Scoped to the admin's own tenant (from the token). The answer gives counts
only; the action is audited (``audit.erase`` naming the erased positions, then
``user.forget`` with the counts), and neither record names the person.
"""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter
from pydantic import BaseModel, Field

from acl.principal import normalize_id
from api.deps import AdminPrincipal, RetentionDep
from core.errors import InvalidInputError

router = APIRouter(prefix="/v1/admin/users", tags=["admin"])


class ForgetOut(BaseModel):
    removed: dict[str, int] = Field(description="per kind of the person's own records (conversations, feedback)")
    audit_records_erased: int = Field(description="audit records whose personal fields were erased")


@router.post("/{object_id}/forget", summary="Forget a user of your tenant (conversations, feedback, audit identity)")
async def forget_user(object_id: str, admin: AdminPrincipal, retention: RetentionDep) -> ForgetOut:
    try:
        user = normalize_id(object_id, "user")
    except ValueError:
        raise InvalidInputError("the user is an object id (a GUID)") from None
    report = await to_thread.run_sync(
        lambda: retention.forget_user(tenant_id=admin.tenant_id, object_id=user, actor=admin.object_id)
    )
    return ForgetOut(removed=report.removed, audit_records_erased=report.audit_records)
