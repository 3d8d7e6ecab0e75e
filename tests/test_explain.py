"""Explain access, written as rules: why a user can or cannot see a document, told to that tenant's admins only.

Real components throughout: the permission corpus of ``tests/test_permissions.py`` ingested with
the real pipeline, embedder and in-memory Qdrant, the development directory for users and names,
and tokens from the development identity provider for the HTTP routes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from acl.dev.idp import DevIdentityProvider
from acl.principal import Principal, group_key, tenant_key, user_key
from api.app import create_app
from api.deps import ApiComponents
from api.routes.explain import router
from clearance.compose import Runtime, allowed_roots, build_api
from clearance.settings import IndexSettings, IngestSettings, Mode, Settings
from core.errors import InvalidInputError, NotFoundError
from ingest.acl_decision import Effect, Granted, Nobody, NobodyCause
from ingest.explain import NO_MATCH, NOT_INDEXED, DevDirectoryAccess, ExplainAccess, describe
from ingest.jobs import JobStatus
from ingest.source import FilesystemSource
from tests.conftest import OTHER_TENANT, TENANT, write_acl, write_doc
from tests.test_permissions import ALICE, ATLAS, DENIED, ENG, FIN, GRACE, GUEST, LEAD, LEADS, build_corpus

ADMIN = "a0000000-0000-4000-8000-000000000001"
OTHER_ADMIN = "a0000000-0000-4000-8000-0000000000f1"
ERIN = "b0000000-0000-4000-8000-0000000000e1"
OTHER_GROUP = "e9000000-0000-4000-8000-000000000009"
ADMIN_ROLE = ("Clearance.Admin",)


def _user(
    name: str, oid: str, *groups: str, tenant: str = TENANT, admin: bool = False, guest: bool = False
) -> dict[str, Any]:
    return {
        "name": name.split()[0].lower(),
        "display_name": name,
        "tenant": tenant,
        "oid": oid,
        "groups": list(groups),
        "roles": list(ADMIN_ROLE) if admin else [],
        "guest": guest,
    }


def write_directory(path: Path) -> Path:
    """Two tenants with named groups and users, so that display names and user lookups can be checked."""
    directory = {
        "tenants": [
            {"id": TENANT, "name": "Test Tenant", "domain": "test.example"},
            {"id": OTHER_TENANT, "name": "Other Tenant", "domain": "other.example"},
        ],
        "groups": [
            {"id": FIN, "tenant": TENANT, "name": "finance"},
            {"id": ENG, "tenant": TENANT, "name": "engineering"},
            {"id": LEADS, "tenant": TENANT, "name": "eng-leads"},
            {"id": ATLAS, "tenant": TENANT, "name": "atlas"},
            {"id": OTHER_GROUP, "tenant": OTHER_TENANT, "name": "northwind-sales"},
        ],
        "users": [
            _user("Ada Admin", ADMIN, admin=True),
            _user("Alice Chen", ALICE, FIN),
            _user("Grace Hopper", GRACE, FIN),
            _user("Dana Denied", DENIED, FIN),
            _user("Lee Lead", LEAD, LEADS, ENG),
            _user("Gus Guest", GUEST, ATLAS, guest=True),
            _user("Otto Other", OTHER_ADMIN, tenant=OTHER_TENANT, admin=True),
            _user("Erin Other", ERIN, OTHER_GROUP, tenant=OTHER_TENANT),
        ],
    }
    path.write_text(json.dumps(directory), encoding="utf-8")
    return path


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """conftest's settings with a richer directory and a second tenant's root."""
    return Settings(
        data_dir=tmp_path / "data",
        users_file=write_directory(tmp_path / "users.json"),
        index=IndexSettings(location=":memory:"),
        mode=Mode.DEVELOPMENT,
        ingest=IngestSettings(
            allowed_roots={TENANT: [tmp_path / "corpus"], OTHER_TENANT: [tmp_path / "other"]}, isolate_parsing=False
        ),
    )


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    return build_corpus(tmp_path / "corpus")


def ingest(runtime: Runtime, root: Path, tenant: str = TENANT) -> None:
    job = runtime.pipeline.run(FilesystemSource(root=root, tenant_id=tenant))
    assert job.status is not JobStatus.FAILED, job.failure


@pytest.fixture()
def ingested(runtime: Runtime, corpus: Path, tmp_path: Path) -> Runtime:
    ingest(runtime, corpus)
    other = tmp_path / "other"
    write_doc(other, "news/update.md", "# Update\n\nNorthwind opens an office in Lisbon.")
    write_acl(other, allow=["tenant"])
    ingest(runtime, other, OTHER_TENANT)
    return runtime


@pytest.fixture()
def directory(runtime: Runtime) -> DevDirectoryAccess:
    assert runtime.dev is not None
    return DevDirectoryAccess(runtime.dev.directory)


@pytest.fixture()
def service(runtime: Runtime, directory: DevDirectoryAccess) -> ExplainAccess:
    return ExplainAccess(
        index=runtime.index,
        allowed_roots=allowed_roots(runtime.settings),
        directory=directory,
        users=directory.principal,
    )


def as_user(oid: str) -> tuple[Principal, dict[str, str]]:
    """A principal as a token would carry it, with each key's origin as a caller would pass it."""
    groups = {ALICE: (FIN,), GRACE: (FIN,), DENIED: (FIN,), LEAD: (LEADS, ENG)}.get(oid, ())
    principal = Principal(tenant_id=TENANT, object_id=oid, groups=frozenset(groups))
    return principal, {key: "token" for key in principal.access_keys()}


def explain_as(service: ExplainAccess, oid: str, document: str) -> Any:
    principal, origins = as_user(oid)
    return service.explain(tenant_id=TENANT, user=principal, document_path=document, key_origins=origins)


# -- can this user see this document, and why ------------------------------------------------------


def test_member_of_an_allowed_group_can_see_and_that_allow_entry_decides(
    ingested: Runtime, service: ExplainAccess
) -> None:
    explanation = explain_as(service, ALICE, "finance/q3.md")
    assert explanation.can_see and explanation.now.decided_by == f"allow:{group_key(TENANT, FIN)}"
    assert explanation.after_next_ingestion == explanation.now and not explanation.access.stale
    [fin] = explanation.access.manifests.allow
    assert (fin.key, fin.manifests, fin.display_name) == (group_key(TENANT, FIN), ("finance/.acl.json",), "finance")
    assert {(k.key, k.origin) for k in explanation.user.keys} == {
        (user_key(TENANT, ALICE), "token"),
        (group_key(TENANT, FIN), "token"),
        (tenant_key(TENANT), "token"),
    }


def test_deny_beats_allow_and_the_deny_entry_decides_with_its_manifest(
    ingested: Runtime, service: ExplainAccess
) -> None:
    explanation = explain_as(service, GRACE, "finance/board.md")
    assert not explanation.can_see
    assert explanation.now.decided_by == f"deny:{user_key(TENANT, GRACE)}"
    assert explanation.now.matched_allow == (group_key(TENANT, FIN),)  # allowed by the group, denied by name
    deny = {entry.key: entry.manifests for entry in explanation.access.manifests.deny}
    assert deny == {
        user_key(TENANT, GRACE): ("finance/board.md.acl.json",),
        user_key(TENANT, DENIED): ("finance/.acl.json",),
    }


def test_user_holding_no_entry_is_no_match(ingested: Runtime, service: ExplainAccess) -> None:
    explanation = explain_as(service, LEAD, "finance/q3.md")
    assert not explanation.can_see and explanation.now.decided_by == NO_MATCH


def test_inherit_chain_lists_both_manifests_root_first_and_each_entry_its_own(
    ingested: Runtime, service: ExplainAccess
) -> None:
    decision = explain_as(service, GRACE, "finance/board.md").access.decision
    assert isinstance(decision, Granted)
    assert decision.origins.chain == ("finance/.acl.json", "finance/board.md.acl.json")
    launch = explain_as(service, LEAD, "eng/launch.md")
    assert launch.can_see and launch.now.decided_by == f"allow:{group_key(TENANT, ENG)}"
    assert {e.key: e.manifests for e in launch.access.manifests.allow} == {
        group_key(TENANT, ENG): ("eng/.acl.json",),
        group_key(TENANT, ATLAS): ("eng/launch.md.acl.json",),
    }


def test_manifest_that_does_not_inherit_replaces_and_names_what_it_replaced(
    ingested: Runtime, service: ExplainAccess
) -> None:
    decision = explain_as(service, LEAD, "eng/leads/calibration.md").access.decision
    assert isinstance(decision, Granted)
    assert decision.origins.chain == ("eng/leads/.acl.json",) and decision.origins.replaced == ("eng/.acl.json",)


def test_document_without_any_manifest_is_visible_to_nobody_and_names_where_one_may_go(
    ingested: Runtime, service: ExplainAccess
) -> None:
    explanation = explain_as(service, ALICE, "drafts/secret.md")
    decision = explanation.access.decision
    assert isinstance(decision, Nobody) and decision.cause is NobodyCause.NO_MANIFEST
    assert explanation.access.looked_for == (".acl.json", "drafts/.acl.json", "drafts/secret.md.acl.json")
    # Stored with an empty ACL, as the next ingestion would store it again: nothing matches, nothing is stale.
    assert not explanation.can_see and explanation.now.decided_by == NO_MATCH and not explanation.access.stale


def test_broken_manifest_names_its_file_and_why_and_the_stored_acl_is_stale_until_ingested(
    ingested: Runtime, service: ExplainAccess, corpus: Path
) -> None:
    (corpus / "finance" / ".acl.json").write_text("{not json", encoding="utf-8")
    explanation = explain_as(service, ALICE, "finance/q3.md")
    decision = explanation.access.decision
    assert isinstance(decision, Nobody) and decision.cause is NobodyCause.MANIFEST_ERROR
    [problem] = decision.problems
    assert problem.source == "finance/.acl.json" and "not valid JSON" in problem.reason
    assert explanation.can_see and explanation.access.stale  # the index still holds the old ACL
    assert explanation.after_next_ingestion.decided_by == NOT_INDEXED
    ingest(ingested, corpus)
    after = explain_as(service, ALICE, "finance/q3.md")
    assert not after.can_see and after.now.decided_by == NOT_INDEXED and not after.access.stale


def test_broken_folder_manifest_is_named_even_below_a_valid_sidecar(
    ingested: Runtime, service: ExplainAccess, corpus: Path
) -> None:
    (corpus / "finance" / ".acl.json").write_text('{"allow": [], "allow": []}', encoding="utf-8")
    decision = explain_as(service, GRACE, "finance/board.md").access.decision
    assert isinstance(decision, Nobody)
    assert [(p.source, "duplicate key" in p.reason) for p in decision.problems] == [("finance/.acl.json", True)]


def test_symbolic_link_is_visible_to_nobody_even_to_readers_of_its_target(
    runtime: Runtime, service: ExplainAccess, corpus: Path
) -> None:
    os.symlink("../finance/q3.md", corpus / "company" / "q3-link.md")
    ingest(runtime, corpus)
    explanation = explain_as(service, ALICE, "company/q3-link.md")
    decision = explanation.access.decision
    assert isinstance(decision, Nobody) and decision.cause is NobodyCause.SYMLINK
    assert explanation.access.stored is None and explanation.now.decided_by == NOT_INDEXED


def test_near_miss_sidecar_hides_its_file_and_names_the_look_alike(
    ingested: Runtime, service: ExplainAccess, corpus: Path
) -> None:
    (corpus / "company" / "HANDBOOK.md.acl.json").write_text('{"allow": ["tenant"]}', encoding="utf-8")
    explanation = explain_as(service, ALICE, "company/handbook.md")
    decision = explanation.access.decision
    assert isinstance(decision, Nobody) and decision.cause is NobodyCause.MANIFEST_ERROR
    assert [p.source for p in decision.problems] == ["company/HANDBOOK.md.acl.json"]
    assert explanation.access.stale and explanation.can_see and not explanation.after_next_ingestion.can_see


def test_narrowed_manifest_makes_the_stored_acl_stale_until_the_next_ingestion(
    ingested: Runtime, service: ExplainAccess, corpus: Path
) -> None:
    write_acl(corpus / "finance", allow=[f"group:{ENG}"])
    explanation = explain_as(service, ALICE, "finance/q3.md")
    assert explanation.access.stale and explanation.can_see  # what search enforces today
    assert explanation.after_next_ingestion.decided_by == NO_MATCH
    ingest(ingested, corpus)
    after = explain_as(service, ALICE, "finance/q3.md")
    assert not after.access.stale and not after.can_see and after.now == after.after_next_ingestion


def test_deleted_file_still_in_the_index_is_explained_as_gone_and_stale(
    ingested: Runtime, service: ExplainAccess, corpus: Path
) -> None:
    (corpus / "finance" / "q3.md").unlink()
    explanation = explain_as(service, ALICE, "finance/q3.md")
    assert explanation.access.decision is None and explanation.access.stale and explanation.can_see
    ingest(ingested, corpus)
    with pytest.raises(NotFoundError):
        explain_as(service, ALICE, "finance/q3.md")


def test_origins_account_for_exactly_the_entries_of_every_decision(ingested: Runtime, corpus: Path) -> None:
    for item in FilesystemSource(root=corpus, tenant_id=TENANT).items():
        if isinstance(item.decision, Granted):
            origins, acl = item.decision.origins, item.decision.acl
            assert {e.key for e in origins.entries if e.effect is Effect.ALLOW} == acl.allow, item.path
            assert {e.key for e in origins.entries if e.effect is Effect.DENY} == acl.deny, item.path
            assert all(e.manifests and set(e.manifests) <= set(origins.chain) for e in origins.entries), item.path


def test_absolute_path_under_a_root_names_the_same_document(
    ingested: Runtime, service: ExplainAccess, corpus: Path
) -> None:
    relative = explain_as(service, ALICE, "finance/q3.md")
    absolute = explain_as(service, ALICE, str(corpus / "finance" / "q3.md"))
    assert absolute == relative and absolute.access.document == "finance/q3.md"


def test_path_outside_the_tenants_roots_is_not_found_whether_it_exists_or_not(
    ingested: Runtime, service: ExplainAccess, corpus: Path, tmp_path: Path
) -> None:
    (corpus / "escape").symlink_to(tmp_path / "other", target_is_directory=True)
    outside = [
        "../other/news/update.md",  # exists, in another tenant's root
        "escape/news/update.md",  # the same, through a folder link inside this tenant's root
        str(tmp_path / "other" / "news" / "update.md"),
        "finance/../../other/news/update.md",
        str(tmp_path / "users.json"),  # exists, in no root
        "/etc/passwd",
        "finance/nothing-here.md",
        "finance",  # a folder is not a document
        "finance/.acl.json",  # nor is a manifest
        "finance/" + "x" * 300 + "/q3.md",  # a name the OS refuses
        "finance/\udcff.md",  # a name that is not UTF-8
        "",
    ]
    messages = set()
    for path in outside:
        with pytest.raises(NotFoundError) as caught:
            service.who_can_see(tenant_id=TENANT, document_path=path)
        messages.add(str(caught.value))
    assert len(messages) == 1  # one answer for all: nothing can be probed


def test_user_of_another_tenant_does_not_exist_for_this_tenants_admin(
    ingested: Runtime, service: ExplainAccess
) -> None:
    outsider = Principal(tenant_id=OTHER_TENANT, object_id=ERIN)
    with pytest.raises(NotFoundError):
        service.explain(tenant_id=TENANT, user=outsider, document_path="company/handbook.md")
    with pytest.raises(NotFoundError):
        service.explain_user(tenant_id=TENANT, object_id=ERIN, document_path="company/handbook.md")
    with pytest.raises(NotFoundError):
        service.what_user_can_see(tenant_id=TENANT, object_id=ERIN)
    with pytest.raises(InvalidInputError):
        service.explain_user(tenant_id=TENANT, object_id="alice", document_path="company/handbook.md")


def test_user_given_by_object_id_gets_groups_and_guest_status_from_the_directory(
    ingested: Runtime, service: ExplainAccess
) -> None:
    explanation = service.explain_user(tenant_id=TENANT, object_id=GUEST.upper(), document_path="eng/launch.md")
    assert explanation.can_see and explanation.now.decided_by == f"allow:{group_key(TENANT, ATLAS)}"
    assert explanation.user.guest and tenant_key(TENANT) not in {k.key for k in explanation.user.keys}
    assert {k.origin for k in explanation.user.keys} == {"directory"}


# -- who can see this document -----------------------------------------------------------------------


def test_who_can_see_lists_allow_and_deny_entries_with_display_names_and_origins(
    ingested: Runtime, service: ExplainAccess
) -> None:
    audience = service.who_can_see(tenant_id=TENANT, document_path="finance/board.md")
    assert [(e.kind, e.object_id, e.display_name) for e in audience.manifests.allow] == [("group", FIN, "finance")]
    assert {(e.display_name, e.manifests) for e in audience.manifests.deny} == {
        ("Grace Hopper", ("finance/board.md.acl.json",)),
        ("Dana Denied", ("finance/.acl.json",)),
    }
    assert audience.stored is not None and audience.stored.allow == tuple(
        dataclasses.replace(entry, manifests=()) for entry in audience.manifests.allow
    )
    handbook = service.who_can_see(tenant_id=TENANT, document_path="company/handbook.md")
    assert [(e.kind, e.display_name) for e in handbook.manifests.allow] == [("tenant", "Test Tenant")]


def test_names_of_another_tenants_principals_are_never_shown(
    ingested: Runtime, service: ExplainAccess, corpus: Path
) -> None:
    # A manifest may name any GUID; the directory knows this one only as another tenant's group.
    write_acl(corpus / "company", allow=["tenant", f"group:{OTHER_GROUP}", f"user:{ERIN}"])
    audience = service.who_can_see(tenant_id=TENANT, document_path="company/handbook.md")
    names = {e.object_id: e.display_name for e in audience.manifests.allow}
    assert names == {TENANT: "Test Tenant", OTHER_GROUP: None, ERIN: None}


# -- what can this user see --------------------------------------------------------------------------


def test_what_can_see_pages_through_exactly_the_documents_the_user_may_read(
    ingested: Runtime, service: ExplainAccess
) -> None:
    first = service.what_user_can_see(tenant_id=TENANT, object_id=ALICE, offset=0, limit=2)
    second = service.what_user_can_see(tenant_id=TENANT, object_id=ALICE, offset=2, limit=2)
    assert [d.path for d in first.documents] == ["company/handbook.md", "finance/board.md"]
    assert first.next_offset == 2
    assert [d.path for d in second.documents] == ["finance/q3.md"] and second.next_offset is None
    assert second.documents[0].decided_by == f"allow:{group_key(TENANT, FIN)}"
    denied = service.what_user_can_see(tenant_id=TENANT, object_id=GRACE, limit=10)
    assert [d.path for d in denied.documents] == ["company/handbook.md", "finance/q3.md"]


def test_what_can_see_never_lists_another_tenants_documents(ingested: Runtime, service: ExplainAccess) -> None:
    theirs = service.what_user_can_see(tenant_id=OTHER_TENANT, object_id=ERIN, limit=100)
    assert [(d.source, d.path) for d in theirs.documents] == [("other", "news/update.md")]
    ours = service.what_user_can_see(tenant_id=TENANT, object_id=LEAD, limit=100)
    assert "news/update.md" not in {d.path for d in ours.documents}


def test_description_for_the_cli_names_the_deciding_entry_and_the_manifests(
    ingested: Runtime, service: ExplainAccess
) -> None:
    text = "\n".join(describe(explain_as(service, GRACE, "finance/board.md")))
    assert f"CANNOT see it now (deny:{user_key(TENANT, GRACE)})" in text
    assert "finance/.acl.json -> finance/board.md.acl.json" in text and "(Grace Hopper)" in text


# -- the HTTP routes -----------------------------------------------------------------------------------


class _WithExplain:
    """ApiComponents plus the explain capability, for as long as ApiComponents has no such field."""

    def __init__(self, components: ApiComponents, explain: ExplainAccess) -> None:
        self._components = components
        self.explain = explain

    def __getattr__(self, name: str) -> Any:
        return getattr(self._components, name)


def explain_app(runtime: Runtime, service: ExplainAccess) -> FastAPI:
    """The app as the composition root builds it once it wires explain access; until then, mounted by hand."""
    components = runtime.api_components()
    if getattr(components, "explain", None) is not None:
        app = build_api(runtime.settings, runtime=runtime)
    elif "explain" in {field.name for field in dataclasses.fields(components)}:
        wired: dict[str, Any] = {"explain": service}
        app = create_app(dataclasses.replace(components, **wired))
    else:
        app = create_app(components)
        app.state.components = _WithExplain(components, service)
    if not any(getattr(route, "path", "").startswith(router.prefix) for route in app.routes):
        app.include_router(router)
    return app


@pytest.fixture()
def client(ingested: Runtime, service: ExplainAccess) -> TestClient:
    return TestClient(explain_app(ingested, service))


def admin_of(idp: DevIdentityProvider, tenant: str = TENANT) -> dict[str, str]:
    oid = ADMIN if tenant == TENANT else OTHER_ADMIN
    return {"Authorization": f"Bearer {idp.mint(tenant_id=tenant, object_id=oid, roles=ADMIN_ROLE)}"}


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def test_admin_explains_through_the_api_with_origins_and_the_deciding_entry(
    client: TestClient, idp: DevIdentityProvider
) -> None:
    response = client.get(
        "/v1/admin/access/explain", params={"user": GRACE, "document": "finance/board.md"}, headers=admin_of(idp)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["can_see"] is False and body["decided_by"] == f"deny:{user_key(TENANT, GRACE)}"
    assert body["manifests"]["status"] == "granted"
    assert body["manifests"]["chain"] == ["finance/.acl.json", "finance/board.md.acl.json"]
    assert body["index"] == {**body["index"], "indexed": True, "stale": False}
    assert {k["origin"] for k in body["user"]["keys"]} == {"directory"}


def test_admin_sees_a_broken_manifest_through_the_api(
    client: TestClient, idp: DevIdentityProvider, corpus: Path
) -> None:
    (corpus / "finance" / ".acl.json").write_text("[]", encoding="utf-8")
    body = client.get("/v1/admin/access/document", params={"document": "finance/q3.md"}, headers=admin_of(idp)).json()
    assert body["manifests"]["status"] == "nobody" and body["manifests"]["cause"] == "manifest_error"
    assert body["manifests"]["problems"][0]["file"] == "finance/.acl.json"
    assert body["index"]["stale"] is True


def test_who_can_see_and_what_can_see_through_the_api(client: TestClient, idp: DevIdentityProvider) -> None:
    who = client.get("/v1/admin/access/document", params={"document": "finance/q3.md"}, headers=admin_of(idp))
    assert who.status_code == 200, who.text
    assert [(e["display_name"], e["manifests"]) for e in who.json()["manifests"]["allow"]] == [
        ("finance", ["finance/.acl.json"])
    ]
    page = client.get("/v1/admin/access/user", params={"user": ALICE, "limit": 2}, headers=admin_of(idp)).json()
    assert [d["path"] for d in page["documents"]] == ["company/handbook.md", "finance/board.md"]
    assert page["next_offset"] == 2


def test_admin_of_another_tenant_gets_404_for_this_tenants_documents_and_users(
    client: TestClient, idp: DevIdentityProvider, corpus: Path
) -> None:
    other = admin_of(idp, OTHER_TENANT)
    details = set()
    for document in ("finance/q3.md", str(corpus / "finance" / "q3.md"), "finance/no-such-file.md"):
        response = client.get("/v1/admin/access/document", params={"document": document}, headers=other)
        details.add(problem_of(response, 404).get("detail"))
    assert len(details) == 1  # an existing document of another tenant reads exactly like a missing one
    problem_of(client.get("/v1/admin/access/user", params={"user": ALICE}, headers=other), 404)
    explain = {"user": ALICE, "document": "news/update.md"}
    problem_of(client.get("/v1/admin/access/explain", params=explain, headers=other), 404)
    own = client.get("/v1/admin/access/user", params={"user": ERIN}, headers=other).json()
    assert [d["path"] for d in own["documents"]] == ["news/update.md"]


def test_non_admin_gets_403_on_every_explain_route(client: TestClient, idp: DevIdentityProvider) -> None:
    member = {"Authorization": f"Bearer {idp.mint(tenant_id=TENANT, object_id=ALICE, groups=[FIN])}"}
    for path, params in (
        ("/v1/admin/access/explain", {"user": ALICE, "document": "finance/q3.md"}),
        ("/v1/admin/access/document", {"document": "finance/q3.md"}),
        ("/v1/admin/access/user", {"user": ALICE}),
    ):
        problem_of(client.get(path, params=params, headers=member), 403)
        problem_of(client.get(path, params=params), 401)
