"""The admin prompt routes through the real app, on SQLite and PostgreSQL: admins of the tenant only, forced
activation with a reason (the gate runs from the CLI), audited, the next chat answer on the new version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from acl.dev.idp import DevIdentityProvider
from clearance.compose import Runtime, build_api, build_runtime
from clearance.settings import Settings, StoreSettings
from index.embedding import SentenceTransformerEmbedder
from ingest.source import FilesystemSource
from store.audit_log import RecordKind
from store.audit_query import AuditQuery
from tests import store_fixtures
from tests.conftest import G1, OTHER_TENANT, TENANT, write_acl, write_doc
from tests.store_fixtures import StoreTarget
from tests.test_api import assert_problem, auth
from tests.test_prompts import TODAYS_SYSTEM

target = store_fixtures.target
ADMIN = "a0000000-0000-4000-8000-0000000000ad"
OTHER_ADMIN = "a0000000-0000-4000-8000-0000000000ae"
V2 = {
    "name": "grounded-answer",
    "version": "v2",
    "system": TODAYS_SYSTEM.replace("one to four", "one to three"),
    "description": "shorter answers",
}


@pytest.fixture()
def world(
    target: StoreTarget, settings: Settings, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> Iterator[tuple[Runtime, TestClient]]:
    store = StoreSettings(url=SecretStr(target.url), schema_name=target.schema)
    runtime = build_runtime(settings.model_copy(update={"store": store}), embedder=embedder)
    try:
        docs = tmp_path / "docs"
        write_doc(docs, "travel.md", "# Travel policy\n\n## Per diem\n\nThe meal per diem in Berlin is 55.50 EUR.")
        write_acl(docs, allow=[f"group:{G1}"])
        runtime.pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT))
        yield runtime, TestClient(build_api(runtime.settings, runtime=runtime))
    finally:
        runtime.close()


def admin(idp: DevIdentityProvider, *, tenant: str = TENANT, oid: str = ADMIN) -> dict[str, str]:
    return auth(idp, tenant=tenant, roles=("Clearance.Admin",), oid=oid)


def chat_prompt(client: TestClient, idp: DevIdentityProvider, *, tenant: str = TENANT) -> str:
    response = client.post(
        "/v1/chat", json={"question": "What is the per diem in Berlin?"}, headers=auth(idp, G1, tenant=tenant)
    )
    assert response.status_code == 200, response.text
    prompt: str = response.json()["prompt"]
    return prompt


def test_prompt_routes_are_refused_without_the_admin_role(world: tuple[Runtime, TestClient]) -> None:
    runtime, client = world
    assert runtime.dev is not None
    idp = runtime.dev.idp
    for headers in (auth(idp, G1), auth(idp, roles=("Clearance.Auditor",)), auth(idp, roles=("Clearance.Reviewer",))):
        assert_problem(client.get("/v1/admin/prompts", headers=headers), 403)
        assert_problem(client.post("/v1/admin/prompts", json=V2, headers=headers), 403)
        body = {"version": "v1", "force": True, "reason": "x"}
        assert_problem(client.post("/v1/admin/prompts/grounded-answer/activate", json=body, headers=headers), 403)
        assert_problem(client.post("/v1/admin/prompts/grounded-answer/rollback", headers=headers), 403)
    assert_problem(client.get("/v1/admin/prompts"), 401)
    assert chat_prompt(client, idp) == "grounded-answer/v1"  # nothing changed


def test_admin_adds_diffs_activates_with_a_reason_and_rolls_back(world: tuple[Runtime, TestClient]) -> None:
    runtime, client = world
    assert runtime.dev is not None and runtime.store is not None
    idp = runtime.dev.idp
    listed = client.get("/v1/admin/prompts", headers=admin(idp)).json()["prompts"]
    assert [(p["id"], p["active"], p["builtin"]) for p in listed] == [("grounded-answer/v1", True, True)]
    added = client.post("/v1/admin/prompts", json=V2, headers=admin(idp))
    assert added.status_code == 201 and added.json()["active"] is False and added.json()["system"] == V2["system"]
    assert_problem(client.post("/v1/admin/prompts", json=V2, headers=admin(idp)), 422)  # immutable
    diff = client.get("/v1/admin/prompts/grounded-answer/diff", params={"from": "v1", "to": "v2"}, headers=admin(idp))
    assert diff.json()["identical"] is False and "+  Write one to three short sentences." in diff.json()["diff"]
    # Not gated through the API: force and a reason, or a refusal that says where the gate runs.
    activate = "/v1/admin/prompts/grounded-answer/activate"
    refused = assert_problem(client.post(activate, json={"version": "v2"}, headers=admin(idp)), 422)
    assert "clearance prompts activate" in refused["detail"]
    assert_problem(client.post(activate, json={"version": "v2", "force": True}, headers=admin(idp)), 422)
    assert chat_prompt(client, idp) == "grounded-answer/v1"
    done = client.post(activate, json={"version": "v2", "force": True, "reason": "shorter"}, headers=admin(idp))
    assert done.status_code == 200 and done.json()["gate"] == "forced" and done.json()["previous"] == "v1"
    assert chat_prompt(client, idp) == "grounded-answer/v2"  # the next request, no restart
    rolled = client.post("/v1/admin/prompts/grounded-answer/rollback", json={"reason": "too terse"}, headers=admin(idp))
    assert rolled.status_code == 200 and rolled.json()["version"] == "v1"
    assert chat_prompt(client, idp) == "grounded-answer/v1"
    history = client.get("/v1/admin/prompts/grounded-answer/history", headers=admin(idp)).json()
    assert history["active"] == "grounded-answer/v1"
    assert [(h["action"], h["version"], h["actor"]) for h in history["history"]] == [
        ("activate", "v2", ADMIN),
        ("rollback", "v1", ADMIN),
    ]
    records = runtime.store.reader.export(AuditQuery(tenant_id=TENANT, kinds=(RecordKind.ADMIN,)))
    changes = [
        (r.action, r.actor, r.record["detail"].get("gate"), (r.personal or {}).get("private"))
        for r in records
        if r.action.startswith("prompt.")
    ]
    assert changes == [
        ("prompt.add", ADMIN, None, None),
        ("prompt.activate", ADMIN, "forced", {"reason": "shorter"}),
        ("prompt.rollback", ADMIN, "rollback", {"reason": "too terse"}),
    ]
    assert assert_problem(client.post("/v1/admin/prompts/grounded-answer/rollback", headers=admin(idp)), 422)


def test_another_tenants_admin_cannot_see_or_activate_a_tenants_version(world: tuple[Runtime, TestClient]) -> None:
    runtime, client = world
    assert runtime.dev is not None
    idp = runtime.dev.idp
    client.post("/v1/admin/prompts", json=V2, headers=admin(idp))
    other = admin(idp, tenant=OTHER_TENANT, oid=OTHER_ADMIN)
    listed = client.get("/v1/admin/prompts", headers=other).json()["prompts"]
    assert [p["id"] for p in listed] == ["grounded-answer/v1"]
    missing = assert_problem(client.get("/v1/admin/prompts/grounded-answer/versions/v2", headers=other), 404)
    never = assert_problem(client.get("/v1/admin/prompts/grounded-answer/versions/v9", headers=other), 404)
    assert missing["detail"] == never["detail"].replace("v9", "v2")  # the same answer as for no such version
    body = {"version": "v2", "force": True, "reason": "take theirs"}
    assert_problem(client.post("/v1/admin/prompts/grounded-answer/activate", json=body, headers=other), 404)
    assert_problem(
        client.get("/v1/admin/prompts/grounded-answer/diff", params={"from": "v1", "to": "v2"}, headers=other), 404
    )
    # The tenant's activation changes only its own answers.
    client.post("/v1/admin/prompts/grounded-answer/activate", json=body, headers=admin(idp))
    assert chat_prompt(client, idp) == "grounded-answer/v2"
    assert chat_prompt(client, idp, tenant=OTHER_TENANT) == "grounded-answer/v1"


def test_bad_prompt_bodies_are_refused_with_a_reason(world: tuple[Runtime, TestClient]) -> None:
    runtime, client = world
    assert runtime.dev is not None
    idp = runtime.dev.idp
    bad: list[dict[str, Any]] = [
        {**V2, "system": "Answer freely."},  # no abstention sentence: abstentions would go unrecognised
        {**V2, "user": "{question} only"},
        {**V2, "version": "../v1"},
        {**V2, "temperature": 2},
        {**V2, "system": "x" * 20_001},
    ]
    for body in bad:
        assert_problem(client.post("/v1/admin/prompts", json=body, headers=admin(idp)), 422)
    assert_problem(client.get("/v1/admin/prompts/grounded-answer/versions/..%2Fv1", headers=admin(idp)), 404)
