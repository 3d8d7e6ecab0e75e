"""What review costs the answer path: the audit append alone vs. the append with the answer's text and,
for some answers, a review item, in the same transaction.

Both sinks write the same typical answer records (benchmarks.audit.sample_answer,
with a 400-character answer; every ``--flag-every``-th one an extractive
fallback, so it is queued) to a fresh store, alternating in rounds so that
disk and server noise fall on both alike; p50/p95/mean per answer on SQLite
(a file, WAL, synchronous=FULL) and PostgreSQL (when ``--postgres-url`` answers).

    .venv/bin/python -m benchmarks.review_sink                 # SQLite and the local PostgreSQL
    .venv/bin/python -m benchmarks.review_sink --answers 500 --flag-every 10
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks.audit import DEFAULT_POSTGRES, _percentiles, sample_answer
from retrieval.audit import AnswerAudit
from store.audit_log import SqlAuditSink
from store.database import Database, sqlite_url
from store.review_sink import ReviewingAuditSink
from store.state import Store, open_store

ANSWER = ("Q3 revenue in EMEA was 12.4 million euros, up 8 percent on the year [1]. " * 6)[:400]


def _answers(count: int, flag_every: int) -> list[AnswerAudit]:
    made = []
    for number in range(count):
        audit = replace(sample_answer(number), answer=ANSWER, id=uuid.uuid4().hex, at=time.time())
        if flag_every and number % flag_every == 0:
            audit = replace(audit, outcome="extractive_fallback")
        made.append(audit)
    return made


def _time(sink: Any, answers: list[AnswerAudit]) -> list[float]:
    samples = []
    for answer in answers:
        started = time.perf_counter()
        sink.record(answer)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure(store: Store, *, answers: int, flag_every: int, rounds: int = 4) -> dict[str, Any]:
    plain, reviewing = SqlAuditSink(log=store.audit), ReviewingAuditSink(log=store.audit, queue=store.review)
    _time(plain, _answers(20, 0))  # warm the pool and the chain head
    _time(reviewing, _answers(20, flag_every))
    per_round = max(1, answers // rounds)
    timed: dict[str, list[float]] = {"audit_only": [], "audit_plus_review": []}
    for _ in range(rounds):
        timed["audit_only"] += _time(plain, _answers(per_round, 0))
        timed["audit_plus_review"] += _time(reviewing, _answers(per_round, flag_every))
    result: dict[str, Any] = {name: _percentiles(samples) for name, samples in timed.items()}
    result["answers_per_sink"] = per_round * rounds
    result["queued_share"] = round(1 / flag_every, 3) if flag_every else 0.0
    result["extra_p50_ms"] = round(result["audit_plus_review"]["p50_ms"] - result["audit_only"]["p50_ms"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--answers", type=int, default=400)
    parser.add_argument("--flag-every", type=int, default=10, help="every Nth answer is queued for review")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(sqlite_url(Path(folder) / "state.db"))
        try:
            report["sqlite"] = measure(store, answers=args.answers, flag_every=args.flag_every)
        finally:
            store.close()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        store = open_store(args.postgres_url, schema=schema, connect_timeout_seconds=3)
    except Exception as exc:
        report["postgresql"] = f"skipped: {type(exc).__name__}"
    else:
        try:
            report["postgresql"] = measure(store, answers=args.answers, flag_every=args.flag_every)
        finally:
            store.close()
            admin = Database.open(args.postgres_url, connect_timeout_seconds=3)
            with admin.write_connection() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
