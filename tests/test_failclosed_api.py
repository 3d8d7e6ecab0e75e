"""Fail-closed rules of the serving side: tenant-bound ingestion roots, secure defaults, HTTP bounds,
checked streaming, private files, and search audit. Each test is named as the rule it enforces."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from acl.dev.idp import DevIdentityProvider
from api.app import create_app
from clearance.compose import Runtime, build_api, build_runtime
from clearance.settings import IndexSettings, IngestSettings, Mode, ServerSettings, Settings
from index.embedding import SentenceTransformerEmbedder
from ingest.source import FilesystemSource
from retrieval.answer import AnswerService
from retrieval.citations import check_citations
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.generation.openai_compatible import OpenAICompatibleGenerator
from retrieval.records import ReplaceEvent, ResultEvent, TokenEvent
from store.audit_log import RecordKind
from store.audit_query import AuditQuery
from tests.conftest import OTHER_TENANT, REPO_ROOT, TENANT, write_acl, write_doc, write_users
from tests.test_generators import READER, chat_stub, policy_runtime  # noqa: F401  (fixtures)

ADMIN_OID = "a0000000-0000-4000-8000-000000000001"


def _admin(idp: DevIdentityProvider, tenant: str = TENANT) -> dict[str, str]:
    token = idp.mint(tenant_id=tenant, object_id=ADMIN_OID, roles=["Clearance.Admin"])
    return {"Authorization": f"Bearer {token}"}


# -- 1. ingestion roots are bound to a tenant ------------------------------------------------


@pytest.fixture()
def two_tenant_runtime(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[Runtime]:
    for tenant_folder in ("ours", "theirs"):
        write_doc(tmp_path / tenant_folder, "plan.md", f"# Plan\n\nThe {tenant_folder} plan is confidential.")
        write_acl(tmp_path / tenant_folder, allow=["tenant"])
    settings = Settings(
        mode=Mode.DEVELOPMENT,
        data_dir=tmp_path / "data",
        users_file=write_users(tmp_path / "users.json"),
        index=IndexSettings(location=":memory:"),
        ingest=IngestSettings(allowed_roots={TENANT: [tmp_path / "ours"], OTHER_TENANT: [tmp_path / "theirs"]}),
    )
    runtime = build_runtime(settings, embedder=embedder)
    yield runtime
    runtime.close()


def test_admin_cannot_ingest_a_root_of_another_tenant(two_tenant_runtime: Runtime, tmp_path: Path) -> None:
    assert two_tenant_runtime.dev is not None
    client = TestClient(build_api(two_tenant_runtime.settings, runtime=two_tenant_runtime))
    headers = _admin(two_tenant_runtime.dev.idp)
    refused = client.post("/v1/ingest/jobs", json={"path": str(tmp_path / "theirs")}, headers=headers)
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
    assert str(tmp_path) not in refused.text  # no server paths echoed
    accepted = client.post("/v1/ingest/jobs", json={"path": str(tmp_path / "ours")}, headers=headers)
    assert accepted.status_code == 202, accepted.text
    two_tenant_runtime.ingestion.wait_idle()
    job = client.get(f"/v1/ingest/jobs/{accepted.json()['id']}", headers=headers).json()
    assert job["status"] == "succeeded" and job["tenant_id"] == TENANT
    assert str(tmp_path) not in json.dumps(job)  # job records show no absolute server paths


def test_default_sample_roots_bind_each_sample_tenant_to_its_own_corpus() -> None:
    from clearance.compose import allowed_roots, load_directory

    settings = Settings(mode=Mode.DEVELOPMENT)
    roots = allowed_roots(settings, directory=load_directory(settings))
    northwind = REPO_ROOT / "samples" / "corpus" / "northwind"
    assert roots[TENANT] == [REPO_ROOT / "samples" / "corpus" / "brightwater"]
    assert all(northwind not in folders for tenant, folders in roots.items() if tenant == TENANT)
    assert allowed_roots(Settings(mode=Mode.PRODUCTION)) == {}  # production: none unless configured


# -- 3. production is the default; development only on loopback -----------------------------


def test_production_is_the_default_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLEARANCE_MODE", raising=False)
    assert Settings().mode is Mode.PRODUCTION


def test_production_app_has_no_token_minting_and_no_public_docs(runtime: Runtime) -> None:
    production = runtime.settings.model_copy(update={"mode": Mode.PRODUCTION})
    client = TestClient(build_api(production, runtime=runtime))
    for path in ("/dev/users", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 404, path
    assert client.post("/dev/token", json={"user": "admin"}).status_code == 404


def test_development_mode_refuses_a_non_loopback_bind(tmp_path: Path) -> None:
    from clearance.cli import app

    env = {"CLEARANCE_MODE": "development", "CLEARANCE_DATA_DIR": str(tmp_path / "d")}
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"], env=env)
    assert result.exit_code == 2 and "loopback" in result.output


def test_container_image_runs_in_production_mode() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "CLEARANCE_MODE=production" in dockerfile


# -- 11. HTTP bounds: token first, bounded body, bounded body time ---------------------------


@pytest.fixture()
def served(runtime: Runtime) -> Iterator[tuple[int, Runtime]]:
    settings = runtime.settings.model_copy(
        update={"server": ServerSettings(max_body_bytes=64 * 1024, body_timeout_seconds=1.0)}
    )
    app = build_api(settings, runtime=runtime)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port, runtime
    server.should_exit = True
    thread.join(timeout=10)


def _raw(port: int, head: str, body: bytes = b"", wait: float = 5.0) -> tuple[int, float]:
    """Sends ``head`` (and maybe part of a body), returns the status line's code and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
        conn.sendall(head.encode("latin-1") + body)
        response = conn.recv(4096).decode("latin-1")
    return int(response.split(" ", 2)[1]), time.monotonic() - started


def test_request_without_a_token_is_refused_before_its_body_is_sent(served: tuple[int, Runtime]) -> None:
    port, _ = served
    head = "POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
    status, took = _raw(port, head)  # not one byte of the body is sent
    assert status == 401 and took < 2.0


def test_declared_oversized_body_is_refused_at_once(served: tuple[int, Runtime]) -> None:
    port, runtime = served
    assert runtime.dev is not None
    token = runtime.dev.idp.mint(tenant_id=TENANT, object_id=ADMIN_OID)
    head = (
        "POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 157286400\r\n\r\n"
    )
    status, took = _raw(port, head)
    assert status == 413 and took < 2.0


def test_half_sent_body_times_out(served: tuple[int, Runtime]) -> None:
    port, runtime = served
    assert runtime.dev is not None
    token = runtime.dev.idp.mint(tenant_id=TENANT, object_id=ADMIN_OID)
    head = (
        "POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n"
    )
    status, took = _raw(port, head, body=b'{"question": ', wait=10.0)
    assert status == 408 and took < 5.0


def test_chunked_body_past_the_limit_is_refused(served: tuple[int, Runtime]) -> None:
    port, runtime = served
    assert runtime.dev is not None
    token = runtime.dev.idp.mint(tenant_id=TENANT, object_id=ADMIN_OID)
    head = (
        "POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 32 * 1024
    body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(4))
    status, _ = _raw(port, head, body=body)
    assert status == 413


# -- 12. streaming shows only checked sentences ----------------------------------------------


def _service(runtime: Runtime, url: str) -> AnswerService:
    generator = OpenAICompatibleGenerator(base_url=url, api_key="test", model="stub-model", timeout_seconds=5)
    return AnswerService(
        index=runtime.index, embedder=runtime.embedder, generator=generator, fallback=ExtractiveGenerator(), top_k=3
    )


def test_stream_never_shows_a_sentence_that_fails_the_check(
    policy_runtime: Runtime,  # noqa: F811
    chat_stub: tuple[str, Any],  # noqa: F811
) -> None:
    url, stub = chat_stub
    stub.reply = (
        "The meal per diem in Berlin is 55.50 EUR per day [1]. The CEO's salary is 812,000 EUR [1]. "
        "Hotels are capped at 160 EUR per night [1]."
    )
    events = list(_service(policy_runtime, url).stream(READER, "What is the meal per diem in Berlin?"))
    shown = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert "812,000" not in shown and "salary" not in shown
    assert "55.50" in shown and "160 EUR" in shown
    result = events[-1]
    assert isinstance(result, ResultEvent) and "812,000" not in result.result.answer
    assert not any(isinstance(e, ReplaceEvent) for e in events)  # what was shown is what stands


def test_stream_of_an_invented_answer_shows_nothing_of_it(
    policy_runtime: Runtime,  # noqa: F811
    chat_stub: tuple[str, Any],  # noqa: F811
) -> None:
    url, stub = chat_stub
    stub.reply = "The board approved a salary of 950,000 EUR for the CEO [1]."
    events = list(_service(policy_runtime, url).stream(READER, "What is the meal per diem in Berlin?"))
    assert not any("950,000" in e.text for e in events if isinstance(e, TokenEvent))
    replaced = [e.answer for e in events if isinstance(e, ReplaceEvent)]
    assert replaced and "55.50" in replaced[0]


def test_sentence_that_only_restates_the_question_is_not_supported() -> None:
    passages = ["The meal per diem in Berlin is 55.50 EUR per day."]
    restated = check_citations(
        "The meal per diem in Berlin is described in the policy [1].",
        passage_count=1,
        passage_texts=passages,
        question="What is the meal per diem in Berlin?",
    )
    assert not restated.grounded and restated.unsupported_sentences == 1
    answered = check_citations(
        "The meal per diem in Berlin is 55.50 EUR per day [1].",
        passage_count=1,
        passage_texts=passages,
        question="What is the meal per diem in Berlin?",
    )
    assert answered.grounded


def test_sentence_about_something_the_cited_passage_does_not_mention_is_not_supported() -> None:
    passages = ["Freight volume in Q3 was 486 tonnes through the Reno dock."]
    off_topic = check_citations(
        "Brightwater's Q3 revenue was 486 tonnes of quarterly earnings growth [1].",
        passage_count=1,
        passage_texts=passages,
        question="What was the revenue in Q3?",
    )
    assert not off_topic.grounded


# -- 13. deployment defaults -------------------------------------------------------------------


def test_compose_does_not_publish_qdrant_and_needs_a_real_key() -> None:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    qdrant = compose["services"]["qdrant"]
    assert "ports" not in qdrant
    assert "change-me" not in (REPO_ROOT / "compose.yaml").read_text(encoding="utf-8")


def test_placeholder_qdrant_key_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        IndexSettings(location="http://qdrant:6333", api_key="change-me")
    with pytest.raises(ValueError, match="required"):
        IndexSettings(location="https://qdrant.internal:6333")
    IndexSettings(location="http://127.0.0.1:6333")  # loopback without a key is a developer's own server


def test_data_directory_and_its_records_are_owner_only(
    runtime: Runtime, idp: DevIdentityProvider, tmp_path: Path
) -> None:
    write_doc(tmp_path / "docs", "a.md", "# A\n\nThe Alpha project ships in May.")
    write_acl(tmp_path / "docs", allow=["tenant"])
    runtime.pipeline.run(FilesystemSource(root=tmp_path / "docs", tenant_id=TENANT))
    client = TestClient(build_api(runtime.settings, runtime=runtime))
    token = idp.mint(tenant_id=TENANT, object_id=ADMIN_OID)
    client.post("/v1/chat", json={"question": "When does Alpha ship?"}, headers={"Authorization": f"Bearer {token}"})
    data_dir = runtime.settings.data_dir
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
    files = [p for p in data_dir.rglob("*") if p.is_file() and "index" not in p.parts and "dev-idp" not in p.parts]
    assert files
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path


def test_search_is_audited(runtime: Runtime, idp: DevIdentityProvider) -> None:
    client = TestClient(build_api(runtime.settings, runtime=runtime))
    token = idp.mint(tenant_id=TENANT, object_id=ADMIN_OID)
    response = client.post("/v1/search", json={"query": "alpha"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert runtime.store is not None
    [record] = runtime.store.reader.page(AuditQuery(tenant_id=TENANT, kinds=(RecordKind.SEARCH,)))
    assert record.actor == ADMIN_OID and record.personal is not None and record.personal["question"] == "alpha"


def test_create_app_over_components_keeps_the_bounds(runtime: Runtime) -> None:
    components = dataclasses.replace(runtime.api_components(), docs=False)
    client = TestClient(create_app(components))
    assert client.get("/openapi.json").status_code == 404


def test_abandoned_stream_is_still_audited(
    policy_runtime: Runtime,  # noqa: F811
    chat_stub: tuple[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    from retrieval.audit import JsonlAuditSink

    url, stub = chat_stub
    stub.reply = "The meal per diem in Berlin is 55.50 EUR per day [1]. Hotels are capped at 160 EUR per night [1]."
    audit_file = tmp_path / "audit.jsonl"
    service = AnswerService(
        index=policy_runtime.index,
        embedder=policy_runtime.embedder,
        generator=OpenAICompatibleGenerator(base_url=url, api_key="test", model="stub-model", timeout_seconds=5),
        fallback=ExtractiveGenerator(),
        top_k=3,
        audit=JsonlAuditSink(path=audit_file),
    )
    events = service.stream(READER, "What is the meal per diem in Berlin?")
    first = next(events)
    assert isinstance(first, TokenEvent)
    events.close()  # what the API does when the client disconnects
    [record] = [json.loads(line) for line in audit_file.read_text(encoding="utf-8").splitlines()]
    assert record["outcome"] == "abandoned" and record["streamed"] is True and record["retrieved"]
