"""Evaluation runs through the real product: BEIR and ClapNQ loaders, leak detection, the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clearance.cli import app
from clearance.evaluation.access import AccessReference
from clearance.evaluation.beir import load_beir
from clearance.evaluation.clapnq import ClapCorpus, ClapDocument, load_clapnq
from clearance.evaluation.items import EVALUATOR, EvalItem, EvalSet, SetKind, single_reader_directory
from clearance.evaluation.report import build_report
from clearance.evaluation.runner import run_set
from clearance.settings import IndexSettings, IngestSettings, Mode, Settings
from index.embedding import SentenceTransformerEmbedder
from tests.conftest import SHARED_DATA

DOCS = {
    "d1": ("Sourdough starter", "A sourdough starter is a culture of wild yeast and lactic acid bacteria."),
    "d2": ("Tidal power", "Tidal power converts the energy of rising and falling sea levels into electricity."),
    "d3": ("Honeybee dance", "Honeybees perform a waggle dance to tell hive mates where flowers with nectar are."),
    "d4": ("Volcanic glass", "Obsidian is a volcanic glass formed when lava cools too quickly for crystals to grow."),
    "d5": ("Chess openings", "The Sicilian Defence is a chess opening that begins with the moves e4 and c5."),
}
QUERIES = {
    "q1": ("How do bees tell each other where food is?", {"d3": 1}),
    "q2": ("What rock forms when lava cools very fast?", {"d4": 1}),
    "q3": ("electricity from ocean tides", {"d2": 2, "d1": 0}),
}


def write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    corpus = [{"_id": k, "title": t, "text": x} for k, (t, x) in DOCS.items()]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n", encoding="utf-8")
    queries = [{"_id": k, "text": q, "metadata": {}} for k, (q, _) in QUERIES.items()]
    queries.append({"_id": "q9", "text": "a query without judgments", "metadata": {}})
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries), encoding="utf-8")
    rows = ["query-id\tcorpus-id\tscore"]
    rows += [f"{q}\t{d}\t{g}" for q, (_, rel) in QUERIES.items() for d, g in rel.items()]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def eval_settings(tmp_path: Path) -> Settings:
    # The operator's data folder must stay untouched: the run moves data and index into a scratch folder.
    return Settings(
        mode=Mode.DEVELOPMENT,
        data_dir=tmp_path / "operator-data",
        index=IndexSettings(location=":memory:"),
        ingest=IngestSettings(isolate_parsing=False),
    )


def test_beir_set_is_ingested_for_one_synthetic_reader_and_ranked(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    eval_set = load_beir(write_beir(tmp_path / "mini"), split="test")
    assert [i.question_id for i in eval_set.items] == ["q1", "q2", "q3"]  # unjudged and zero-grade entries dropped
    assert eval_set.items[2].relevant == {"d2": 2}
    result = run_set(eval_set, eval_settings(tmp_path), embedder=embedder)
    overall = build_report(result, duration_s=0.0)["metrics"]["overall"]
    assert overall["ndcg@10"] == 1.0 and overall["recall@100"] == 1.0 and overall["mrr"] == 1.0
    assert overall["leaked_chunks"] == 0 and overall["resolved_safely"] is None and overall["answer_correct"] is None
    assert result.run["documents_checked_for_leaks"] == len(DOCS)
    assert not (tmp_path / "operator-data").exists()


def test_a_chunk_the_asker_may_not_read_is_reported_as_a_leak(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """The harness's own leak detection can fail: a document the set declares off limits is flagged everywhere."""
    documents = (
        ClapDocument(path="0000-tides.md", title="Tidal power", text=DOCS["d2"][1]),
        ClapDocument(path="0001-bees.md", title="Honeybee dance", text=DOCS["d3"][1]),
    )
    question = EvalItem(
        id=f"bees@{EVALUATOR}",
        question_id="bees",
        persona=EVALUATOR,
        question="How do honeybees tell hive mates where flowers are?",
        relevant={"0001-bees.md": 1},
        facts=("waggle dance",),
        forbidden_sources=frozenset({"0001-bees.md"}),
    )
    eval_set = EvalSet(
        name="leak check",
        kind=SetKind.CLAPNQ,
        items=(question,),
        corpus=ClapCorpus(documents=documents),
        directory=single_reader_directory(),
    )
    observation = run_set(eval_set, eval_settings(tmp_path), embedder=embedder).observations[0]
    assert {leak.where for leak in observation.leaks} == {"search", "answer", "citation"}
    assert all(leak.source == "0001-bees.md" for leak in observation.leaks)
    assert build_report_of(observation)["resolved_safely"] == 0.0


def build_report_of(observation: Any) -> dict[str, Any]:
    from clearance.evaluation.metrics import aggregate
    from clearance.evaluation.scoring import score

    return aggregate([score(observation)])


def test_stored_acl_reference_refuses_other_callers_and_other_tenants(runtime: Any, tmp_path: Path, idp: Any) -> None:
    from acl.principal import Principal
    from ingest.source import FilesystemSource
    from tests.conftest import G_FINANCE, OTHER_TENANT, TENANT, write_acl, write_doc

    corpus = tmp_path / "corpus"
    write_doc(corpus, "finance/q3.md", "# Q3\n\nRevenue was 38 million.")
    write_acl(corpus / "finance", allow=[f"group:{G_FINANCE}"])
    runtime.pipeline.run(FilesystemSource(root=corpus, tenant_id=TENANT))
    reference = AccessReference(runtime.index, tenant_ids=[TENANT, OTHER_TENANT])
    (document,) = runtime.index.documents(tenant_id=TENANT)
    someone, finance = "a0000000-0000-4000-8000-000000000009", frozenset({G_FINANCE})
    reader = Principal(tenant_id=TENANT, object_id=someone, groups=finance)
    outsider = Principal(tenant_id=TENANT, object_id=someone)
    stranger = Principal(tenant_id=OTHER_TENANT, object_id=someone, groups=finance)
    assert reference.refusal(reader, document.doc_id) is None
    assert reference.refusal(outsider, document.doc_id) == "stored ACL does not permit the caller"
    assert reference.refusal(stranger, document.doc_id) == "document of another tenant"
    assert reference.refusal(reader, "00000000-0000-4000-8000-000000000000") == "document in no tenant's listing"


@pytest.mark.skipif(not (SHARED_DATA / "clapnq").is_dir(), reason=f"ClapNQ not found under {SHARED_DATA}")
def test_clapnq_answerable_and_unanswerable_questions_run_through_the_pipeline(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    eval_set = load_clapnq(SHARED_DATA / "clapnq", limit=3)
    assert sum(i.answerable for i in eval_set.items) == 3 and len(eval_set.items) == 6
    assert all(i.references for i in eval_set.items if i.answerable)
    result = run_set(eval_set, eval_settings(tmp_path), embedder=embedder)
    assert result.ingest.how == "pipeline" and result.ingest.documents == 6
    overall = build_report(result, duration_s=0.0)["metrics"]["overall"]
    assert overall["leaked_chunks"] == 0 and overall["errors"] == 0
    assert overall["recall@5"] == 1.0  # six passages: each answerable question's own is found
    assert overall["abstention_recall"] is not None and overall["token_f1"] is not None


@pytest.mark.skipif(not (SHARED_DATA / "scifact").is_dir(), reason=f"SciFact not found under {SHARED_DATA}")
def test_scifact_train_queries_and_judgments_load_in_place() -> None:
    eval_set = load_beir(SHARED_DATA / "scifact", split="train")
    assert len(eval_set.items) == 505 and sum(len(i.relevant) for i in eval_set.items) == 564
    assert not eval_set.generate and eval_set.search_depth == 100
    with pytest.raises(FileNotFoundError, match=r"test\.tsv"):
        load_beir(SHARED_DATA / "scifact", split="test")


def test_eval_command_writes_the_report_and_exits_1_on_a_regression(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "mini")
    out = tmp_path / "reports" / "mini.json"
    better = {
        "set": {"kind": "beir", "name": "BEIR mini (test)", "items": 3},
        "metrics": {"overall": {"ndcg@10": 1.5, "leaked_chunks": 0}, "personas": {}},
    }
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(better), encoding="utf-8")
    env = {"CLEARANCE_DATA_DIR": str(tmp_path / "data"), "CLEARANCE_INGEST__ISOLATE_PARSING": "false"}
    runner = CliRunner()
    saved = tmp_path / "new-baseline.json"
    arguments = ["--out", str(out), "--baseline", str(baseline), "--save-baseline", str(saved)]
    result = runner.invoke(app, ["eval", "--beir", str(folder), *arguments], env=env)
    assert result.exit_code == 1, result.output
    assert "overall.ndcg@10: fell from 1.5 to 1.0" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["metrics"]["overall"]["ndcg@10"] == 1.0 and len(report["items"]) == 3
    assert out.with_suffix(".md").is_file()
    summary = json.loads(saved.read_text(encoding="utf-8"))
    assert "items" not in summary and summary["metrics"] == report["metrics"]
    refused = runner.invoke(app, ["eval", "--beir", str(folder)], env={**env, "CLEARANCE_MODE": "production"})
    assert refused.exit_code == 2 and "development mode only" in refused.output
