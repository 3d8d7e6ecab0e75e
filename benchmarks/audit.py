"""Audit costs: the overhead each answer pays for its record, and the time `clearance audit verify` takes.

Per answer, the API checks the store answers before it starts (a ping) and the
answer service appends one chained record (five retrieved chunks, two cited);
both are timed through the real store on SQLite (a file, WAL, synchronous=FULL)
and on PostgreSQL (when ``--postgres-url`` answers), sequentially, p50/p95.
Verification is timed over a chain of ``--verify-records`` records (written in
bulk through the same hashing code as appends, then verified as the CLI does)
and reported per 100,000 records.

    .venv/bin/python -m benchmarks.audit                       # SQLite and the local PostgreSQL
    .venv/bin/python -m benchmarks.audit --answers 500 --verify-records 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text, update

from retrieval.audit import AnswerAudit, ChunkRef
from store.audit_log import SqlAuditSink, answer_entry, chained_rows
from store.audit_tables import AuditChunkRow, AuditHead, AuditRecordRow
from store.audit_verify import verify
from store.chain import GENESIS
from store.database import Database, sqlite_url
from store.state import Store, open_store

TENANT = "d1f72fea-086f-4448-9dce-2f71deb8ef72"
USER = "a1000000-0000-4000-8000-000000000001"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def sample_answer(number: int) -> AnswerAudit:
    """A typical answer's record: five chunks retrieved from three documents, two cited, stage timings."""
    chunks = tuple(
        ChunkRef(
            chunk_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{number}/{rank}")),
            doc_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"doc/{rank % 3}")),
            source=f"finance/reports/q{rank % 3 + 1}.md",
            version=f"{uuid.uuid4().hex[:16]}-{uuid.uuid4().hex[:8]}",
        )
        for rank in range(5)
    )
    groups = [f"group:{TENANT}/{uuid.uuid5(uuid.NAMESPACE_URL, f'group/{n}')}" for n in range(8)]
    return AnswerAudit(
        tenant_id=TENANT,
        object_id=USER,
        principals=tuple(sorted([f"user:{TENANT}/{USER}", f"tenant:{TENANT}", *groups])),
        groups_complete=True,
        question=f"What was the revenue of the third quarter in the EMEA region, question {number}?",
        retrieved=tuple(c.chunk_id for c in chunks),
        cited=(chunks[0].chunk_id, chunks[2].chunk_id),
        outcome="grounded",
        generator="llama.cpp:qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        prompt="grounded-answer/v1",
        timings_ms={"embed": 8.1, "retrieve": 2.3, "generate": 4312.7},
        streamed=True,
        chunks=chunks,
        model="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    )


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


def answer_overhead(store: Store, *, answers: int) -> dict[str, Any]:
    """Times the ping before an answer and the append after it, per answer, one answer at a time."""
    sink = SqlAuditSink(log=store.audit)
    entries = [sample_answer(n) for n in range(answers + 20)]
    for entry in entries[:20]:  # warm the pool, the statement caches and the head row
        store.audit.ping()
        sink.record(entry)
    ping_ms, append_ms, total_ms = [], [], []
    cpu_started = time.process_time()
    for entry in entries[20:]:
        started = time.perf_counter()
        store.audit.ping()
        pinged = time.perf_counter()
        sink.record(entry)
        done = time.perf_counter()
        ping_ms.append((pinged - started) * 1000)
        append_ms.append((done - pinged) * 1000)
        total_ms.append((done - started) * 1000)
    cpu_ms = (time.process_time() - cpu_started) * 1000 / answers
    return {
        "answers": answers,
        "per_answer": _percentiles(total_ms),
        "ping": _percentiles(ping_ms),
        "append": _percentiles(append_ms),
        # What this process computed per answer; the rest of the wall time is waiting (fsync, the server, the CPU).
        "cpu_ms_per_answer": round(cpu_ms, 3),
    }


def bulk_chain(database: Database, *, records: int, batch: int = 5000) -> None:
    """``records`` answer records in one chain, hashed exactly as appends hash them, written in batches."""
    prev, seq = GENESIS, 0
    template = sample_answer(0)
    with database.write() as session:
        while seq < records:
            rows, chunks = [], []
            for _ in range(min(batch, records - seq)):
                seq += 1
                entry = replace(answer_entry(template), id=uuid.uuid4().hex, at_us=seq)
                row, used = chained_rows(entry, seq=seq, prev_hash=prev)
                rows.append(row)
                chunks.extend(used)
                prev = row["hash"]
            session.execute(insert(AuditRecordRow), rows)
            session.execute(insert(AuditChunkRow), chunks)
        session.execute(insert(AuditHead).values(chain=TENANT, seq=0, hash=GENESIS))
        session.execute(update(AuditHead).where(AuditHead.chain == TENANT).values(seq=seq, hash=prev))


def verify_time(database: Database, *, records: int) -> dict[str, Any]:
    started = time.perf_counter()
    bulk_chain(database, records=records)
    filled = time.perf_counter() - started
    cpu_started = time.process_time()
    result = verify(database)
    cpu = time.process_time() - cpu_started
    if not result.ok or result.records != records:
        raise RuntimeError(f"benchmark chain did not verify: {[p.describe() for p in result.problems]}")
    return {
        "records": records,
        "fill_s": round(filled, 2),
        "verify_s": round(result.seconds, 2),
        "verify_s_per_100k": round(result.seconds * 100_000 / records, 2),
        "verify_cpu_s_per_100k": round(cpu * 100_000 / records, 2),
        "records_per_s": round(records / result.seconds),
    }


@contextmanager
def _sqlite(folder: Path, name: str) -> Iterator[Store]:
    store = open_store(sqlite_url(folder / f"{name}.db"))
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _postgres(url: str) -> Iterator[Store]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = open_store(url, schema=schema)
    try:
        yield store
    finally:
        store.close()
        admin = Database.open(url)
        with admin.write_connection() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def measure(
    *, answers: int = 300, verify_records: int = 100_000, postgres_url: str | None = DEFAULT_POSTGRES
) -> dict[str, Any]:
    """Both measurements on SQLite, and on PostgreSQL unless ``postgres_url`` is None or does not answer."""
    report: dict[str, Any] = {"answers": answers, "verify_records": verify_records}
    with tempfile.TemporaryDirectory(prefix="clearance-audit-bench-") as folder:
        with _sqlite(Path(folder), "answers") as store:
            report["sqlite"] = {"answer_overhead": answer_overhead(store, answers=answers)}
        with _sqlite(Path(folder), "verify") as store:
            report["sqlite"]["verify"] = verify_time(store.database, records=verify_records)
    if postgres_url is None:
        return report
    probe = Database.open(postgres_url, connect_timeout_seconds=2)
    try:
        probe.ping()
    except Exception as exc:  # the benchmark says why the PostgreSQL half is missing
        report["postgresql"] = {"skipped": f"no server answers at {probe.safe_url}: {type(exc).__name__}"}
        return report
    finally:
        probe.dispose()
    with _postgres(postgres_url) as store:
        report["postgresql"] = {"answer_overhead": answer_overhead(store, answers=answers)}
    with _postgres(postgres_url) as store:
        report["postgresql"]["verify"] = verify_time(store.database, records=verify_records)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=300, help="answers timed per backend")
    parser.add_argument("--verify-records", type=int, default=100_000, help="records in the verified chain")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="'' to skip PostgreSQL")
    args = parser.parse_args()
    print(
        json.dumps(
            measure(answers=args.answers, verify_records=args.verify_records, postgres_url=args.postgres_url or None),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
