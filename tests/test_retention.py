"""Retention and forget-user on SQLite and PostgreSQL: the window's boundary to the second for every kind, the
audit still verifying after its oldest records are cut (and still catching tampering), the scheduled run, the CLI
and the admin route."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from acl.dev.idp import DevIdentityProvider
from api.app import create_app
from clearance.compose import Runtime, build_api, build_runtime
from clearance.retention_cli import retention_app
from clearance.retention_job import RetentionSchedule, build_retention, build_schedule
from clearance.settings import RetentionSettings, Settings, StoreSettings
from clearance.store_cli import audit_app
from core.errors import NotFoundError
from index.embedding import SentenceTransformerEmbedder
from ingest.source import FilesystemSource
from retrieval.records import AnswerOutcome, AnswerResult
from store.audit_checkpoint import TRUNCATE_ACTION
from store.audit_log import SYSTEM_CHAIN, AuditEntry, AuditLog, RecordKind
from store.audit_query import AuditQuery
from store.audit_tables import AuditHead, AuditRecordRow
from store.audit_verify import ProblemKind, verify
from store.conversations import ConversationStore, Owner
from store.database import Database
from store.feedback import FeedbackStore, Rating
from store.retention import RUN_ACTION, RetainedKind, Retention, RetentionPolicy
from store.retention_sources import expiring_records, personal_records
from store.review import ReviewItemRow, ReviewQueue, ReviewReason
from store.state import Store
from tests import store_fixtures
from tests.conftest import OTHER_TENANT, TENANT
from tests.store_fixtures import StoreTarget, sample_answer
from tests.test_api import assert_problem, auth
from tests.test_permissions import ALICE, FIN, GRACE, build_corpus

target = store_fixtures.target
state_store = store_fixtures.state_store
DAY = 86_400.0
NOW = time.time()
WINDOW_START = NOW - DAY  # with one day kept: a record changed at this moment is the oldest that stays
INSIDE, OUTSIDE = WINDOW_START + 1, WINDOW_START - 1
ADMIN = "a0000000-0000-4000-8000-000000000001"
ONE_DAY = dict.fromkeys(RetainedKind, 1.0)


def retention(store: Store, days: dict[RetainedKind, float | None] | None = None) -> Retention:
    return Retention(
        log=store.audit,
        policy=RetentionPolicy(days=ONE_DAY if days is None else days),
        expiring=expiring_records(store),
        personal=personal_records(store),
        clock=lambda: NOW,
    )


def at(moment: float) -> Callable[[], float]:
    return lambda: moment


def conversation_at(store: Store, moment: float, question: str) -> str:
    conversations = ConversationStore(database=store.database, clock=at(moment))
    owner = Owner(tenant_id=TENANT, object_id=ALICE)
    result = AnswerResult(answer="A.", citations=(), outcome=AnswerOutcome.GROUNDED, generator="g", prompt="p")
    kept = conversations.finish(conversations.begin(owner, conversation_id=None), question=question, result=result)
    assert kept is not None
    return kept


def rating_at(store: Store, moment: float, answer_id: str) -> None:
    with store.database.write() as session:
        FeedbackStore(database=store.database, clock=at(moment)).put_in(
            session, tenant_id=TENANT, object_id=ALICE, answer_id=answer_id, rating=Rating.UP, reason=None, comment=None
        )


def review_item_at(store: Store, moment: float, answer_id: str) -> None:
    with store.database.write() as session:
        ReviewQueue(database=store.database, clock=at(moment)).add_reasons_in(
            session,
            tenant_id=TENANT,
            answer_id=answer_id,
            asker=ALICE,
            outcome="extractive_fallback",
            reasons=(ReviewReason.EXTRACTIVE_FALLBACK,),
        )


def audit_at(store: Store, moment: float, *, chain: str = TENANT, action: str = "test.action") -> int:
    entry = AuditEntry(
        chain=chain,
        kind=RecordKind.ADMIN,
        action=action,
        outcome="ok",
        actor=ALICE,
        record={"v": 1, "target": "", "detail": {}},
        personal={"private": {"note": "personal"}},
        at_us=round(moment * 1_000_000),
    )
    return store.audit.append(entry).seq


def chain_seqs(store: Store, chain: str = TENANT) -> list[int]:
    with store.database.read() as session:
        query = select(AuditRecordRow.seq).where(AuditRecordRow.chain == chain).order_by(AuditRecordRow.seq)
        return list(session.execute(query).scalars())


def review_answers(store: Store) -> set[str]:
    with store.database.read() as session:
        return set(session.execute(select(ReviewItemRow.answer_id)).scalars())


def assert_verifies(store: Store) -> None:
    result = verify(store.database)
    assert result.ok, [problem.describe() for problem in result.problems]


# -- the boundary, every kind --------------------------------------------------------------------------------


def test_one_second_inside_the_window_stays_and_one_second_outside_goes_for_every_kind(state_store: Store) -> None:
    old_chat = conversation_at(state_store, OUTSIDE, "old question")
    new_chat = conversation_at(state_store, INSIDE, "new question")
    rating_at(state_store, OUTSIDE, "a" * 32)
    rating_at(state_store, INSIDE, "b" * 32)
    review_item_at(state_store, OUTSIDE, "c" * 32)
    review_item_at(state_store, INSIDE, "d" * 32)
    old_record = audit_at(state_store, OUTSIDE)
    new_record = audit_at(state_store, INSIDE)
    expected = {"conversations": 1, "feedback": 1, "review": 1, "audit": 1}

    planned = retention(state_store).run(dry_run=True)
    assert planned.removed == expected
    assert chain_seqs(state_store) == [old_record, new_record] and len(review_answers(state_store)) == 2

    done = retention(state_store).run(actor="system:test")
    assert done.removed == expected
    owner = Owner(tenant_id=TENANT, object_id=ALICE)
    with pytest.raises(NotFoundError):
        state_store.conversations.get(owner, old_chat)
    assert state_store.conversations.get(owner, new_chat).title == "new question"
    assert state_store.feedback.for_answer(tenant_id=TENANT, answer_id="a" * 32) == []
    assert len(state_store.feedback.for_answer(tenant_id=TENANT, answer_id="b" * 32)) == 1
    assert review_answers(state_store) == {"d" * 32}
    kept = chain_seqs(state_store)
    assert old_record not in kept and new_record in kept
    assert_verifies(state_store)
    [run] = [r for r in state_store.reader.page(AuditQuery(tenant_id=SYSTEM_CHAIN)) if r.action == RUN_ACTION]
    assert run.actor == "system:test" and run.record["detail"]["removed"] == expected
    assert retention(state_store).run().removed == dict.fromkeys(expected, 0)  # nothing left to remove


def test_a_kind_kept_forever_is_not_touched(state_store: Store) -> None:
    chat = conversation_at(state_store, NOW - 3650 * DAY, "ancient")
    audit_at(state_store, NOW - 3650 * DAY)
    report = retention(state_store, {RetainedKind.CONVERSATIONS: 0, RetainedKind.AUDIT: None}).run()
    assert report.removed == {"conversations": 0, "feedback": 0, "review": 0, "audit": 0}
    assert state_store.conversations.get(Owner(tenant_id=TENANT, object_id=ALICE), chat).title == "ancient"
    assert chain_seqs(state_store) == [1]


# -- the audit after its oldest records are cut --------------------------------------------------------------


def cut_chain(store: Store) -> list[int]:
    """Five records outside the window, three inside; retention cuts the five behind a checkpoint."""
    for offset in range(5, 0, -1):
        audit_at(store, OUTSIDE - offset * 60)
    for offset in range(3):
        audit_at(store, INSIDE + offset)
    report = retention(store).run()
    assert report.removed["audit"] == 5 and not report.refused
    return chain_seqs(store)


def test_audit_verify_passes_after_its_oldest_records_are_cut(state_store: Store) -> None:
    kept = cut_chain(state_store)
    assert kept == [6, 7, 8, 9]  # three records inside the window, then the checkpoint
    result = verify(state_store.database, chains=[TENANT])
    assert result.ok and result.chains[0].truncated_through == 5 and result.chains[0].records == 4
    [checkpoint] = state_store.reader.page(AuditQuery(tenant_id=TENANT, after_seq=8))
    assert checkpoint.action == TRUNCATE_ACTION and checkpoint.record["detail"]["through_seq"] == 5
    # A later run moves the checkpoint past the first one's records; the chain verifies from the newest one.
    audit_at(state_store, NOW)
    later = Retention(
        log=state_store.audit,
        policy=RetentionPolicy(days=ONE_DAY),
        expiring={},
        personal={},
        clock=lambda: INSIDE + 3 + DAY,
    )
    assert later.run().removed["audit"] == 3  # the three records written one to three seconds inside the window
    assert chain_seqs(state_store) == [9, 10, 11]  # the first checkpoint, the newer record, the second checkpoint
    assert_verifies(state_store)


def _delete_first_kept(store: Store) -> None:
    with store.database.write() as session:
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 6))


def _delete_checkpoint(store: Store) -> None:
    with store.database.write() as session:
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 9))
        # The head too, so only the missing start can give the deletion away.
        last = session.execute(select(AuditRecordRow.hash).where(AuditRecordRow.seq == 8)).scalar_one()
        session.execute(update(AuditHead).where(AuditHead.chain == TENANT).values(seq=8, hash=last))


def _move_checkpoint(store: Store) -> None:
    with store.database.write() as session:
        row = session.execute(
            select(AuditRecordRow).where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 9)
        ).scalar_one()
        row.record = row.record.replace('"through_seq":5', '"through_seq":4')


def _cut_more_than_named(store: Store) -> None:
    with store.database.write() as session:
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq <= 7))


@pytest.mark.parametrize(
    ("tamper", "kind", "seq"),
    [
        (_delete_first_kept, ProblemKind.MISSING, 7),
        (_delete_checkpoint, ProblemKind.MISSING, 6),
        (_move_checkpoint, ProblemKind.MISSING, 6),
        (_cut_more_than_named, ProblemKind.MISSING, 8),
    ],
    ids=["record-after-checkpoint-deleted", "checkpoint-deleted", "checkpoint-edited", "more-removed-than-named"],
)
def test_a_cut_chain_still_shows_tampering(
    state_store: Store, tamper: Callable[[Store], None], kind: ProblemKind, seq: int
) -> None:
    cut_chain(state_store)
    tamper(state_store)
    result = verify(state_store.database, chains=[TENANT])
    assert not result.ok
    problem = result.problems[0]
    assert (problem.kind, problem.seq) == (kind, seq), problem.describe()


def test_an_edited_checkpoint_fails_its_own_hash(state_store: Store) -> None:
    cut_chain(state_store)
    with state_store.database.write() as session:
        row = session.execute(
            select(AuditRecordRow).where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 9)
        ).scalar_one()
        row.record = row.record.replace('"removed":5', '"removed":2')
    problem = verify(state_store.database).problems[0]
    assert (problem.kind, problem.seq) == (ProblemKind.EDITED, 9)


def test_an_anchor_inside_the_removed_part_is_reported_not_skipped(state_store: Store) -> None:
    for offset in range(5, 0, -1):
        audit_at(state_store, OUTSIDE - offset * 60)
    before = verify(state_store.database, chains=[TENANT]).chains[0]
    at_checkpoint = {TENANT: (before.head_seq, before.head_hash)}  # the last record retention will remove
    [third] = state_store.reader.page(AuditQuery(tenant_id=TENANT, after_seq=2), limit=1)
    audit_at(state_store, INSIDE)
    retention(state_store).run()
    problem = verify(state_store.database, anchors={TENANT: (third.seq, third.hash)}).problems[0]
    assert problem.kind is ProblemKind.ANCHOR_MISMATCH and "retention" in problem.detail
    assert verify(state_store.database, anchors=at_checkpoint).ok  # the checkpoint names that very record
    assert not verify(state_store.database, anchors={TENANT: (before.head_seq, "0" * 64)}).ok
    after = verify(state_store.database, chains=[TENANT]).chains[0]
    assert verify(state_store.database, anchors={TENANT: (after.head_seq, after.head_hash)}).ok


def test_a_chain_that_does_not_verify_is_left_whole(state_store: Store) -> None:
    for offset in range(3, 0, -1):
        audit_at(state_store, OUTSIDE - offset)
    audit_at(state_store, INSIDE)
    audit_at(state_store, OUTSIDE, chain=OTHER_TENANT)
    with state_store.database.write() as session:
        session.execute(
            update(AuditRecordRow)
            .where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 2)
            .values(outcome="rewritten")
        )
    report = retention(state_store).run()
    [refused] = report.refused
    assert refused.chain == TENANT and "edited" in (refused.refused or "")
    assert chain_seqs(state_store) == [1, 2, 3, 4]  # the evidence stays
    assert chain_seqs(state_store, OTHER_TENANT) == [2]  # the healthy chain was cut (its checkpoint remains)
    [run] = [r for r in state_store.reader.page(AuditQuery(tenant_id=SYSTEM_CHAIN)) if r.action == RUN_ACTION]
    assert run.outcome == "partial" and run.record["detail"]["chains_refused"] == 1


# -- forget user ---------------------------------------------------------------------------------------------


def test_forgetting_a_user_keeps_the_audit_verifiable(state_store: Store) -> None:
    state_store.audit_sink.record(sample_answer(1, user=ALICE))
    state_store.audit_sink.record(sample_answer(2, user=GRACE))
    conversation_at(state_store, NOW, "mine")
    rating_at(state_store, NOW, "e" * 32)
    review_item_at(state_store, NOW, "f" * 32)
    report = retention(state_store).forget_user(tenant_id=TENANT, object_id=ALICE, actor=ADMIN)
    assert report.removed == {"conversations": 1, "feedback": 1, "review_items": 1}
    assert report.audit_records == 1  # the answer (the ratings here were stored without the route's record)
    assert_verifies(state_store)
    records = state_store.reader.page(AuditQuery(tenant_id=TENANT))
    assert ALICE not in json.dumps([r.__repr__() for r in records])
    assert [r.actor for r in records if r.actor == GRACE] == [GRACE]
    assert state_store.conversations.list(Owner(tenant_id=TENANT, object_id=ALICE)) == []
    forgot = [r for r in records if r.action == "user.forget"]
    assert forgot[0].record["detail"]["removed"] == report.removed and forgot[0].actor == ADMIN


# -- the scheduled run ---------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_scheduled_run_runs_and_stops(state_store: Store) -> None:
    conversation_at(state_store, OUTSIDE, "expired")
    schedule = RetentionSchedule(run=retention(state_store).run, interval_seconds=0.05, first_delay_seconds=0)
    schedule.start()
    try:
        wait_for(lambda: schedule.runs >= 2)
    finally:
        schedule.stop(timeout_seconds=10)
    assert not schedule.running and schedule.failures == 0
    assert state_store.conversations.count_older_than(cutoff=NOW) == 0
    runs = [r for r in state_store.reader.page(AuditQuery(tenant_id=SYSTEM_CHAIN)) if r.action == RUN_ACTION]
    assert len(runs) >= 2
    stopped_at = schedule.runs
    time.sleep(0.2)
    assert schedule.runs == stopped_at


def test_the_scheduled_run_survives_a_store_that_is_down() -> None:
    down = Database.open("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_timeout_seconds=1)
    unreachable = Retention(
        log=AuditLog(database=down),
        policy=RetentionPolicy(days=ONE_DAY),
        expiring={RetainedKind.CONVERSATIONS: ConversationStore(database=down)},
        personal={},
    )
    schedule = RetentionSchedule(run=unreachable.run, interval_seconds=0.05, first_delay_seconds=0)
    schedule.start()
    try:
        wait_for(lambda: schedule.failures >= 2)
        assert schedule.running and schedule.runs == 0
    finally:
        schedule.stop(timeout_seconds=10)
        down.dispose()
    assert not schedule.running


def test_the_app_starts_the_schedule_and_stops_it_at_shutdown(runtime: Runtime) -> None:
    assert runtime.store is not None
    schedule = RetentionSchedule(run=retention(runtime.store).run, interval_seconds=0.05, first_delay_seconds=0)
    app = create_app(runtime.api_components(), on_startup=schedule.start, on_shutdown=schedule.stop)
    assert not schedule.running  # built, not started: an app that never serves starts nothing
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        wait_for(lambda: schedule.runs >= 1)
        assert schedule.running
    assert not schedule.running


def test_the_schedule_follows_its_settings(state_store: Store) -> None:
    policy = retention(state_store)
    assert build_schedule(Settings(retention=RetentionSettings(schedule=False)), policy) is None
    assert isinstance(build_schedule(Settings(), policy), RetentionSchedule)
    with pytest.raises(ValueError):
        RetentionSettings(interval_seconds=1)
    with pytest.raises(ValueError):
        RetentionSettings(conversations_days=-1)
    built = build_retention(Settings(retention=RetentionSettings(audit_days=0, review_days=30)), state_store)
    assert built.policy.window_seconds(RetainedKind.AUDIT) is None
    assert built.policy.window_seconds(RetainedKind.REVIEW) == 30 * DAY
    assert built.policy.window_seconds(RetainedKind.CONVERSATIONS) == 180 * DAY


# -- through the CLI and the admin route -----------------------------------------------------------------------

cli = typer.Typer()
cli.add_typer(retention_app, name="retention")
cli.add_typer(audit_app, name="audit")


@pytest.fixture()
def configured(target: StoreTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A deployment's environment for this store, and the store itself (migrated)."""
    monkeypatch.setenv("CLEARANCE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CLEARANCE_RETENTION__AUDIT_DAYS", "1")
    monkeypatch.setenv("CLEARANCE_RETENTION__CONVERSATIONS_DAYS", "1")
    if target.backend == "postgresql":
        monkeypatch.setenv("CLEARANCE_STORE__URL", target.url)
        monkeypatch.setenv("CLEARANCE_STORE__SCHEMA_NAME", target.schema or "")
    else:
        target = StoreTarget(backend="sqlite", url=f"sqlite+pysqlite:///{tmp_path / 'data' / 'state.db'}")
    store = target.open()
    try:
        yield store
    finally:
        store.close()


def test_retention_and_forget_user_from_the_command_line(configured: Store) -> None:
    conversation_at(configured, time.time() - 2 * DAY, "expired")
    audit_at(configured, time.time() - 2 * DAY)
    audit_at(configured, time.time())
    planned = CliRunner().invoke(cli, ["retention", "run", "--dry-run", "--json"])
    assert planned.exit_code == 0, planned.output
    report = json.loads(planned.stdout)
    assert report["dry_run"] and report["kinds"]["conversations"]["removed"] == 1
    assert report["kinds"]["audit"]["removed"] == 1 and len(chain_seqs(configured)) == 2
    ran = CliRunner().invoke(cli, ["retention", "run"])
    assert ran.exit_code == 0, ran.output
    assert "conversations: removed 1 (1 days)" in ran.output and "audit: removed 1" in ran.output
    verified = CliRunner().invoke(cli, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    conversation_at(configured, time.time(), "recent")
    forgot = CliRunner().invoke(cli, ["retention", "forget-user", "--tenant", TENANT.upper(), "--user", ALICE])
    assert forgot.exit_code == 0, forgot.output
    assert "1 conversations" in forgot.output and "1 audit records pseudonymised" in forgot.output
    assert CliRunner().invoke(cli, ["audit", "verify"]).exit_code == 0
    [forget] = [r for r in configured.reader.page(AuditQuery(tenant_id=TENANT)) if r.action == "user.forget"]
    assert forget.actor.startswith("cli:")
    bad = CliRunner().invoke(cli, ["retention", "forget-user", "--tenant", TENANT, "--user", "alice@example.com"])
    assert bad.exit_code == 2 and "GUID" in bad.output


@pytest.fixture()
def served(
    target: StoreTarget, settings: Settings, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> Iterator[Runtime]:
    store = StoreSettings(url=SecretStr(target.url), schema_name=target.schema)
    runtime = build_runtime(settings.model_copy(update={"store": store}), embedder=embedder)
    try:
        runtime.pipeline.run(FilesystemSource(root=build_corpus(tmp_path / "corpus"), tenant_id=TENANT))
        yield runtime
    finally:
        runtime.close()


def admin(idp: DevIdentityProvider, tenant: str = TENANT) -> dict[str, str]:
    return auth(idp, tenant=tenant, roles=("Clearance.Admin",), oid=ADMIN)


def test_an_admin_forgets_a_user_of_their_tenant_only(served: Runtime, idp: DevIdentityProvider) -> None:
    client = TestClient(build_api(served.settings, runtime=served))
    asked: dict[str, Any] = client.post(
        "/v1/chat", json={"question": "What was the Q3 revenue?"}, headers=auth(idp, FIN)
    ).json()
    rated = client.post(
        "/v1/feedback", json={"answer_id": asked["answer_id"], "rating": "down"}, headers=auth(idp, FIN)
    )
    assert rated.status_code == 201, rated.text
    graces = client.post("/v1/chat", json={"question": "When is the picnic?"}, headers=auth(idp, oid=GRACE)).json()
    assert_problem(client.post(f"/v1/admin/users/{ALICE}/forget", headers=auth(idp, FIN)), 403)
    assert_problem(client.post("/v1/admin/users/alice@example.com/forget", headers=admin(idp)), 422)

    elsewhere = client.post(f"/v1/admin/users/{ALICE}/forget", headers=admin(idp, OTHER_TENANT))
    assert elsewhere.status_code == 200, elsewhere.text
    assert elsewhere.json() == {
        "removed": {"conversations": 0, "feedback": 0, "review_items": 0},
        "audit_records_erased": 0,
    }
    assert len(client.get("/v1/conversations", headers=auth(idp, FIN)).json()["conversations"]) == 1

    forgot = client.post(f"/v1/admin/users/{ALICE.upper()}/forget", headers=admin(idp))
    assert forgot.status_code == 200, forgot.text
    assert forgot.json()["removed"] == {"conversations": 1, "feedback": 1, "review_items": 1}
    assert forgot.json()["audit_records_erased"] >= 2  # the answer and the rating
    assert client.get("/v1/conversations", headers=auth(idp, FIN)).json() == {"conversations": []}
    assert served.store is not None
    assert served.store.feedback.for_answer(tenant_id=TENANT, answer_id=asked["answer_id"]) == []
    assert_verifies(served.store)
    exported = [r.to_json() for r in served.store.reader.export(AuditQuery(tenant_id=TENANT))]
    assert ALICE not in json.dumps(exported) and "What was the Q3 revenue?" not in json.dumps(exported)
    assert any(r["actor"] == GRACE for r in exported)  # another user's records are untouched
    assert len(client.get("/v1/conversations", headers=auth(idp, oid=GRACE)).json()["conversations"]) == 1
    assert graces["conversation_id"]
    # The forgotten user's answer can no longer be rated by them: it is not theirs any more.
    again = client.post("/v1/feedback", json={"answer_id": asked["answer_id"], "rating": "up"}, headers=auth(idp, FIN))
    assert_problem(again, 404)


def test_clearance_serve_runs_retention_on_its_schedule(settings: Settings) -> None:
    """The app `clearance serve` builds (it owns its runtime) starts the schedule and stops it on shutdown."""
    scheduled = settings.model_copy(update={"retention": RetentionSettings(first_run_delay_seconds=0)})
    app = build_api(scheduled)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        store = Database.open(f"sqlite+pysqlite:///{scheduled.data_dir / 'state.db'}")
        try:

            def ran() -> bool:
                with store.read() as session:
                    query = select(AuditRecordRow.id).where(AuditRecordRow.action == RUN_ACTION)
                    return session.execute(query).first() is not None

            wait_for(ran)
        finally:
            store.dispose()
    threads = [thread.name for thread in threading.enumerate()]
    assert "clearance-retention" not in threads
