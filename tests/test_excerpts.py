"""Passages cut to what the model needs: the answer's sentence stays, numbering and labels stay, the rest goes."""

from __future__ import annotations

from core.records import Passage
from retrieval.excerpts import GAP, excerpts, split_passage

POLICY = (
    "Travel must be booked through the portal. Economy class is the default for flights under six hours. "
    "Hotels are booked at the negotiated rate.\n"
    "Meal per diem:\n"
    "Standard US cities: $78 a day\n"
    "High-cost US cities: $98 a day\n"
    "Receipts are kept for seven years. The finance team audits a sample every quarter."
)
HANDBOOK = (
    "The company picnic is on 14 June at Riverside Park. Parking is free. "
    "Families are welcome. The office closes at noon that day."
)


def passage(number: int, text: str, title: str = "Doc") -> Passage:
    return Passage(f"chunk-{number}", f"doc-{number}", f"{title.lower()}.md", title, None, None, None, text, 0.8)


def test_passages_within_the_budget_are_sent_whole() -> None:
    given = [passage(1, POLICY), passage(2, HANDBOOK)]
    assert excerpts("What is the per diem?", given, budget_chars=len(POLICY) + len(HANDBOOK)) == given
    assert excerpts("What is the per diem?", given, budget_chars=0) == given


def test_the_sentence_answering_the_question_and_the_line_after_its_label_are_kept() -> None:
    given = [passage(1, POLICY, "Travel policy"), passage(2, HANDBOOK, "Handbook")]
    cut = excerpts("What is the meal per diem in a standard US city?", given, budget_chars=180)
    assert [p.chunk_id for p in cut] == ["chunk-1", "chunk-2"]  # numbering (citations) unchanged
    assert [p.title for p in cut] == ["Travel policy", "Handbook"]  # labels unchanged
    policy = cut[0].text
    assert "Meal per diem:" in policy and "Standard US cities: $78 a day" in policy
    assert "portal" not in policy and "audits" not in policy
    assert GAP in policy  # the model is told text was left out
    assert sum(len(p.text) for p in cut) < len(POLICY) + len(HANDBOOK)


def test_every_passage_keeps_its_best_sentence_even_past_the_budget() -> None:
    given = [passage(1, POLICY), passage(2, HANDBOOK)]
    cut = excerpts("When is the company picnic?", given, budget_chars=1)
    assert all(p.text.strip(GAP + "\n") for p in cut)
    assert "14 June" in cut[1].text
    assert "Parking" not in cut[1].text


def test_sentences_are_kept_in_document_order_with_the_one_after_each_match() -> None:
    text = (
        "Alpha covers the picnic date. It is in June. Beta is unrelated filler. Delta is more filler. "
        "Gamma repeats the picnic venue." + " Filler sentence here." * 20
    )
    (cut,) = excerpts("picnic date and venue", [passage(1, text)], budget_chars=80)
    assert cut.text.index("Alpha") < cut.text.index("June") < cut.text.index("Gamma")
    assert "Beta" not in cut.text and "Delta" not in cut.text


def test_split_passage_breaks_sentences_and_lines_but_not_figures() -> None:
    assert split_passage("Revenue was $38.4 million. Costs fell.\nQ4: flat") == [
        "Revenue was $38.4 million.",
        "Costs fell.",
        "Q4: flat",
    ]


HOLIDAYS = "\n".join(
    [
        "date | weekday | holiday | offices | notes",
        "2025-01-01 | Wednesday | New Year's Day | All US sites | Offices and plant closed.",
        "2025-05-26 | Monday | Memorial Day | All US sites | Offices and plant closed.",
        "2025-08-15 | Friday | Recharge Day | All sites | Company-wide day off.",
        "2025-09-01 | Monday | Labor Day | All US sites | Offices and plant closed.",
        "2025-11-27 | Thursday | Thanksgiving Day | All US sites | Offices and plant closed.",
    ]
)


def test_a_table_row_is_kept_with_its_header_and_without_the_next_row() -> None:
    (cut,) = excerpts("On which date is Recharge Day?", [passage(1, HOLIDAYS)], budget_chars=60)
    lines = cut.text.split("\n")
    assert lines[0] == "date | weekday | holiday | offices | notes"  # the model reads which column is which
    assert "2025-08-15 | Friday | Recharge Day | All sites | Company-wide day off." in lines
    assert "Labor Day" not in cut.text  # the row after a match is another record, not its continuation
    assert "New Year" not in cut.text


def test_a_label_line_still_brings_the_line_after_it() -> None:
    text = "Intro text that is unrelated.\nStandard US cities per diem:\n$78 a day\nOther filler." + " More." * 40
    (cut,) = excerpts("What is the per diem in standard US cities?", [passage(1, text)], budget_chars=40)
    assert "$78 a day" in cut.text


BUDGET = "\n".join(
    [
        "Item | FY2025 forecast | FY2026 budget",
        "Revenue | $146,800,000 | $188,500,000",
        "Gross margin | 43.9 percent | 46.0 percent",
        "Operating expenses | $62,400,000 | $71,900,000",
    ]
)
DEPARTMENTS = "\n".join(
    ["Department | FY2026 budget | Change", "Engineering | $33,600,000 | +14 percent", "Sales | $19,800,000 | +18 %"]
)


def test_a_header_sharing_the_question_terms_does_not_crowd_out_the_row_that_answers() -> None:
    given = [passage(1, BUDGET), passage(2, DEPARTMENTS), passage(3, "Budget owners review budget spending. " * 9)]
    cut = excerpts("What is the FY2026 revenue budget?", given, budget_chars=120)
    assert "$188,500,000" in cut[0].text
    assert cut[0].text.startswith("Item | FY2025 forecast | FY2026 budget")


def test_a_passage_sharing_no_term_keeps_its_lead_not_its_heading_rule() -> None:
    root_cause = "----------\nThe broker certificate expired at 06:12. Renewal was disabled. " + "Other detail. " * 10
    given = [passage(1, "The fleet stall in Memphis lasted 47 minutes. " * 4), passage(2, root_cause)]
    cut = excerpts("What caused the fleet stall in Memphis?", given, budget_chars=100)
    assert "expired at 06:12" in cut[1].text
    assert "----------" not in cut[1].text


def test_a_passage_of_rule_lines_only_is_not_emptied() -> None:
    cut = excerpts(
        "picnic date", [passage(1, "-----\n====="), passage(2, "The picnic date is 14 June. " * 9)], budget_chars=30
    )
    assert cut[0].text.strip(GAP + "\n")
