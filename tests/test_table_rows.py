"""Tables keep their rows: spreadsheets, CSV and Office tables become header-first row lines, chunked by rows.

An answer drawn from a table then quotes the row it needs with its column names
("Line: Revenue; Q3 2025: 38420"), never the whole sheet flattened into words.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.records import Passage
from ingest.chunk import chunk_document
from ingest.parse import parse_document
from ingest.parse.elements import ElementKind, ParsedDocument, ParsedElement
from ingest.parse.tables import html_table_rows, is_row_table, rows_text
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.prompts import ABSTAIN_ANSWER

RESULTS = [
    ("Line (USD thousands)", "Q3 2025", "Q2 2025"),
    ("Revenue", "38420", "35110"),
    ("Cost of revenue", "21285", "19870"),
    ("Gross profit", "17135", "15240"),
]


def make_workbook(path: Path, rows: Sequence[tuple[str, ...]] = RESULTS) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Income statement"
    for row in rows:
        sheet.append(list(row))
    book.save(path)
    return path


def make_docx_table(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_paragraph("Who to contact for what.")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate([("Topic", "Team", "Contact"), ("Payroll", "Finance", "payroll@x.example"),
                             ("Laptops", "IT service desk", "extension 4357")]):  # fmt: skip
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.save(str(path))
    return path


def table_elements(document: ParsedDocument) -> list[ParsedElement]:
    return [e for e in document.elements if e.kind is ElementKind.TABLE]


def test_a_sheet_becomes_one_line_per_row_under_its_header(tmp_path: Path) -> None:
    (table,) = table_elements(parse_document(make_workbook(tmp_path / "q3.xlsx")))
    assert table.text.splitlines() == [
        "Line (USD thousands) | Q3 2025 | Q2 2025",
        "Revenue | 38420 | 35110",
        "Cost of revenue | 21285 | 19870",
        "Gross profit | 17135 | 15240",
    ]
    assert table.page_name == "Income statement"


def test_csv_and_docx_tables_keep_their_rows(tmp_path: Path) -> None:
    csv = tmp_path / "prices.csv"
    csv.write_text("Product,Price USD\nTern T2,48000\nHeron H1,61000\n", encoding="utf-8")
    (table,) = table_elements(parse_document(csv))
    assert table.text.splitlines() == ["Product | Price USD", "Tern T2 | 48000", "Heron H1 | 61000"]
    (table,) = table_elements(parse_document(make_docx_table(tmp_path / "contacts.docx")))
    assert table.text.splitlines()[1] == "Payroll | Finance | payroll@x.example"


def test_cells_that_hold_the_separator_or_nothing_keep_the_columns_aligned() -> None:
    html = (
        "<table><tr><th>Name</th><th>Note</th><th>Amount</th></tr>"
        "<tr><td>A | B</td><td></td><td>5</td></tr><tr><td></td><td></td><td></td></tr><tr><td>C</td></tr></table>"
    )
    rows = html_table_rows(html)
    assert rows == [["Name", "Note", "Amount"], ["A | B", "", "5"], ["C"]]
    assert rows_text(rows).splitlines() == ["Name | Note | Amount", "A / B |  | 5", "C |  | "]
    # A one-column table is prose, one cell a line: no header to pair with.
    assert rows_text([["Note"], ["Cash was $52.7 million."]]) == "Note\nCash was $52.7 million."


def test_a_long_table_is_chunked_by_rows_and_every_chunk_starts_with_the_header() -> None:
    header = "Employee | Department | Salary USD"
    rows = [f"Person {n:03d} | Department {n % 7} | {90000 + n}" for n in range(120)]
    document = ParsedDocument(
        title="Salaries",
        elements=(
            ParsedElement(kind=ElementKind.TEXT, text="Salaries as of 1 October."),
            ParsedElement(kind=ElementKind.TABLE, text="\n".join([header, *rows])),
            ParsedElement(kind=ElementKind.TEXT, text="Reviewed yearly."),
        ),
    )
    chunks = chunk_document(document, max_chars=400)
    table_chunks = [c for c in chunks if is_row_table(c.text)]
    assert len(table_chunks) > 3 and all(len(c.text) <= 400 for c in chunks)
    assert all(c.text.splitlines()[0] == header for c in table_chunks)
    # Every row once, whole, in order; the prose around the table is in chunks of its own.
    assert [line for c in table_chunks for line in c.text.splitlines()[1:]] == rows
    assert chunks[0].text == "Salaries as of 1 October." and chunks[-1].text == "Reviewed yearly."


def test_the_extractive_answer_quotes_the_row_with_its_headers_not_the_sheet(tmp_path: Path) -> None:
    document = parse_document(make_workbook(tmp_path / "q3.xlsx"))
    (chunk,) = chunk_document(document)
    passage = Passage(
        chunk_id="c1",
        doc_id="d1",
        source="finance/q3.xlsx",
        title="Q3 2025 results",
        section=None,
        page=chunk.page,
        page_name=chunk.page_name,
        text=chunk.text,
        score=0.8,
    )
    answer = ExtractiveGenerator().answer(question="What was the gross profit in Q3 2025?", passages=[passage])
    assert answer == "Line (USD thousands): Gross profit; Q3 2025: 17135; Q2 2025: 15240 [1]."
    assert "Revenue" not in answer and "21285" not in answer
    assert ExtractiveGenerator().answer(question="Who approved the budget?", passages=[passage]) == ABSTAIN_ANSWER
