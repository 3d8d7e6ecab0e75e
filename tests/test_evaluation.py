"""The evaluation harness's parts: metrics, scoring, the gate, the persona set, the judge, the report."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from clearance.evaluation.access import Leak
from clearance.evaluation.gate import Check, load_tolerances, regressions
from clearance.evaluation.items import EvalItem, EvalSet, IngestSummary, SetKind
from clearance.evaluation.judge import OpenAICompatibleJudge
from clearance.evaluation.metrics import contains_fact, ndcg_at, percentile, recall_at, reciprocal_rank, token_scores
from clearance.evaluation.observation import Observation
from clearance.evaluation.personas import load_personas
from clearance.evaluation.report import build_report, write_report
from clearance.evaluation.runner import RunResult
from clearance.evaluation.scoring import score
from retrieval.prompts import ABSTAIN_ANSWER
from tests.conftest import REPO_ROOT

TOLERANCES = REPO_ROOT / "evaluation" / "tolerances.toml"
USERS = {u["name"] for u in json.loads((REPO_ROOT / "samples" / "users.json").read_text(encoding="utf-8"))["users"]}


def item(*, relevant: dict[str, int] | None = None, facts: tuple[str, ...] = ("$78",), **extra: Any) -> EvalItem:
    relevant = {"travel.pdf": 1} if relevant is None else relevant
    return EvalItem(
        id="q@alice",
        question_id="q",
        persona="alice",
        question="What is the per diem?",
        relevant=relevant,
        facts=facts if relevant else (),
        **extra,
    )


# -- metrics ------------------------------------------------------------------------------------------


def test_ndcg_at_10_matches_a_hand_computed_value() -> None:
    # DCG = 2/log2(3) + 1/log2(4); ideal = 2/log2(2) + 1/log2(3).
    assert ndcg_at(["a", "b", "c"], {"b": 2, "c": 1}) == pytest.approx(1.76186 / 2.63093, abs=1e-4)
    assert ndcg_at(["b", "c"], {"b": 2, "c": 1}) == pytest.approx(1.0)
    assert ndcg_at(["x"], {"b": 1}) == 0.0


def test_recall_and_reciprocal_rank_count_documents_not_chunks() -> None:
    assert recall_at(["a", "b", "c"], {"c": 1, "d": 1}, 2) == 0.0
    assert recall_at(["a", "b", "c"], {"c": 1, "d": 1}, 3) == 0.5
    assert reciprocal_rank(["a", "b", "c"], {"c": 1}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["a"], {"c": 1}) == 0.0


def test_facts_are_found_whatever_the_case_spacing_and_citations() -> None:
    assert contains_fact("The per diem is  $78 [1].", ["$78"])
    assert contains_fact("Use HARBORCTL fleet\npause [2].", ["harborctl fleet pause"])
    assert not contains_fact("The per diem is $98 [1].", ["$78"])
    assert not contains_fact("anything", [""])


def test_token_f1_and_recall_ignore_articles_punctuation_and_citations() -> None:
    f1, recall = token_scores("The limit is 14 characters [1].", "A passphrase of 14 characters")
    assert recall == pytest.approx(2 / 4) and 0 < f1 < 1
    assert token_scores(ABSTAIN_ANSWER, "14 characters") == (0.0, 0.0)


def test_percentiles_interpolate() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([5.0], 95) == 5.0 and percentile([], 50) is None


# -- scoring: the workflow metric -------------------------------------------------------------------


def test_a_correct_answer_cited_from_the_answering_document_is_resolved() -> None:
    s = score(
        Observation(
            item=item(),
            ranking=("travel.pdf",),
            answer="The daily total is $78 [1].",
            outcome="grounded",
            citations=((1, "travel.pdf"),),
            passage_texts=("Travel policy. The daily total for standard cities is $78.",),
        )
    )
    assert s.correct and s.correctly_cited and s.resolved_safely and s.faithfulness == 1.0


def test_the_right_fact_cited_from_another_document_is_not_resolved() -> None:
    s = score(
        Observation(
            item=item(),
            ranking=("travel.pdf", "other.md"),
            answer="The daily total is $78 [1].",
            outcome="grounded",
            citations=((1, "other.md"),),
        )
    )
    assert s.correct and not s.correctly_cited and not s.resolved_safely and s.cited_relevant == 0


def test_unanswerable_items_are_resolved_only_by_an_abstention() -> None:
    unanswerable = item(relevant={}, withheld_facts=("$385,000",))
    abstained = score(Observation(item=unanswerable, answer=ABSTAIN_ANSWER, outcome="abstained"))
    answered = score(Observation(item=unanswerable, answer="Something else [1].", outcome="grounded"))
    assert abstained.resolved_safely and abstained.abstained
    assert not answered.resolved_safely and answered.abstained is False


def test_a_leak_or_a_withheld_fact_fails_the_item_even_when_it_abstained() -> None:
    unanswerable = item(relevant={}, withheld_facts=("$385,000",))
    leak = Leak(chunk_id="c1", source="finance/board.docx", where="search", reason="stored ACL does not permit")
    leaked = score(Observation(item=unanswerable, answer=ABSTAIN_ANSWER, outcome="abstained", leaks=(leak,)))
    disclosed = score(Observation(item=unanswerable, answer="The CEO earns $385,000 [1].", outcome="grounded"))
    assert not leaked.resolved_safely and leaked.leaks == 1
    assert not disclosed.resolved_safely and disclosed.disclosed


def test_an_error_fails_the_item() -> None:
    s = score(Observation(item=item(), error="AuthenticationError: token expired"))
    assert s.error and s.resolved_safely is False and s.recall[5] == 0.0


def test_retrieval_only_items_get_ranking_metrics_and_no_verdict() -> None:
    s = score(Observation(item=item(), ranking=("x", "travel.pdf")))
    assert s.answered is None and s.resolved_safely is None and s.mrr == 0.5


# -- the gate ---------------------------------------------------------------------------------------


def report(resolved: float = 0.8, leaked: int = 0, alice: float = 0.8, items: int = 14) -> dict[str, Any]:
    def group(value: float) -> dict[str, Any]:
        return {"resolved_safely": value, "leaked_chunks": leaked, "recall@5": 0.9, "judged_correct": None}

    return {
        "set": {"kind": "personas", "name": "sample company personas", "items": items},
        "metrics": {"overall": group(resolved), "personas": {"alice": group(alice), "bob": group(resolved)}},
    }


CHECKS = [
    Check(metric="overall.leaked_chunks", at_most=0),
    Check(metric="overall.resolved_safely", tolerance=0.0),
    Check(metric="personas.*.resolved_safely", tolerance=0.02),
    Check(metric="overall.judged_correct", tolerance=0.0),
]


def test_the_same_or_a_better_report_passes_the_gate() -> None:
    assert regressions(report(), report(), CHECKS) == []
    assert regressions(report(resolved=0.9, alice=0.95), report(), CHECKS) == []


def test_a_worse_report_fails_the_gate_naming_each_regression() -> None:
    found = regressions(report(resolved=0.79, leaked=2, alice=0.7), report(), CHECKS)
    assert any(f.startswith("overall.leaked_chunks: 2 is above the limit") for f in found)
    assert any(f.startswith("overall.resolved_safely: fell from 0.8 to 0.79") for f in found)
    assert any(f.startswith("personas.alice.resolved_safely: fell") for f in found)
    assert not any("personas.bob" in f for f in found)


def test_a_metric_that_disappears_or_loses_its_value_is_a_regression() -> None:
    new = report()
    del new["metrics"]["personas"]["alice"]["resolved_safely"]
    new["metrics"]["overall"]["resolved_safely"] = None
    found = regressions(new, report(), CHECKS)
    assert "personas.alice.resolved_safely: missing from the report" in found
    assert any(f.startswith("overall.resolved_safely: no value") for f in found)


def test_a_baseline_of_another_set_cannot_pass() -> None:
    assert regressions(report(items=15), report(), CHECKS)[0].startswith("set items:")


def test_a_check_naming_no_metric_fails_rather_than_passing_silently() -> None:
    assert regressions(report(), report(), [Check(metric="overall.recal@5", tolerance=0.0)]) == [
        "overall.recal@5: no such metric in the report or the baseline"
    ]


def test_committed_tolerances_hold_leakage_at_zero_and_the_workflow_metric_at_the_baseline() -> None:
    checks = {c.metric: c for c in load_tolerances(TOLERANCES)}
    assert checks["overall.leaked_chunks"].at_most == 0
    assert checks["overall.disclosures"].at_most == 0
    assert checks["overall.resolved_safely"].tolerance == 0.0


def test_tolerances_without_checks_or_with_unknown_keys_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing\n", encoding="utf-8")
    typo = tmp_path / "typo.toml"
    typo.write_text('[[check]]\nmetric = "overall.mrr"\ntolerence = 0.1\n', encoding="utf-8")
    for path in (empty, typo):
        with pytest.raises(ValueError):
            load_tolerances(path)


# -- the persona set ------------------------------------------------------------------------------


def test_persona_set_has_80_questions_over_every_sample_user() -> None:
    entries = json.loads((REPO_ROOT / "samples" / "questions.json").read_text(encoding="utf-8"))
    assert len(entries) >= 80
    personas = load_personas()
    assert {i.persona for i in personas.items} == USERS
    for user in USERS:
        mine = [i for i in personas.items if i.persona == user]
        assert any(i.answerable for i in mine) and any(not i.answerable for i in mine), user


def test_persona_set_holds_follow_ups_asked_after_their_first_turn() -> None:
    items = load_personas().items
    follow_ups = [i for i in items if i.follow_up_to]
    assert len({i.question_id for i in follow_ups}) >= 5
    order = {i.id: n for n, i in enumerate(items)}
    for follow_up in follow_ups:
        assert order[f"{follow_up.follow_up_to}@{follow_up.persona}"] < order[follow_up.id]


def test_the_same_question_has_a_different_right_answer_for_different_users() -> None:
    items = {i.id: i for i in load_personas().items}
    dan, bob, carol = (items[f"atlas-pilot-size-plan@{u}"] for u in ("dan", "bob", "carol"))
    assert dan.facts == ("4 Atlas robots",) and "4 pilot units" in dan.withheld_facts
    assert bob.facts == ("4 pilot units",) and bob.forbidden_sources == {"projects/atlas/atlas-launch-plan.pptx"}
    assert set(carol.relevant) == {"projects/atlas/atlas-launch-plan.pptx", "projects/atlas/atlas-budget.xlsx"}
    erin = items["atlas-sacramento-plan@erin"]
    assert erin.relevant == {"qbr-notes-brightwater.eml": 1}  # her own tenant's document answers her


def test_limit_keeps_the_turns_and_variants_a_kept_question_needs() -> None:
    entries = json.loads((REPO_ROOT / "samples" / "questions.json").read_text(encoding="utf-8"))
    follow_up = next(n for n, e in enumerate(entries) if e.get("follow_up_to"))
    kept = load_personas(limit=follow_up + 1, personas=["alice"])
    assert entries[follow_up]["follow_up_to"] in {i.question_id for i in kept.items}
    with pytest.raises(ValueError, match="nobody"):
        load_personas(personas=["nobody"])


# -- the judge (an OpenAI-compatible server on loopback) -------------------------------------------


class _JudgeStub(BaseHTTPRequestHandler):
    reply: ClassVar[str] = "CORRECT"
    status: ClassVar[int] = 200
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        payload = {
            "id": "j1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": type(self).reply}, "finish_reason": "stop"}
            ],
        }
        data = json.dumps(payload if type(self).status == 200 else {"error": {"message": "down"}}).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture()
def judge_stub() -> Iterator[tuple[str, type[_JudgeStub]]]:
    handler = type("Stub", (_JudgeStub,), {"reply": "CORRECT", "status": 200, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    server.shutdown()
    server.server_close()


def test_judge_verdicts_come_from_the_model_and_failures_give_none(
    judge_stub: tuple[str, type[_JudgeStub]],
) -> None:
    url, stub = judge_stub
    judge = OpenAICompatibleJudge(base_url=url, api_key="", model="judge-model", timeout_seconds=5)

    def grade() -> bool | None:
        return judge.grade(question="Per diem?", answer="It is $78 [1].", references=["The per diem is $78."])

    assert grade() is True
    stub.reply = "Incorrect."
    assert grade() is False
    stub.reply = "It depends on the city"
    assert grade() is None
    stub.status = 500
    assert grade() is None
    assert judge.failures == 2
    sent = stub.requests[0]["messages"][1]["content"]
    assert "The per diem is $78." in sent and "It is $78 [1]." in sent


# -- the report ------------------------------------------------------------------------------------


def test_report_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    leak = Leak(chunk_id="c9", source="hr/case.eml", where="citation", reason="stored ACL does not permit the caller")
    observations = (
        Observation(
            item=item(),
            ranking=("travel.pdf",),
            answer="It is $78 [1].",
            outcome="grounded",
            citations=((1, "travel.pdf"),),
            timings_ms={"auth": 1.0, "embed": 8.0, "search": 3.0, "generate": 0.5},
        ),
        Observation(
            item=item(relevant={}),
            ranking=("hr/case.eml",),
            answer="Derek [1].",
            outcome="grounded",
            leaks=(leak,),
            timings_ms={"auth": 1.2, "embed": 9.0, "search": 4.0, "generate": 0.4},
        ),
    )
    items = tuple(o.item for o in observations)
    eval_set = EvalSet(name="tiny", kind=SetKind.PERSONAS, items=items, corpus=_NoCorpus())
    result = RunResult(
        eval_set=eval_set,
        observations=observations,
        ingest=IngestSummary(documents=2, chunks=2, seconds=0.1, how="pipeline"),
        run={"generator": "extractive", "prompts": ["grounded-answer/v1"], "index": "memory", "retrieval": {}},
    )
    built = build_report(result, duration_s=1.0)
    assert built["metrics"]["overall"]["leaked_chunks"] == 1
    assert built["metrics"]["overall"]["resolved_safely"] == 0.5
    assert built["items"][1]["leaks"][0]["reason"] == "stored ACL does not permit the caller"
    paths = write_report(copy.deepcopy(built), tmp_path / "out" / "report.json")
    assert json.loads(paths[0].read_text(encoding="utf-8"))["metrics"] == built["metrics"]
    markdown = paths[1].read_text(encoding="utf-8")
    assert "**Resolved safely: 0.500**" in markdown and "Leaked chunks: **1**" in markdown
    assert "| q@alice | grounded | Derek [1]. | leak |" in markdown
    plots = [p for p in paths if p.suffix == ".png"]
    assert plots and all(p.stat().st_size > 1000 and f"]({p.name})" in markdown for p in plots)


class _NoCorpus:
    def ingest(self, runtime: Any) -> IngestSummary:
        raise AssertionError("not ingested in this test")
