"""The audit through the real app, on SQLite and PostgreSQL: every answer chained, auditors only, own tenant only,
and no answer at all when its record cannot be written."""

from __future__ import annotations

import dataclasses
import json
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
from retrieval.answer import AnswerService
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.generation.openai_compatible import OpenAICompatibleGenerator
from retrieval.records import TokenEvent
from store.audit_log import AuditLog, SqlAuditSink
from store.audit_query import AuditQuery, AuditReader
from store.audit_verify import verify
from store.database import Database
from store.errors import StoreUnavailableError
from tests import store_fixtures
from tests.conftest import OTHER_TENANT, TENANT, write_acl, write_doc
from tests.store_fixtures import StoreTarget
from tests.test_api import assert_problem, auth
from tests.test_generators import READER, chat_stub  # noqa: F401  (fixture)
from tests.test_permissions import ALICE, FIN, GRACE, build_corpus

target = store_fixtures.target
AUDITOR = "c0000000-0000-4000-8000-0000000000a1"
OTHER_AUDITOR = "c0000000-0000-4000-8000-0000000000a2"
AUDITOR_ROLE = "Clearance.Auditor"


@pytest.fixture()
def audited(
    target: StoreTarget, settings: Settings, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> Iterator[Runtime]:
    """The whole runtime with its state store on the test's backend, over the permissions corpus."""
    store = StoreSettings(url=SecretStr(target.url), schema_name=target.schema)
    runtime = build_runtime(settings.model_copy(update={"store": store}), embedder=embedder)
    try:
        corpus = build_corpus(tmp_path / "corpus")
        runtime.pipeline.run(FilesystemSource(root=corpus, tenant_id=TENANT))
        yield runtime
    finally:
        runtime.close()


@pytest.fixture()
def client(audited: Runtime) -> TestClient:
    return TestClient(build_api(audited.settings, runtime=audited))


def as_auditor(idp: DevIdentityProvider, *, tenant: str = TENANT, oid: str = AUDITOR) -> dict[str, str]:
    return auth(idp, tenant=tenant, roles=(AUDITOR_ROLE,), oid=oid)


def records(client: TestClient, idp: DevIdentityProvider, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/audit/records", params=params, headers=as_auditor(idp))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["records"]
    return found


def test_every_answer_and_search_is_chained_with_what_it_used(
    client: TestClient, audited: Runtime, idp: DevIdentityProvider
) -> None:
    answered = client.post("/v1/chat", json={"question": "What was the Q3 revenue?"}, headers=auth(idp, FIN))
    assert answered.status_code == 200
    with client.stream("POST", "/v1/chat", json={"question": "Q3 revenue?", "stream": True}, headers=auth(idp)) as r:
        r.read()
    assert client.post("/v1/search", json={"query": "picnic"}, headers=auth(idp)).status_code == 200
    chat, streamed, search = (r for r in records(client, idp) if r["kind"] != "admin")
    assert chat["actor"] == ALICE and chat["outcome"] == "grounded" and chat["kind"] == "answer"
    assert f"group:{TENANT}/{FIN}" in chat["personal"]["principals"]
    assert chat["personal"]["question"] == "What was the Q3 revenue?"
    used = {ref["source"] for ref in chat["record"]["retrieved"]}
    assert "finance/q3.md" in used and set(chat["record"]["cited"]) <= set(chat["record"]["retrieved_ids"])
    assert chat["record"]["prompt"] == "grounded-answer/v1" and chat["record"]["generator"] == "extractive"
    assert {"embed", "retrieve", "generate"} <= set(chat["record"]["timings_ms"])
    assert streamed["record"]["streamed"] is True and streamed["outcome"] == "abstained"
    assert search["kind"] == "search" and search["personal"]["question"] == "picnic"
    assert audited.store is not None and verify(audited.store.database).ok


def test_which_answers_used_a_document_is_one_request(client: TestClient, idp: DevIdentityProvider) -> None:
    client.post("/v1/chat", json={"question": "What was the Q3 revenue?"}, headers=auth(idp, FIN))
    client.post("/v1/chat", json={"question": "When is the company picnic?"}, headers=auth(idp, oid=GRACE))
    response = client.get("/v1/audit/documents/answers", params={"document": "finance/q3.md"}, headers=as_auditor(idp))
    assert response.status_code == 200
    [used] = response.json()["records"]
    assert used["actor"] == ALICE and used["personal"]["question"] == "What was the Q3 revenue?"
    doc_id = next(ref["doc_id"] for ref in used["record"]["retrieved"] if ref["source"] == "finance/q3.md")
    by_id = client.get("/v1/audit/documents/answers", params={"document": doc_id}, headers=as_auditor(idp))
    assert [r["id"] for r in by_id.json()["records"]] == [used["id"]]


def test_auditors_filter_by_user_document_and_time(client: TestClient, idp: DevIdentityProvider) -> None:
    client.post("/v1/chat", json={"question": "What was the Q3 revenue?"}, headers=auth(idp, FIN))
    client.post("/v1/chat", json={"question": "When is the company picnic?"}, headers=auth(idp, oid=GRACE))
    everything = records(client, idp, kind="answer")
    assert [r["actor"] for r in everything] == [ALICE, GRACE]
    assert [r["actor"] for r in records(client, idp, user=GRACE.upper())] == [GRACE]
    assert [r["actor"] for r in records(client, idp, document="company/handbook.md", kind="answer")] == [GRACE]
    cut = everything[1]["at"]
    assert [r["actor"] for r in records(client, idp, since=cut, kind="answer")] == [GRACE]
    assert [r["actor"] for r in records(client, idp, until=cut, kind="answer")] == [ALICE]
    bad = client.get("/v1/audit/records", params={"user": "alice@example.com"}, headers=as_auditor(idp))
    assert_problem(bad, 422)


@pytest.mark.parametrize("route", ["/v1/audit/records", "/v1/audit/export", "/v1/audit/documents/answers?document=x"])
def test_only_auditors_read_the_audit(client: TestClient, idp: DevIdentityProvider, route: str) -> None:
    assert_problem(client.get(route), 401)
    assert_problem(client.get(route, headers=auth(idp, FIN)), 403)
    assert_problem(client.get(route, headers=auth(idp, roles=("Clearance.Admin", "Clearance.Reviewer"))), 403)
    assert client.get(route, headers=as_auditor(idp)).status_code == 200


def test_an_auditor_never_sees_another_tenants_records(client: TestClient, idp: DevIdentityProvider) -> None:
    client.post("/v1/chat", json={"question": "What was the Q3 revenue?"}, headers=auth(idp, FIN))
    stranger = "d0000000-0000-4000-8000-0000000000d1"
    client.post("/v1/chat", json={"question": "Any news?"}, headers=auth(idp, tenant=OTHER_TENANT, oid=stranger))
    theirs = as_auditor(idp, tenant=OTHER_TENANT, oid=OTHER_AUDITOR)
    exported = client.get("/v1/audit/export", headers=theirs).text
    assert ALICE not in exported and "Q3 revenue" not in exported and TENANT not in exported
    seen = client.get("/v1/audit/records", headers=theirs).json()["records"]
    assert {r["tenant_id"] for r in seen} == {OTHER_TENANT}
    assert [r["actor"] for r in seen if r["kind"] == "answer"] == [stranger]
    assert client.get("/v1/audit/records", params={"user": ALICE}, headers=theirs).json()["records"] == []
    used = client.get("/v1/audit/documents/answers", params={"document": "finance/q3.md"}, headers=theirs)
    assert used.json()["records"] == []


def test_export_is_json_lines_and_every_read_is_audited(client: TestClient, idp: DevIdentityProvider) -> None:
    client.post("/v1/chat", json={"question": "What was the Q3 revenue?"}, headers=auth(idp, FIN))
    exported = client.get("/v1/audit/export", params={"user": ALICE}, headers=as_auditor(idp))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert [line["actor"] for line in lines] == [ALICE] and lines[0]["hash"]
    # Admin records also hold the fixture's ingestion job (start and finish); reads of the audit are these:
    reads = [r for r in records(client, idp, kind="admin") if r["action"].startswith("audit.")]
    assert [(r["action"], r["actor"]) for r in reads] == [("audit.export", AUDITOR)]
    assert reads[0]["record"]["detail"]["filters"] == ["user"]
    assert reads[0]["personal"]["private"] == {"user": ALICE}  # whom the auditor looked up: erasable
    # The listing just made is itself recorded, after the records it returned.
    assert [r["action"] for r in records(client, idp, kind="admin")][-1] == "audit.read"


def _take_store_down(runtime: Runtime, backend: str) -> Runtime:
    """The store stops answering after start-up: SQLite's file is gone (a folder in its place); PostgreSQL's
    server is a port nobody listens on."""
    assert runtime.store is not None
    if backend == "sqlite":
        runtime.store.database.dispose()
        path = Path(runtime.store.database.engine.url.database or "")
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
        path.mkdir()
        return runtime
    dead = Database.open("postgresql+psycopg://postgres@127.0.0.1:1/test", connect_timeout_seconds=1)
    log = AuditLog(database=dead)
    answers = AnswerService(
        index=runtime.index,
        embedder=runtime.embedder,
        generator=ExtractiveGenerator(),
        fallback=ExtractiveGenerator(),
        audit=SqlAuditSink(log=log),
    )
    return dataclasses.replace(
        runtime, answers=answers, store=dataclasses.replace(runtime.store, audit=log, reader=AuditReader(database=dead))
    )


def test_the_store_down_gives_503_and_no_answer(
    audited: Runtime, target: StoreTarget, idp: DevIdentityProvider
) -> None:
    down = _take_store_down(audited, target.backend)
    client = TestClient(build_api(down.settings, runtime=down))
    question = {"question": "What was the Q3 revenue?"}
    for response in (
        client.post("/v1/chat", json=question, headers=auth(idp, FIN)),
        client.post("/v1/chat", json={**question, "stream": True}, headers=auth(idp, FIN)),
        client.post("/v1/search", json={"query": "Q3 revenue"}, headers=auth(idp, FIN)),
        client.get("/v1/audit/records", headers=as_auditor(idp)),
    ):
        body = assert_problem(response, 503)
        assert body["title"] == "State Store Unavailable"
        assert "12.4" not in response.text and "revenue" not in response.text.lower()
    assert_problem(client.post("/v1/chat", json=question), 401)  # authentication still comes first


def test_an_answer_whose_record_cannot_be_written_is_not_returned(audited: Runtime, target: StoreTarget) -> None:
    """Past the up-front check: the store fails while the answer is made, and the service raises."""
    down = _take_store_down(audited, target.backend)
    fin_reader = dataclasses.replace(READER, groups=frozenset({FIN}))
    with pytest.raises(StoreUnavailableError):
        down.answers.answer(fin_reader, "What was the Q3 revenue?")


def test_an_abandoned_stream_is_audited(
    audited: Runtime,
    chat_stub: tuple[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    docs = tmp_path / "travel"
    write_doc(docs, "travel.md", "# Travel\n\nThe meal per diem in Berlin is 55.50 EUR per day. Hotels cap at 160 EUR.")
    write_acl(docs, allow=[f"group:{next(iter(READER.groups))}"])
    audited.pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT))
    url, stub = chat_stub
    stub.reply = "The meal per diem in Berlin is 55.50 EUR per day [1]. Hotels cap at 160 EUR [1]."
    assert audited.store is not None
    service = AnswerService(
        index=audited.index,
        embedder=audited.embedder,
        generator=OpenAICompatibleGenerator(base_url=url, api_key="test", model="stub-model", timeout_seconds=5),
        fallback=ExtractiveGenerator(),
        top_k=3,
        audit=audited.store.audit_sink,
    )
    events = service.stream(READER, "What is the meal per diem in Berlin?")
    assert isinstance(next(events), TokenEvent)
    events.close()  # what the API does when the client disconnects
    [record] = audited.store.reader.page(AuditQuery(tenant_id=TENANT, user=READER.object_id))
    assert record.outcome == "abandoned" and record.record["streamed"] is True
    assert record.record["retrieved"] and record.record["model"] == "stub-model"
    assert verify(audited.store.database).ok


def test_an_ingestion_job_request_names_the_admin_who_asked(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from clearance.compose import build_api, build_runtime
    from clearance.settings import IndexSettings, IngestSettings, Mode, Settings
    from store.audit_log import RecordKind
    from store.audit_query import AuditQuery
    from tests.conftest import TENANT, write_acl, write_doc, write_users

    corpus = tmp_path / "corpus"
    write_doc(corpus, "a.md", "# A\n\nAlpha text.")
    write_acl(corpus, allow=["tenant"])
    settings = Settings(
        data_dir=tmp_path / "data",
        users_file=write_users(tmp_path / "users.json"),
        index=IndexSettings(location=":memory:"),
        mode=Mode.DEVELOPMENT,
        ingest=IngestSettings(allowed_roots={TENANT: [corpus]}, isolate_parsing=False),
    )
    runtime = build_runtime(settings)
    try:
        assert runtime.dev is not None
        admin = "a0000000-0000-4000-8000-000000000001"
        token = runtime.dev.idp.mint(tenant_id=TENANT, object_id=admin, roles=["Clearance.Admin"])
        reply = TestClient(build_api(settings, runtime=runtime)).post(
            "/v1/ingest/jobs", json={"path": str(corpus)}, headers={"Authorization": f"Bearer {token}"}
        )
        assert reply.status_code == 202, reply.text
        runtime.ingestion.wait_idle()
        assert runtime.store is not None
        records = runtime.store.reader.page(AuditQuery(tenant_id=TENANT, kinds=(RecordKind.ADMIN,)))
        requested = [r for r in records if r.action == "ingest.job.request"]
        assert len(requested) == 1 and requested[0].actor == admin
    finally:
        runtime.close()
