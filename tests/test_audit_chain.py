"""The audit hash chain on SQLite and PostgreSQL: every kind of tampering is found, and named."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from store.audit_erasure import erase_user
from store.audit_log import AuditEntry, RecordKind
from store.audit_tables import AuditChunkRow, AuditHead, AuditRecordRow
from store.audit_verify import ProblemKind, verify
from store.chain import GENESIS, canonical, personal_text, record_hash, sha256_hex
from store.state import Store
from tests import store_fixtures
from tests.conftest import OTHER_TENANT, TENANT
from tests.store_fixtures import USER, sample_answer

# Fixtures shared by the store's test modules (each runs on SQLite and on PostgreSQL).
target = store_fixtures.target
state_store = store_fixtures.state_store

OTHER_USER = "a2000000-0000-4000-8000-000000000002"


def fill(state_store: Store, answers: int = 6) -> None:
    """Answers with an admin action in the middle, all in TENANT's chain (seq 1..answers+1)."""
    sink = state_store.audit_sink
    for number in range(1, answers + 1):
        sink.record(sample_answer(number))
        if number == 3:
            detail = {"returned": 3}
            state_store.audit.record_admin_action(tenant_id=TENANT, actor=USER, action="audit.read", detail=detail)


def first_problem(state_store: Store) -> tuple[int, ProblemKind, str]:
    result = verify(state_store.database)
    assert not result.ok
    problem = result.problems[0]
    return problem.seq, problem.kind, problem.describe()


def row(state_store: Store, seq: int, chain: str = TENANT) -> AuditRecordRow:
    with state_store.database.read() as session:
        found = session.get(AuditRecordRow, (chain, seq))
    assert found is not None
    return found


def test_an_untouched_chain_verifies_and_links_every_record(state_store: Store) -> None:
    fill(state_store)
    state_store.audit_sink.record(sample_answer(1, tenant=OTHER_TENANT))
    result = verify(state_store.database)
    assert result.ok, [p.describe() for p in result.problems]
    assert {c.chain: c.records for c in result.chains} == {TENANT: 7, OTHER_TENANT: 1}
    first, second = row(state_store, 1), row(state_store, 2)
    assert first.prev_hash == GENESIS and second.prev_hash == first.hash
    assert row(state_store, 1, OTHER_TENANT).prev_hash == GENESIS  # one chain per tenant


def test_a_record_stores_who_what_and_with_which_principals(state_store: Store) -> None:
    state_store.audit_sink.record(sample_answer(1))
    stored = row(state_store, 1)
    record, personal = json.loads(stored.record), json.loads(stored.personal or "")
    assert stored.kind == "answer" and stored.outcome == "grounded" and stored.actor == USER
    assert personal["question"] == "What is answer number 1?"
    assert f"user:{TENANT}/{USER}" in personal["principals"]
    # The fingerprint names the access (groups, tenant), not the person.
    assert f"user:{TENANT}/{USER}" not in stored.record and USER not in stored.record
    assert record["retrieved"][0] == {
        "chunk_id": "chunk-1-1",
        "doc_id": "doc-a",
        "source": "corpus/doc-a.md",
        "version": "v1",
    }
    assert record["cited"] == ["chunk-1-1"] and record["prompt"] == "grounded-answer/v1"
    assert record["generator"] == "extractive" and record["policy"] == [] and record["streamed"] is False
    assert record["timings_ms"] == {"embed": 1.5, "retrieve": 2.25}


def test_an_edited_record_is_named(state_store: Store) -> None:
    fill(state_store)
    with state_store.database.write() as session:
        session.execute(
            update(AuditRecordRow)
            .where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 5)
            .values(outcome="abstained")
        )
    seq, kind, message = first_problem(state_store)
    assert (seq, kind) == (5, ProblemKind.EDITED) and "record 5" in message


def test_an_edited_question_is_named(state_store: Store) -> None:
    fill(state_store)
    stored = row(state_store, 2)
    edited = (stored.personal or "").replace("number 2", "number 9")
    with state_store.database.write() as session:
        session.execute(
            update(AuditRecordRow)
            .where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 2)
            .values(personal=edited)
        )
    assert first_problem(state_store)[:2] == (2, ProblemKind.PERSONAL_MISMATCH)


def test_a_changed_actor_is_named(state_store: Store) -> None:
    fill(state_store)
    with state_store.database.write() as session:
        session.execute(
            update(AuditRecordRow)
            .where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 6)
            .values(actor=OTHER_USER)
        )
    assert first_problem(state_store)[:2] == (6, ProblemKind.PERSONAL_MISMATCH)


def _delete(state_store: Store, seq: int) -> None:
    with state_store.database.write() as session:
        session.execute(delete(AuditChunkRow).where(AuditChunkRow.chain == TENANT, AuditChunkRow.seq == seq))
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == seq))


def test_a_deleted_record_is_named(state_store: Store) -> None:
    fill(state_store)
    _delete(state_store, 3)
    seq, kind, message = first_problem(state_store)
    assert (seq, kind) == (4, ProblemKind.MISSING) and "record 3 is missing" in message


def test_a_deleted_last_record_is_named(state_store: Store) -> None:
    fill(state_store)
    _delete(state_store, 7)
    seq, kind, message = first_problem(state_store)
    assert (seq, kind) == (7, ProblemKind.MISSING) and "end of the chain" in message


def test_a_deleted_first_record_is_named(state_store: Store) -> None:
    fill(state_store)
    _delete(state_store, 1)
    assert first_problem(state_store)[:2] == (2, ProblemKind.MISSING)


def _shift_up(state_store: Store, *, from_seq: int) -> None:
    """Moves admin-free answer records from_seq..7 one place up (their chunk rows follow), highest first."""
    with state_store.database.write() as session:
        for seq in range(7, from_seq - 1, -1):
            chunks = session.execute(
                select(AuditChunkRow).where(AuditChunkRow.chain == TENANT, AuditChunkRow.seq == seq)
            ).scalars()
            saved = [(c.position, c.chunk_id, c.doc_id, c.source_hash, c.version, c.cited) for c in chunks]
            session.execute(delete(AuditChunkRow).where(AuditChunkRow.chain == TENANT, AuditChunkRow.seq == seq))
            session.execute(
                update(AuditRecordRow)
                .where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == seq)
                .values(seq=seq + 1)
            )
            session.flush()
            session.add_all(
                AuditChunkRow(
                    chain=TENANT, seq=seq + 1, position=p, chunk_id=c, doc_id=d, source_hash=s, version=v, cited=x
                )
                for p, c, d, s, v, x in saved
            )
            session.flush()
        session.execute(update(AuditHead).where(AuditHead.chain == TENANT).values(seq=8))


def _forged(*, seq: int, prev_hash: str) -> AuditRecordRow:
    record = canonical({"v": 1, "target": "", "detail": {}})
    personal = personal_text({}, actor="someone")
    digest = sha256_hex(personal)
    fields = dict(chain=TENANT, seq=seq, id="f" * 32, at_us=1, kind="admin", action="forged", outcome="ok")
    hashed = record_hash(**fields, record=record, personal_digest=digest, prev_hash=prev_hash)  # type: ignore[arg-type]
    return AuditRecordRow(
        **fields,
        actor="someone",
        record=record,
        personal=personal,
        personal_digest=digest,
        prev_hash=prev_hash,
        hash=hashed,
    )


def test_an_inserted_record_is_named(state_store: Store) -> None:
    """Inserted by someone who does not know the chain's rules: the inserted record itself is named."""
    fill(state_store)
    _shift_up(state_store, from_seq=5)
    with state_store.database.write() as session:
        session.add(_forged(seq=5, prev_hash="e" * 64))
    seq, kind, _ = first_problem(state_store)
    assert (seq, kind) == (5, ProblemKind.BROKEN_LINK)


def test_an_inserted_record_with_a_valid_hash_breaks_the_chain_right_after_it(state_store: Store) -> None:
    """Inserted by someone who recomputes its hash: the record it displaced no longer verifies."""
    fill(state_store)
    predecessor = row(state_store, 4).hash
    _shift_up(state_store, from_seq=5)
    forged = _forged(seq=5, prev_hash=predecessor)
    with state_store.database.write() as session:
        # The displaced record must now follow the forged one, or the store refuses a fork (see below).
        session.execute(
            update(AuditRecordRow)
            .where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 6)
            .values(prev_hash=forged.hash)
        )
        session.add(forged)
    assert first_problem(state_store)[:2] == (6, ProblemKind.EDITED)


def test_the_store_refuses_two_records_after_the_same_one(state_store: Store) -> None:
    fill(state_store)
    _shift_up(state_store, from_seq=5)
    with pytest.raises(IntegrityError), state_store.database.write() as session:
        session.add(_forged(seq=5, prev_hash=row(state_store, 4).hash))  # record 6 already follows record 4


def test_reordered_records_are_named(state_store: Store) -> None:
    fill(state_store)  # record 4 is the admin action (no chunk rows), record 5 an answer
    with state_store.database.write() as session:
        moved = session.execute(select(AuditChunkRow).where(AuditChunkRow.seq == 5)).scalars().all()
        saved = [(c.position, c.chunk_id, c.doc_id, c.source_hash, c.version, c.cited) for c in moved]
        session.execute(delete(AuditChunkRow).where(AuditChunkRow.chain == TENANT, AuditChunkRow.seq == 5))
        for old, new in ((4, 100), (5, 4), (100, 5)):
            session.execute(
                update(AuditRecordRow).where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == old).values(seq=new)
            )
            session.flush()
        session.add_all(
            AuditChunkRow(chain=TENANT, seq=4, position=p, chunk_id=c, doc_id=d, source_hash=s, version=v, cited=x)
            for p, c, d, s, v, x in saved
        )
    seq, kind, message = first_problem(state_store)
    assert (seq, kind) == (4, ProblemKind.BROKEN_LINK) and "does not follow record 3" in message


def test_a_removed_document_index_row_is_named(state_store: Store) -> None:
    """Hiding that an answer used a document (deleting its index row) is tampering too."""
    fill(state_store)
    with state_store.database.write() as session:
        session.execute(
            delete(AuditChunkRow).where(
                AuditChunkRow.chain == TENANT, AuditChunkRow.seq == 2, AuditChunkRow.doc_id == "doc-a"
            )
        )
    assert first_problem(state_store)[:2] == (2, ProblemKind.INDEX_MISMATCH)


def test_a_rewritten_chain_is_caught_by_an_anchor(state_store: Store) -> None:
    fill(state_store)
    anchor = {TENANT: (4, row(state_store, 4).hash)}
    with state_store.database.write() as session:  # rewrite from record 1: every hash recomputed, record 4 changed
        rows = session.execute(
            select(AuditRecordRow).where(AuditRecordRow.chain == TENANT).order_by(AuditRecordRow.seq)
        ).scalars()
        prev = GENESIS
        for stored in rows:
            stored.outcome = "rewritten" if stored.seq == 4 else stored.outcome
            fields = dict(chain=stored.chain, seq=stored.seq, id=stored.id, at_us=stored.at_us, kind=stored.kind)
            stored.prev_hash = prev
            stored.hash = record_hash(
                **fields,  # type: ignore[arg-type]
                action=stored.action,
                outcome=stored.outcome,
                record=stored.record,
                personal_digest=stored.personal_digest,
                prev_hash=prev,
            )
            prev = stored.hash
            session.flush()
        session.execute(update(AuditHead).where(AuditHead.chain == TENANT).values(hash=prev))
    assert verify(state_store.database).ok  # without an anchor, a full rewrite cannot be told from the original
    problem = verify(state_store.database, anchors=anchor).problems[0]
    assert (problem.seq, problem.kind) == (4, ProblemKind.ANCHOR_MISMATCH)


def test_forgetting_a_user_keeps_the_chain_valid(state_store: Store) -> None:
    fill(state_store)
    state_store.audit_sink.record(sample_answer(50, user=OTHER_USER))
    erased = erase_user(state_store.audit, tenant_id=TENANT, object_id=USER, actor="system:retention")
    assert erased == 7  # six answers and the admin action USER took
    result = verify(state_store.database)
    assert result.ok, [p.describe() for p in result.problems]
    assert result.chains[0].erased == 7
    gone = row(state_store, 1)
    assert gone.personal is None and gone.actor.startswith("erased:") and "answer number" not in gone.record
    assert json.loads(gone.record)["retrieved"][0]["doc_id"] == "doc-a"  # what was used stays
    assert row(state_store, 8).personal is not None  # the other user's record is untouched


def test_personal_data_removed_without_an_audited_erasure_is_named(state_store: Store) -> None:
    fill(state_store)
    with state_store.database.write() as session:
        session.execute(
            update(AuditRecordRow)
            .where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 2)
            .values(personal=None, erased_at_us=1, actor="erased:x")
        )
    assert first_problem(state_store)[:2] == (2, ProblemKind.PERSONAL_MISMATCH)


def test_admin_actions_join_the_tenant_chain(state_store: Store) -> None:
    appended = state_store.audit.record_admin_action(
        tenant_id=TENANT,
        actor=USER,
        action="prompt.activate",
        target="grounded-answer/v2",
        detail={"previous": "grounded-answer/v1"},
        private={"reason": "Ada asked for shorter answers"},
    )
    stored = row(state_store, appended.seq)
    assert stored.kind == RecordKind.ADMIN and stored.action == "prompt.activate" and stored.actor == USER
    assert "Ada" not in stored.record and "Ada" in (stored.personal or "")
    assert verify(state_store.database).ok


def test_an_entry_with_text_that_is_not_utf8_is_chained(state_store: Store) -> None:
    state_store.audit.append(
        AuditEntry(
            chain=TENANT,
            kind=RecordKind.ADMIN,
            action="ingest.job.finish",
            outcome="ok",
            actor=USER,
            record={"source": "bad-\udcff.txt", "nul": "a\x00b"},
        )
    )
    assert verify(state_store.database).ok
