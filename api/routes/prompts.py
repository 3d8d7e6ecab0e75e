"""Admin routes: versioned prompts of the admin's own tenant (Clearance.Admin role).

The tenant always comes from the admin's token. Policy lives in
:class:`store.prompts.PromptStore` (visibility, immutability, the rollback stack,
the audit record); these routes add one rule of their own: an activation through
the API must be forced with a reason, because the evaluation gate runs the whole
persona set (minutes with the extractive generator, hours with a local model),
longer than a request may be held. ``clearance prompts activate`` runs the gate.
A rollback is never gated: it returns to a version that was accepted before.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import AdminPrincipal, Prompts
from api.prompt_schemas import (
    NAME,
    VERSION,
    ActivateRequest,
    ActivationOut,
    HistoryOut,
    PromptAddRequest,
    PromptDetailOut,
    PromptDiffOut,
    PromptList,
    PromptVersionOut,
    RollbackRequest,
)
from core.errors import InvalidInputError
from retrieval.prompt_template import PromptTemplate
from store.prompts import Acceptance, Gate

router = APIRouter(prefix="/v1/admin/prompts", tags=["admin"])

Name = Annotated[str, Path(pattern=NAME)]
Version = Annotated[str, Path(pattern=VERSION)]
API_GATE_REFUSAL = (
    "activation through the API is not gated: the evaluation gate runs from the command line "
    "(`clearance prompts activate NAME VERSION`); to activate here anyway, send force=true with a reason"
)


@router.get("", summary="Prompt versions your tenant can use (built-in and your own), the active ones marked")
def list_prompts(
    admin: AdminPrincipal, prompts: Prompts, name: str | None = Query(default=None, pattern=NAME)
) -> PromptList:
    versions = prompts.versions(tenant_id=admin.tenant_id, name=name)
    active = {
        v.template.name: prompts.active(tenant_id=admin.tenant_id, name=v.template.name).template.id for v in versions
    }
    return PromptList(
        prompts=[PromptVersionOut.of(v, active=active[v.template.name] == v.template.id) for v in versions]
    )


@router.post("", status_code=201, summary="Add a version for your tenant (immutable; not active until activated)")
def add_prompt(body: PromptAddRequest, admin: AdminPrincipal, prompts: Prompts) -> PromptDetailOut:
    template = PromptTemplate(
        name=body.name, version=body.version, system=body.system, user=body.user, description=body.description
    )
    stored = prompts.add(template, tenant_id=admin.tenant_id, actor=admin.object_id)
    return PromptDetailOut.detail(stored, active=False)


@router.get("/{name}/versions/{version}", summary="One version's texts")
def show_prompt(name: Name, version: Version, admin: AdminPrincipal, prompts: Prompts) -> PromptDetailOut:
    stored = prompts.get(tenant_id=admin.tenant_id, name=name, version=version)
    active = prompts.active(tenant_id=admin.tenant_id, name=name).template.id == stored.template.id
    return PromptDetailOut.detail(stored, active=active)


@router.get("/{name}/diff", summary="Unified diff between two versions")
def diff_prompts(
    name: Name,
    admin: AdminPrincipal,
    prompts: Prompts,
    old: str = Query(alias="from", pattern=VERSION),
    new: str = Query(alias="to", pattern=VERSION),
) -> PromptDiffOut:
    before = prompts.get(tenant_id=admin.tenant_id, name=name, version=old)
    after = prompts.get(tenant_id=admin.tenant_id, name=name, version=new)
    text = prompts.diff(tenant_id=admin.tenant_id, name=name, old=old, new=new)
    return PromptDiffOut(
        old=before.template.id, new=after.template.id, identical=before.digest == after.digest, diff=text
    )


@router.get("/{name}/history", summary="The active version and every activation and rollback, oldest first")
def prompt_history(name: Name, admin: AdminPrincipal, prompts: Prompts) -> HistoryOut:
    active = prompts.active(tenant_id=admin.tenant_id, name=name)
    history = prompts.history(tenant_id=admin.tenant_id, name=name)
    return HistoryOut(active=active.template.id, history=[ActivationOut.of(a) for a in history])


@router.post("/{name}/activate", summary="Activate a version for your tenant's next answers (force and reason)")
def activate_prompt(name: Name, body: ActivateRequest, admin: AdminPrincipal, prompts: Prompts) -> ActivationOut:
    if not body.force or not body.reason.strip():
        raise InvalidInputError(API_GATE_REFUSAL)
    activation = prompts.activate(
        tenant_id=admin.tenant_id,
        name=name,
        version=body.version,
        actor=admin.object_id,
        acceptance=Acceptance(gate=Gate.FORCED, summary={"via": "api", "gate": "not run"}, reason=body.reason),
    )
    return ActivationOut.of(activation)


@router.post("/{name}/rollback", summary="Return to the version active before the current activation")
def rollback_prompt(
    name: Name, admin: AdminPrincipal, prompts: Prompts, body: RollbackRequest | None = None
) -> ActivationOut:
    reason = body.reason if body is not None else ""
    return ActivationOut.of(
        prompts.rollback(tenant_id=admin.tenant_id, name=name, actor=admin.object_id, reason=reason)
    )
