"""Concurrent appends keep one chain: threads of one process, and separate processes (replicas)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from store.audit_verify import verify
from store.state import Store
from tests import store_fixtures
from tests.conftest import OTHER_TENANT, TENANT
from tests.store_fixtures import StoreTarget, sample_answer

target = store_fixtures.target
state_store = store_fixtures.state_store
REPO_ROOT = Path(__file__).resolve().parents[1]


def test_threads_appending_at_once_keep_one_chain(state_store: Store) -> None:
    threads, each = 8, 15
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(worker: int) -> None:
        try:
            start.wait()
            for number in range(each):
                if number % 5 == 0:  # admin actions and answers interleave in one chain
                    state_store.audit.record_admin_action(tenant_id=TENANT, actor=f"system:w{worker}", action="test")
                else:
                    state_store.audit_sink.record(sample_answer(worker * 1000 + number))
                state_store.audit_sink.record(sample_answer(worker * 1000 + number, tenant=OTHER_TENANT))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors, errors
    result = verify(state_store.database)
    assert result.ok, [p.describe() for p in result.problems]
    assert {c.chain: c.records for c in result.chains} == {TENANT: threads * each, OTHER_TENANT: threads * each}


_APPENDER = """
import sys
from store.state import open_store
url, schema, tenant, name, count = sys.argv[1], sys.argv[2] or None, sys.argv[3], sys.argv[4], int(sys.argv[5])
opened = open_store(url, schema=schema, migrate=False)
for number in range(count):
    opened.audit.record_admin_action(tenant_id=tenant, actor=f"system:{name}", action="test", detail={"n": number})
opened.close()
"""


def test_processes_appending_at_once_keep_one_chain(target: StoreTarget, state_store: Store) -> None:
    processes, each = 3, 25
    running = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, target.url, target.schema or "", TENANT, f"p{n}", str(each)],
            cwd=REPO_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    outcomes = [(process.communicate(timeout=180)[1], process.returncode) for process in running]
    for stderr, returncode in outcomes:
        assert returncode == 0, stderr[-2000:]
    result = verify(state_store.database)
    assert result.ok, [p.describe() for p in result.problems]
    assert result.records == processes * each
