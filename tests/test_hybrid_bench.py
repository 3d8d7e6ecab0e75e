"""The retrieval-modes benchmark: its metric, its BEIR reader, and one run end to end on a tiny set.

The real run reads SciFact from the shared data (minutes of embedding); here a
three-document BEIR folder and the congruence suite's hashing embedder exercise
the same code path through the index port.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from benchmarks.retrieval_modes import default_data_dir, load_beir, ndcg_at, recall_at, run
from tests.test_index_congruence import DIM, embed


class HashingEmbedder:
    """The congruence suite's deterministic word-hashing vectors behind the Embedder port."""

    dimension = DIM
    fingerprint = f"hashing-test/{DIM}"

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [list(embed(text)) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return list(embed(text))


def test_ndcg_matches_a_hand_computed_ranking() -> None:
    relevant = {"a": 1, "b": 1}
    assert ndcg_at(["a", "b", "c"], relevant) == pytest.approx(1.0)
    # Relevant at ranks 2 and 3: (1/log2(3) + 1/log2(4)) / (1 + 1/log2(3)).
    assert ndcg_at(["x", "a", "b"], relevant) == pytest.approx((1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3)))
    assert ndcg_at(["x", "y"], relevant) == 0.0
    assert recall_at(["x", "a"], relevant) == 0.5


def write_beir(folder: Path) -> Path:
    corpus = [
        {"_id": "d1", "title": "Aspirin and stroke", "text": "Low dose aspirin lowers the risk of stroke."},
        {"_id": "d2", "title": "Vitamin D", "text": "Vitamin D supplements do not prevent fractures."},
        {"_id": "d3", "title": "Sleep", "text": "Short sleep is linked to obesity in children."},
    ]
    queries = [
        {"_id": "q1", "text": "aspirin reduces stroke risk"},
        {"_id": "q2", "text": "vitamin D prevents fractures"},
        {"_id": "q3", "text": "a query without judgments"},
    ]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(row) for row in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(row) for row in queries), encoding="utf-8")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n", encoding="utf-8")
    return folder


def test_beir_reader_keeps_only_judged_queries(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path / "set"))
    assert [doc_id for doc_id, _, _ in data.documents] == ["d1", "d2", "d3"]
    assert data.queries == {"q1": "aspirin reduces stroke risk", "q2": "vitamin D prevents fractures"}


@pytest.mark.parametrize("implementation", ["edge", "qdrant-local"])
def test_one_run_reports_every_mode_side_by_side(tmp_path: Path, implementation: str) -> None:
    report = run(
        data_dir=write_beir(tmp_path / "set"),
        implementation=implementation,
        cache_dir=tmp_path / "cache",
        embedder=HashingEmbedder(),
        model_tag="hashing-64",
    )
    assert set(report["modes"]) == {"dense", "sparse", "hybrid"}
    assert report["queries"] == 2 and report["documents"] == 3
    # Each query shares its key words with exactly its judged abstract: BM25 ranks it first.
    assert report["modes"]["sparse"]["ndcg_at_10"] == pytest.approx(1.0)
    assert all(0.0 <= mode["ndcg_at_10"] <= 1.0 for mode in report["modes"].values())
    assert list((tmp_path / "cache").glob("*.npy")), "document vectors are cached for the next run"


def test_shared_scifact_is_where_the_benchmark_looks() -> None:
    folder = default_data_dir()
    if not (folder / "corpus.jsonl").exists():
        pytest.skip(f"shared data absent ({folder}): set CLEARANCE_SHARED_DATA to check the real set's layout")
    data = load_beir(folder)
    assert len(data.documents) == 5183 and len(data.queries) == 505
