"""Roles are checked in one dependency: a route that needs a role gets 403 problem+json without it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from acl.dev.idp import DevIdentityProvider
from acl.principal import Principal
from api.deps import AdminPrincipal, AuditorPrincipal, ReviewerPrincipal
from clearance.compose import Runtime, build_api
from tests.conftest import TENANT

OID = "a0000000-0000-4000-8000-00000000000a"


@pytest.fixture()
def client(runtime: Runtime) -> TestClient:
    app = build_api(runtime.settings, runtime=runtime)

    @app.get("/v1/test/admin")
    def admin_only(who: AdminPrincipal) -> dict[str, str]:
        return {"oid": who.object_id}

    @app.get("/v1/test/auditor")
    def auditor_only(who: AuditorPrincipal) -> dict[str, str]:
        return {"oid": who.object_id}

    @app.get("/v1/test/reviewer")
    def reviewer_only(who: ReviewerPrincipal) -> dict[str, str]:
        return {"oid": who.object_id}

    return TestClient(app)


def _as(idp: DevIdentityProvider, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {idp.mint(tenant_id=TENANT, object_id=OID, roles=list(roles))}"}


@pytest.mark.parametrize(
    ("route", "role"),
    [("admin", "Clearance.Admin"), ("auditor", "Clearance.Auditor"), ("reviewer", "Clearance.Reviewer")],
)
def test_each_role_admits_only_its_holders(client: TestClient, idp: DevIdentityProvider, route: str, role: str) -> None:
    others = [r for r in ("Clearance.Admin", "Clearance.Auditor", "Clearance.Reviewer") if r != role]
    refused = client.get(f"/v1/test/{route}", headers=_as(idp, *others))
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"/v1/test/{route}", headers=_as(idp, role)).json() == {"oid": OID}


def test_role_grants_no_read_access(runtime: Runtime) -> None:
    admin = Principal(tenant_id=TENANT, object_id=OID, roles=frozenset({"Clearance.Admin", "Clearance.Auditor"}))
    member = Principal(tenant_id=TENANT, object_id=OID)
    assert admin.access_keys() == member.access_keys()
