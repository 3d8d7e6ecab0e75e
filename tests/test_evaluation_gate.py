"""The CI gate: the sample company with the extractive generator, against the committed baseline.

Leakage must be 0 and the workflow metric ("resolved safely") must not fall below
evaluation/baseline.json, within evaluation/tolerances.toml. When a change is meant
to move the numbers, re-measure the baseline in the same commit (README: "How a
change is evaluated and accepted"), so the reviewer sees the change in the diff.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from clearance.evaluation.gate import load_tolerances, regressions
from clearance.evaluation.options import QueryCache
from clearance.evaluation.personas import load_personas
from clearance.evaluation.report import build_report
from clearance.evaluation.runner import run_set
from clearance.settings import GeneratorKind, GeneratorSettings, IndexSettings, IngestSettings, Mode, Settings
from index.embedding import SentenceTransformerEmbedder
from tests.conftest import REPO_ROOT

BASELINE = REPO_ROOT / "evaluation" / "baseline.json"
TOLERANCES = REPO_ROOT / "evaluation" / "tolerances.toml"


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("eval")
    settings = Settings(
        mode=Mode.DEVELOPMENT,
        data_dir=data,
        # Qdrant's engine in-process: the same results as qdrant-client's local mode here (the baseline was
        # measured with both), without its filter evaluation in Python, which would dominate this test.
        index=IndexSettings(location=f"edge:{data / 'edge'}"),
        ingest=IngestSettings(isolate_parsing=False),
        generator=GeneratorSettings(kind=GeneratorKind.EXTRACTIVE),
    )
    # Quality only: the query-embedding cache changes timings, never answers, and makes the run faster.
    result = run_set(load_personas(), settings, embedder=embedder, query_cache=QueryCache.AS_CONFIGURED)
    return build_report(result, duration_s=0.0)


def test_sample_company_leaks_nothing_and_meets_the_committed_baseline(sample_report: dict[str, Any]) -> None:
    overall = sample_report["metrics"]["overall"]
    assert overall["leaked_chunks"] == 0 and overall["disclosures"] == 0 and overall["errors"] == 0
    baseline = json.loads(BASELINE.read_text(encoding="utf-8"))
    assert regressions(sample_report, baseline, load_tolerances(TOLERANCES)) == []


def test_every_persona_is_measured_on_questions_it_may_and_may_not_answer(sample_report: dict[str, Any]) -> None:
    personas = sample_report["metrics"]["personas"]
    users = json.loads((REPO_ROOT / "samples" / "users.json").read_text(encoding="utf-8"))["users"]
    assert set(personas) == {u["name"] for u in users}
    for name, metrics in personas.items():
        assert metrics["answerable"] > 0 and metrics["unanswerable"] > 0, name
        assert metrics["resolved_safely"] is not None, name


def test_a_leak_or_a_lower_workflow_metric_fails_the_gate(sample_report: dict[str, Any], tmp_path: Path) -> None:
    """The gate can fail: the same report made worse in the two ways CI must refuse."""
    baseline = json.loads(BASELINE.read_text(encoding="utf-8"))
    worse = copy.deepcopy(sample_report)
    worse["metrics"]["overall"]["leaked_chunks"] = 1
    worse["metrics"]["overall"]["resolved_safely"] = round(baseline["metrics"]["overall"]["resolved_safely"] - 0.01, 4)
    worse["metrics"]["personas"]["dan"]["resolved_safely"] = 0.0
    found = regressions(worse, baseline, load_tolerances(TOLERANCES))
    assert any(f.startswith("overall.leaked_chunks: 1 is above the limit 0") for f in found), found
    assert any(f.startswith("overall.resolved_safely: fell from") for f in found), found
    assert any(f.startswith("personas.dan.resolved_safely: fell from") for f in found), found
