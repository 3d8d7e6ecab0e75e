"""A tiny run of the load test: it reports every figure, and nothing fails (no timing assertions)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from benchmarks.load import ENDPOINTS, MIXES, run_load
from benchmarks.load_driver import drive
from index.embedding import SentenceTransformerEmbedder


@pytest.fixture(scope="module")
def report(embedder: SentenceTransformerEmbedder) -> dict[str, Any]:
    return run_load(
        index="memory",
        corpus="synthetic",
        concurrencies=(1, 2),
        duration_s=0.3,
        warmup_s=0.1,
        profile_requests=2,
        embedder=embedder,
    )


def test_every_phase_reports_throughput_and_latency_without_errors(report: dict[str, Any]) -> None:
    assert [level["concurrency"] for level in report["levels"]] == [1, 2]
    for level in report["levels"]:
        floors = [level["embedder_only"], level["embedder_only_after"]]
        phases = [level[endpoint][mix] for endpoint in ENDPOINTS for mix in MIXES] + floors
        for figures in phases:
            assert figures["requests"] > 0
            assert figures["qps"] > 0
            assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
        for endpoint in ENDPOINTS:
            for mix in MIXES:
                assert level[endpoint][mix]["errors"] == 0, level[endpoint][mix]["error_kinds"]
        assert level["search_share_of_embedder"] > 0
    assert report["summary"]["errors"] == 0
    assert report["corpus"]["chunks"] > 0
    assert report["index"]["chunks"] == report["corpus"]["chunks"]


def test_tokens_are_validated_once_per_user_and_repeats_hit_the_query_cache(report: dict[str, Any]) -> None:
    principal, query = report["caches"]["principal"], report["caches"]["query_embedding"]
    assert principal["misses"] == len(report["users"])  # one validation per token, then hits
    assert principal["hits"] > 0
    assert query["hits"] > 0  # the repeat mix repeats questions


def test_profile_breaks_a_search_into_stages(report: dict[str, Any]) -> None:
    profile = report["profile_search"]
    for case in ("no_caches", "principal_cache_warm", "both_caches_warm_repeated_query"):
        stages = profile["stages_median_ms"][case]
        for stage in ("authenticate", "embed_query", "index_search", "audit_write", "server_total"):
            assert stages[stage] is not None and stages[stage] >= 0
    assert set(profile["authentication_split_median_ms"]) == set(report["users"])


def test_driver_refuses_an_address_that_is_not_loopback() -> None:
    plan = {"base_url": "http://192.0.2.1:8000", "tokens": ["t"], "stems": ["q"], "phases": []}
    with pytest.raises(ValueError, match="loopback"):
        asyncio.run(drive(plan))
