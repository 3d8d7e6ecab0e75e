"""The general rules that make an answer to a question the caller cannot answer an abstention.

Each rule is shown refusing the wrong answer and keeping the right one: a rule
that refused both would raise abstention recall by losing correct answers.
"""

from __future__ import annotations

from core.records import Passage
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.lexicon import figure_kinds, key_terms
from retrieval.prompts import ABSTAIN_ANSWER
from retrieval.support import (
    MIN_SUBJECT_SHARE,
    answers_question,
    counted_thing,
    question_head,
    right_kind,
    subject_share,
)


def passage(text: str, *, title: str = "Notes", section: str | None = None, number: int = 1) -> Passage:
    return Passage(
        chunk_id=f"c{number}",
        doc_id=f"d{number}",
        source=f"notes-{number}.md",
        title=title,
        section=section,
        page=None,
        page_name=None,
        text=text,
        score=0.7,
    )


def test_figures_repeated_from_the_question_are_no_answer() -> None:
    question = "When does wave 3 of the TernOS 4.2.0 rollout start?"
    assert not right_kind(question, "TernOS 4.2.0 is rolling out, with faster aisles and fewer false stops").supported
    assert right_kind(question, "Wave 3 starts on 12 January 2026").supported


def test_a_day_of_a_month_is_a_date_and_no_amount() -> None:
    assert figure_kinds("paid on 13 March 2026 and 4 robots") == ["date", "year", "items"]
    question = "How large is the Inventor Award bonus for 2025?"
    assert not right_kind(question, "Individual bonuses are paid on 13 March 2026").supported
    assert right_kind(question, "The award includes a one-time bonus of $5,000").supported


def test_the_noun_after_how_much_is_what_the_question_asks_about() -> None:
    assert question_head("How much cash did Brightwater have at the end of September 2025?") == "cash"
    assert question_head("How much does the lunch cost?") is None
    question = "How much cash did Brightwater have at the end of September 2025?"
    headcount = "Brightwater now has 340 people, and 41 joined since September 2025."
    assert not answers_question(question, "Brightwater now has 340 people [1].", [headcount]).supported
    cash = "Cash at the end of September 2025 was $52.7 million; Brightwater draws no debt."
    assert answers_question(question, "Cash at the end of September 2025 was $52.7 million [1].", [cash]).supported


def test_modal_and_time_relation_words_are_not_key_terms() -> None:
    assert key_terms("How soon after a trip must an expense report be submitted?") == key_terms(
        "trip expense report submitted"
    )


def test_a_cited_passage_must_hold_half_of_the_question_terms() -> None:
    assert MIN_SUBJECT_SHARE == 0.5
    question = "Which Slack channel do Atlas contractors use?"  # slack, channel, atlas, contractor, use
    rates = "Atlas budget: contractor day rates are confidential."
    assert subject_share(question, "Contractor day rates are confidential [1].", [rates]) == 0.4
    assert not answers_question(question, "Contractor day rates are confidential [1].", [rates]).supported
    onboarding = "Atlas contractors join the #atlas-ext Slack channel on their first day."
    assert answers_question(question, "They join the #atlas-ext Slack channel [1].", [onboarding]).supported


def test_a_heading_line_is_never_the_extractive_answer() -> None:
    title = "Northwind Partners: 2026 Rate Card and Key Account Limits"
    heading_only = passage(f"Payment terms are net 45 days.\n{title} - page 1 of 1", title=title)
    question = "What is the monthly limit of the corporate card?"
    assert ExtractiveGenerator().answer(question=question, passages=[heading_only]) == ABSTAIN_ANSWER
    policy = passage("The corporate card has a monthly limit of $10,000.", title="Travel and Expense Policy")
    answer = ExtractiveGenerator().answer(question=question, passages=[heading_only, policy])
    assert answer == "The corporate card has a monthly limit of $10,000 [2]."


def test_a_page_footer_is_never_the_extractive_answer_whatever_the_passage_title() -> None:
    # The footer repeats the document's printed title, which need not be the title the index stores.
    footer = passage(
        "Payment terms are net 45 days.\nNorthwind Partners: 2026 Rate Card and Key Account Limits - page 1 of 1",
        title="partner-rate-card-2026",
    )
    question = "What is the monthly limit of the corporate card?"
    assert ExtractiveGenerator().answer(question=question, passages=[footer]) == ABSTAIN_ANSWER
    ran_into = passage("Reallocations above $300,000 need approval from the CFO - page 1 of 2", title="Budget")
    assert ExtractiveGenerator().answer(question="Who approves reallocations above $300,000?", passages=[ran_into]) == (
        ABSTAIN_ANSWER
    )


Q3_REVENUE = (
    "Q3 2025 Financial Results - Revenue by product\n"
    "| Product | Q3 2025 (USD thousands) | Share percent |\n"
    "| Tern robots (hardware) | 16140 | 42.0 |\n"
    "| Robots as a service | 3840 | 10.0 |"
)
PRICE_LIST = (
    "Price list 2025\n"
    "| SKU | Product | Unit | List price USD |\n"
    "| TERN-300 | Tern 300 tote carrier robot | robot | 46900 |\n"
    "| RAAS-TERN-300 | Tern 300 as a service | robot per month | 1390 |"
)


def test_a_figure_from_a_table_row_about_something_else_is_no_answer() -> None:
    question = "What is the list price of a Tern 300 robot?"
    wrong = "The list price of a Tern 300 robot is 3840 euros [1]."
    verdict = answers_question(question, wrong, [Q3_REVENUE])
    assert not verdict.supported and "table row" in verdict.reason
    right = "The list price of a Tern 300 robot is 46900 USD [1]."
    assert answers_question(question, right, [PRICE_LIST]).supported


def test_a_row_read_with_its_section_title_can_answer() -> None:
    per_diem = (
        "Travel and Expense Policy - 2. Meal per diem\n"
        "Region | Breakfast | Lunch | Dinner | Daily total\n"
        "United States, standard cities | $16 | $22 | $40 | $78"
    )
    question = "What is the daily meal per diem for a trip to a standard US city?"
    assert answers_question(question, "The daily total for standard US cities is $78 [1].", [per_diem]).supported


def test_a_fiscal_year_word_names_its_year() -> None:
    assert "2026" in key_terms("FY2026 Operating Budget")
    budget = "FY2026 Operating Budget - Summary\nItem | FY2025 forecast | FY2026 budget\nYear-end headcount | 340 | 392"
    question = "What is the planned headcount at the end of 2026?"
    assert answers_question(question, "Year-end headcount: FY2026 budget: 392 [1].", [budget]).supported


HANDBOOK_LEAVE = (
    "Brightwater Robotics Employee Handbook - Paid time off and sick leave\n"
    "Requests for more than 3 consecutive days need 2 weeks of notice in Workday.\n"
    "Sick leave is separate from paid time off: 10 days per year at full pay."
)
PARENTAL_POLICY = (
    "Parental Leave Policy - Leave\n"
    "Every eligible parent gets 18 weeks of fully paid parental leave, taken within 12 months of the birth."
)


def test_what_a_question_counts_is_read_from_its_last_two_words() -> None:
    assert counted_thing("How many weeks of paid parental leave does a parent get?") == ("parent", "leav")
    assert counted_thing("How many days of sick leave at full pay do employees get per year?") == ("sick", "leav")
    assert counted_thing("How many weeks of notice do I give?") is None  # one word: other checks cover it
    assert counted_thing("How many robots run in the pilot?") is None


def test_a_figure_counting_another_kind_of_leave_is_no_answer() -> None:
    question = "How many weeks of paid parental leave does a parent get?"
    # Most of the question's words are in the handbook passage ("weeks", "paid", "leave"), but not its subject.
    wrong = "Requests for more than 3 consecutive days need 2 weeks of notice in Workday [1]."
    assert subject_share(question, wrong, [HANDBOOK_LEAVE]) >= MIN_SUBJECT_SHARE
    verdict = answers_question(question, wrong, [HANDBOOK_LEAVE])
    assert not verdict.supported and "counts (parent leav)" in verdict.reason
    right = "Every eligible parent gets 18 weeks of fully paid parental leave [1]."
    assert answers_question(question, right, [PARENTAL_POLICY]).supported
    sick = "How many days of sick leave at full pay do employees get per year?"
    assert answers_question(sick, "Sick leave is 10 days per year at full pay [1].", [HANDBOOK_LEAVE]).supported


def test_the_extractive_answer_from_a_passage_about_another_kind_of_leave_is_refused() -> None:
    """What the extractive generator (the model's fallback) quotes is refused by the check every answer passes."""
    question = "How many weeks of paid parental leave does a parent get?"
    text = HANDBOOK_LEAVE.split("\n", 1)[1]
    handbook = passage(text, title="Employee Handbook", section="Paid time off and sick leave")
    quoted = ExtractiveGenerator().answer(question=question, passages=[handbook])
    assert quoted != ABSTAIN_ANSWER  # the generator alone would answer: its words overlap the question's
    assert not answers_question(question, quoted, [HANDBOOK_LEAVE]).supported
