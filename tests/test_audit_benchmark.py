"""The audit benchmark runs end to end on a small scale, and reports what the issue asks for."""

from __future__ import annotations

from benchmarks.audit import measure
from tests.store_fixtures import POSTGRES_URL, postgres_unavailable


def test_the_audit_benchmark_reports_overhead_and_verify_time() -> None:
    report = measure(answers=5, verify_records=60, postgres_url=POSTGRES_URL)
    backends = ["sqlite"] if postgres_unavailable() else ["sqlite", "postgresql"]
    for backend in backends:
        overhead, verified = report[backend]["answer_overhead"], report[backend]["verify"]
        assert overhead["answers"] == 5 and 0 < overhead["per_answer"]["p50_ms"] <= overhead["per_answer"]["p95_ms"]
        assert verified["records"] == 60 and verified["verify_s_per_100k"] > 0
