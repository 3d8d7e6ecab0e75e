"""What versioned prompts cost each answer: the read of the tenant's active version, p50/p95, per backend.

Every answer asks the store which version its tenant has active (one primary-key
read; the text comes from a cache of immutable versions). This times that read
through the real store on SQLite (a file, WAL) and on PostgreSQL (when
``--postgres-url`` answers), for a tenant with no activation (the built-in
default) and for one with an activated version, next to the fixed template the
service used before (no read at all) and the audit append every answer also pays.

    .venv/bin/python -m benchmarks.prompt_source
    .venv/bin/python -m benchmarks.prompt_source --reads 5000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from retrieval.prompt_template import PromptTemplate
from retrieval.prompts import GROUNDED_ANSWER, GROUNDED_ANSWER_V1, FixedPrompt
from store.database import Database, sqlite_url
from store.prompts import Acceptance, Gate
from store.state import Store, open_store

TENANT = "d1f72fea-086f-4448-9dce-2f71deb8ef72"
DEFAULT_TENANT = "d397c693-4a32-47ad-9ee4-9ad621108730"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def timed(call: Callable[[], object], reads: int) -> dict[str, float]:
    for _ in range(min(50, reads)):
        call()  # warm the pool and the cache
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 4),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 4),
    }


def measure(store: Store, reads: int) -> dict[str, Any]:
    v2 = PromptTemplate(
        name=GROUNDED_ANSWER, version="bench-v2", system=GROUNDED_ANSWER_V1.system.replace("four", "three")
    )
    store.prompts.add(v2, tenant_id=TENANT, actor="bench")
    forced = Acceptance(gate=Gate.FORCED, reason="benchmark")
    store.prompts.activate(tenant_id=TENANT, name=GROUNDED_ANSWER, version="bench-v2", actor="bench", acceptance=forced)
    source = store.prompt_source
    fixed = FixedPrompt()
    return {
        "fixed_template": timed(lambda: fixed.active(TENANT, GROUNDED_ANSWER), reads),
        "store_default": timed(lambda: source.active(DEFAULT_TENANT, GROUNDED_ANSWER), reads),
        "store_activated": timed(lambda: source.active(TENANT, GROUNDED_ANSWER), reads),
        "audit_ping": timed(store.audit.ping, reads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(sqlite_url(Path(folder) / "state.db"))
        try:
            results["sqlite"] = measure(store, args.reads)
        finally:
            store.close()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        store = open_store(args.postgres_url, schema=schema, connect_timeout_seconds=3)
    except Exception as exc:  # no server: report SQLite alone
        results["postgresql"] = f"skipped: {type(exc).__name__}"
    else:
        try:
            results["postgresql"] = measure(store, args.reads)
        finally:
            store.close()
            admin = Database.open(args.postgres_url)
            with admin.write_connection() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
