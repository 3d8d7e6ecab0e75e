"""A "grounded" answer must answer the question asked, from a passage that says it (retrieval/support.py)."""

from __future__ import annotations

import pytest

from core.records import Passage
from retrieval.citations import check_citations
from retrieval.generation.extractive import ExtractiveGenerator, answer_units
from retrieval.lexicon import AnswerKind, expected_kind, figure_kinds, key_terms
from retrieval.prompts import ABSTAIN_ANSWER
from retrieval.support import answers_question, question_head

PER_DIEM = (
    "Brightwater pays a fixed daily allowance for meals. "
    "The per diem covers breakfast, lunch, dinner and tips.\n"
    "Region | Breakfast | Lunch | Dinner | Daily total\n"
    "United States, standard cities | $16 | $22 | $40 | $78\n"
    "United States, high-cost cities | $19 | $27 | $52 | $98"
)
FREIGHT_NOTE = (
    "Brightwater QBR notes - 21 October 2025 Volumes and service "
    "- Q3 volume: 486 tonnes, up 22 percent on Q3 2024. - On-time delivery: 96.2 percent."
)
REVENUE = "Q3 2025 Financial Results Notes Q3 2025 revenue was $38.42 million, up 31 percent year over year."


def passage(text: str, number: int = 1, *, title: str = "", section: str | None = None) -> Passage:
    return Passage(
        chunk_id=f"c{number}", doc_id=f"d{number}", source=f"s{number}", title=title, section=section, page=None,
        page_name=None, text=text, score=0.9,
    )  # fmt: skip


def test_a_tonnage_does_not_answer_a_question_about_revenue() -> None:
    verdict = answers_question("What was Brightwater's revenue in Q3 2025?", "486 tonnes [1].", [FREIGHT_NOTE])
    assert not verdict.supported


def test_a_freight_sentence_with_percentages_does_not_answer_revenue_either() -> None:
    answer = "Q3 volume: 486 tonnes, up 22 percent on Q3 2024 [1]."
    assert not answers_question("What was Brightwater's Q3 revenue?", answer, [FREIGHT_NOTE]).supported


def test_revenue_answered_from_the_results_passes() -> None:
    answer = "Q3 2025 revenue was $38.42 million [1]."
    assert answers_question("What was Brightwater's Q3 revenue?", answer, [REVENUE]).supported


def test_one_line_item_of_a_table_with_a_total_is_not_the_per_diem() -> None:
    assert not answers_question(
        "What is the travel per diem?", "The per diem is $40 per day [1].", [PER_DIEM]
    ).supported
    assert answers_question("What is the travel per diem?", "The per diem is $78 per day [1].", [PER_DIEM]).supported


def test_a_line_item_the_question_names_is_an_answer() -> None:
    assert answers_question("What is the dinner per diem in standard cities?", "Dinner: $40 [1].", [PER_DIEM]).supported


def test_the_passage_must_name_what_the_question_asks_about() -> None:
    text = "Brightwater Q3 2025 notes. Damage claims: 2 claims, both settled, $7,340 in total."
    verdict = answers_question("What was Brightwater's revenue in Q3 2025?", "Claims were $7,340 [1].", [text])
    assert not verdict.supported and "revenu" in verdict.reason


def test_an_answer_must_cite_a_passage() -> None:
    assert not answers_question("What is the per diem?", "It is $78.", [PER_DIEM]).supported


@pytest.mark.parametrize(
    "answer",
    [
        "What is the travel per diem [1]?",  # the question restated
        "The travel per diem comes from the passage [1].",
        "According to the document, the per diem is described in the source [1].",
    ],
)
def test_vacuous_answers_fail_the_citation_check(answer: str) -> None:
    check = check_citations(answer, passage_count=1, passage_texts=[PER_DIEM], question="What is the travel per diem?")
    assert not check.grounded


def test_stemmed_words_support_a_claim() -> None:
    text = "The Tidewater traffic planner replans every route every 250 ms."
    check = check_citations(
        "The planner replanned routes every 250 ms [1].", passage_count=1, passage_texts=[text], question="How often?"
    )
    assert check.grounded


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What was Brightwater's revenue in Q3 2025?", AnswerKind.MONEY),
        ("How many tonnes did Brightwater ship with Northwind in 2025?", AnswerKind.COUNT),
        ("How long is the online safety induction?", AnswerKind.DURATION),
        ("When is the weekly Atlas program review?", AnswerKind.WHEN),
        ("How much does Brightwater match on 401(k) contributions?", AnswerKind.AMOUNT),
        ("Which Slack channel do Atlas contractors use?", AnswerKind.OPEN),
    ],
)
def test_question_kinds(question: str, kind: AnswerKind) -> None:
    assert expected_kind(question) is kind


def test_figure_kinds_read_units_and_ignore_names() -> None:
    assert figure_kinds("Q3 volume: 486 tonnes, up 22 percent on Q3 2024, $7,340 and EUR 36") == [
        "mass", "percent", "year", "money", "money",
    ]  # fmt: skip


def test_a_money_question_is_not_answered_with_a_count_of_people() -> None:
    assert not answers_question(
        "How much is the weekly on-call stipend?", "Four people are on call each week [1].", ["on-call stipend rota"]
    ).supported


def test_a_count_question_is_not_answered_with_money() -> None:
    text = "Brightwater shipped robots with Northwind; damage claims were $7,340 in total."
    assert not answers_question("How many tonnes did Brightwater ship?", "Claims: $7,340 [1].", [text]).supported


def test_question_head_is_what_a_copula_question_asks_about() -> None:
    assert question_head("What was Brightwater's revenue in Q3 2025?") == "revenu"
    assert question_head("What is the travel per diem?") == "diem"
    assert question_head("Which app is used for multi-factor authentication?") is None  # a category, not a subject


def test_key_terms_are_stemmed() -> None:
    assert key_terms("reimbursed replans") == key_terms("reimburse replan")


def test_table_rows_become_header_cell_sentences() -> None:
    units = answer_units(PER_DIEM)
    assert "Region: United States, standard cities; Breakfast: $16; Lunch: $22; Dinner: $40; Daily total: $78" in units
    assert not any(unit.startswith("Region | Breakfast") for unit in units)


def test_extractive_answers_the_per_diem_with_the_row_and_its_total() -> None:
    per_diem = passage(PER_DIEM, title="Travel and Expense Policy", section="2. Meal per diem")
    answer = ExtractiveGenerator().answer(question="What is the travel per diem?", passages=[per_diem])
    assert "$78" in answer and "Daily total" in answer
    support = f"Travel and Expense Policy 2. Meal per diem {PER_DIEM}"
    assert answers_question("What is the travel per diem?", answer, [support]).supported


def test_extractive_abstains_rather_than_answer_revenue_from_a_freight_note() -> None:
    answer = ExtractiveGenerator().answer(
        question="What was Brightwater's Q3 revenue?", passages=[passage(FREIGHT_NOTE)]
    )
    assert (
        answer == ABSTAIN_ANSWER
        or not answers_question("What was Brightwater's Q3 revenue?", answer, [FREIGHT_NOTE]).supported
    )
