"""Parsing real files of every supported format, offline, with clear per-file errors."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from core.errors import DocumentParseError
from ingest.parse import SUPPORTED_SUFFIXES, parse_document
from ingest.parse.elements import ElementKind, ParsedDocument

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLEARANCE_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")
FIXTURES = SHARED_DATA / "fixtures"


# -- sample documents, built on the fly ------------------------------------------------


def make_docx(path: Path, *, core_title: str | None = "Travel Policy") -> Path:
    import docx

    document = docx.Document()
    if core_title is not None:
        document.core_properties.title = core_title
    document.add_heading("Booking rules", level=1)
    document.add_paragraph("Employees book flights through the travel desk at least two weeks ahead.")
    document.add_paragraph("Economy class for trips under six hours", style="List Bullet")
    document.add_paragraph("Receipts are kept for seven years", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for row, (city, rate) in enumerate([("City", "Daily rate"), ("Oslo", "180 EUR")]):
        table.cell(row, 0).text = city
        table.cell(row, 1).text = rate
    document.save(str(path))
    return path


def make_pptx(path: Path, *, core_title: str | None = "Roadmap 2025") -> Path:
    import pptx

    presentation = pptx.Presentation()
    if core_title is not None:
        presentation.core_properties.title = core_title
    for heading, body in [("Goals", "Ship the search service"), ("Risks", "Hiring is slower than planned")]:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = heading
        slide.placeholders[1].text_frame.text = body
    presentation.save(str(path))
    return path


def make_xlsx(path: Path) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    budget = workbook.active
    budget.title = "Budget"
    budget.append(["Team", "Amount"])
    budget.append(["Platform", 120000])
    staff = workbook.create_sheet("Staff")
    staff.append(["Name", "Role"])
    staff.append(["Ada Lovelace", "Analyst"])
    workbook.save(str(path))
    return path


HTML = """<!DOCTYPE html>
<html><head><title>Security &amp; Access Handbook</title></head>
<body>
<h1>Access reviews</h1>
<p>Every quarter, each manager confirms who can read the finance share and removes stale accounts.</p>
<ul><li>Finance share</li><li>HR share</li></ul>
<table><tr><th>System</th><th>Owner</th></tr><tr><td>Payroll</td><td>HR</td></tr></table>
</body></html>
"""

MARKDOWN = """# Onboarding guide

New starters receive their laptop on the first morning and meet their buddy at lunch.

- Laptop
- Badge
"""

EMAIL = """From: Alice Example <alice@example.com>
To: Bob Example <bob@example.com>
Subject: Budget review moved to Friday
Date: Mon, 3 Mar 2025 10:00:00 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

Hi Bob,

The budget review has moved to Friday at ten because the auditors arrive on Thursday.

Alice
"""


def make_pdf(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    for heading, body in [
        ("Annual Report", "Revenue grew in every region this year, led by the northern sales office."),
        ("Outlook", "We expect steady demand and plan to open two more offices next spring."),
    ]:
        pdf.add_page()
        pdf.set_font("helvetica", style="B", size=20)
        pdf.cell(text=heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(10)
        pdf.set_font("helvetica", size=11)
        pdf.multi_cell(w=0, text=body)
    pdf.output(str(path))
    return path


def make_samples(folder: Path) -> dict[str, Path]:
    """One small document per supported format (PDF only where fpdf2 is installed)."""
    samples = {
        ".docx": make_docx(folder / "policy.docx"),
        ".pptx": make_pptx(folder / "roadmap.pptx"),
        ".xlsx": make_xlsx(folder / "budget.xlsx"),
    }
    texts = {
        ".html": HTML,
        ".md": MARKDOWN,
        ".eml": EMAIL,
        ".txt": "Opening hours\n\nThe office is open from eight to six on weekdays.\n",
        ".csv": "Team,Amount\nPlatform,120000\nSearch,80000\n",
    }
    for suffix, text in texts.items():
        samples[suffix] = folder / f"sample{suffix}"
        samples[suffix].write_text(text, encoding="utf-8")
    if importlib.util.find_spec("fpdf") is not None:
        samples[".pdf"] = make_pdf(folder / "report.pdf")
    return samples


def kinds(document: ParsedDocument) -> dict[str, ElementKind]:
    return {element.text: element.kind for element in document.elements}


def reason_of(path: Path) -> str:
    with pytest.raises(DocumentParseError) as caught:
        parse_document(path)
    return caught.value.reason


# -- formats ---------------------------------------------------------------------------


def test_supported_suffixes_are_lower_case_and_cover_the_main_formats() -> None:
    assert all(s == s.lower() and s.startswith(".") for s in SUPPORTED_SUFFIXES)
    assert {".docx", ".pptx", ".xlsx", ".html", ".htm", ".md", ".eml", ".msg", ".txt", ".csv", ".pdf"} <= set(
        SUPPORTED_SUFFIXES
    )


def test_docx_title_headings_lists_and_tables(tmp_path: Path) -> None:
    document = parse_document(make_docx(tmp_path / "policy.docx"))
    assert document.title == "Travel Policy"
    found = kinds(document)
    assert found["Booking rules"] is ElementKind.TITLE
    assert found["Employees book flights through the travel desk at least two weeks ahead."] is ElementKind.TEXT
    assert found["Economy class for trips under six hours"] is ElementKind.LIST_ITEM
    tables = [e for e in document.elements if e.kind is ElementKind.TABLE]
    assert len(tables) == 1 and "Oslo" in tables[0].text and "180 EUR" in tables[0].text


def test_docx_without_core_title_uses_first_heading(tmp_path: Path) -> None:
    document = parse_document(make_docx(tmp_path / "untitled.docx", core_title=None))
    assert document.title == "Booking rules"


def test_pptx_slides_are_pages(tmp_path: Path) -> None:
    document = parse_document(make_pptx(tmp_path / "roadmap.pptx"))
    assert document.title == "Roadmap 2025"
    pages = {e.text: e.page for e in document.elements}
    assert pages["Goals"] == 1 and pages["Ship the search service"] == 1
    assert pages["Risks"] == 2 and pages["Hiring is slower than planned"] == 2
    found = kinds(document)
    assert found["Goals"] is ElementKind.TITLE
    assert found["Hiring is slower than planned"] is ElementKind.TEXT


def test_pptx_without_core_title_uses_first_slide_title(tmp_path: Path) -> None:
    assert parse_document(make_pptx(tmp_path / "deck.pptx", core_title=None)).title == "Goals"


def test_xlsx_one_table_per_sheet_with_index_and_name(tmp_path: Path) -> None:
    document = parse_document(make_xlsx(tmp_path / "budget.xlsx"))
    assert document.title is None
    assert [(e.kind, e.page, e.page_name) for e in document.elements] == [
        (ElementKind.TABLE, 1, "Budget"),
        (ElementKind.TABLE, 2, "Staff"),
    ]
    assert "Platform" in document.elements[0].text and "120000" in document.elements[0].text
    assert "Team" in document.elements[0].text  # the header row is kept
    assert "Ada Lovelace" in document.elements[1].text


@pytest.mark.parametrize("suffix", [".html", ".htm"])
def test_html_title_headings_lists_and_tables(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"handbook{suffix}"
    path.write_text(HTML, encoding="utf-8")
    document = parse_document(path)
    assert document.title == "Security & Access Handbook"
    found = kinds(document)
    assert found["Access reviews"] is ElementKind.TITLE
    assert found["Finance share"] is ElementKind.LIST_ITEM
    assert any(e.kind is ElementKind.TABLE and "Payroll" in e.text for e in document.elements)
    assert any(e.kind is ElementKind.TEXT and e.text.startswith("Every quarter") for e in document.elements)


def test_markdown_title_from_first_heading(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    document = parse_document(path)
    assert document.title == "Onboarding guide"
    assert kinds(document)["Laptop"] is ElementKind.LIST_ITEM
    assert all(e.page is None for e in document.elements)


def test_email_title_is_the_subject(tmp_path: Path) -> None:
    path = tmp_path / "note.eml"
    path.write_text(EMAIL, encoding="utf-8")
    document = parse_document(path)
    assert document.title == "Budget review moved to Friday"
    assert any("auditors arrive on Thursday" in e.text for e in document.elements)


def test_plain_text_sentence_is_not_a_title(tmp_path: Path) -> None:
    path = tmp_path / "hours.txt"
    path.write_text("Opening hours\n\nThe office is open from eight to six.\n", encoding="utf-8")
    found = kinds(parse_document(path))
    assert found["Opening hours"] is ElementKind.TITLE
    assert found["The office is open from eight to six."] is ElementKind.TEXT


def test_sentences_and_headings_are_told_apart_without_a_trained_model() -> None:
    from unstructured.partition.text_type import is_possible_narrative_text, is_possible_title

    assert is_possible_narrative_text("Hiring is slower than we planned")
    assert is_possible_narrative_text("We can't ship before the audit")
    assert not is_possible_narrative_text("Quarterly results")
    assert is_possible_title("Quarterly results")


def test_csv_is_one_table_and_utf16_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "teams.csv"
    path.write_text("Team,Amount\nPlatform,120000\nSearch,80000\n", encoding="utf-16")
    document = parse_document(path)
    assert [e.kind for e in document.elements] == [ElementKind.TABLE]
    assert "Search" in document.elements[0].text


def test_pdf_blocks_pages_and_headings(tmp_path: Path) -> None:
    pytest.importorskip("fpdf", reason="fpdf2 is needed to write a test PDF")
    document = parse_document(make_pdf(tmp_path / "report.pdf"))
    assert document.title == "Annual Report"
    assert [(e.kind, e.page) for e in document.elements] == [
        (ElementKind.TITLE, 1),
        (ElementKind.TEXT, 1),
        (ElementKind.TITLE, 2),
        (ElementKind.TEXT, 2),
    ]
    assert document.elements[1].text.startswith("Revenue grew in every region")


MEAL_RATES = [
    ("Region", "Daily rate", "Hotel cap"),
    ("United States, standard cities", "$78", "$260"),
    ("Canada", "$70", "CAD 250"),
    ("Euro area", "EUR 71", "EUR 240"),
]


def make_table_pdf(path: Path, rows: list[tuple[str, str, str]], *, borders: str, v_align: str = "MIDDLE") -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", style="B", size=16)
    pdf.cell(text="Meal allowances", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(w=0, text="Employees receive a daily allowance for meals while travelling on company business.")
    pdf.ln(4)
    with pdf.table(borders_layout=borders, v_align=v_align, col_widths=(50, 25, 25)) as table:
        for cells in rows:
            row = table.row()
            for text in cells:
                row.cell(text)
    pdf.ln(4)
    pdf.multi_cell(w=0, text="Receipts are kept for seven years.")
    pdf.output(str(path))
    return path


@pytest.mark.parametrize("borders", ["ALL", "NONE", "HORIZONTAL_LINES"])
def test_pdf_table_is_one_element_row_by_row(tmp_path: Path, borders: str) -> None:
    pytest.importorskip("fpdf", reason="fpdf2 is needed to write a test PDF")
    document = parse_document(make_table_pdf(tmp_path / "meals.pdf", MEAL_RATES, borders=borders))
    assert [e.kind for e in document.elements] == [
        ElementKind.TITLE,
        ElementKind.TEXT,
        ElementKind.TABLE,
        ElementKind.TEXT,
    ]
    heading, paragraph, table, after = document.elements
    assert heading.text == "Meal allowances" and document.title == "Meal allowances"
    assert paragraph.text.startswith("Employees receive a daily allowance")
    assert table.text.splitlines() == [
        "Region | Daily rate | Hotel cap",
        "United States, standard cities | $78 | $260",
        "Canada | $70 | CAD 250",
        "Euro area | EUR 71 | EUR 240",
    ]
    assert table.page == 1
    assert after.text == "Receipts are kept for seven years."


@pytest.mark.parametrize(("borders", "v_align"), [("ALL", "MIDDLE"), ("NONE", "TOP")])
def test_pdf_table_cell_wrapping_onto_two_lines_stays_in_the_table(tmp_path: Path, borders: str, v_align: str) -> None:
    pytest.importorskip("fpdf", reason="fpdf2 is needed to write a test PDF")
    rows = [*MEAL_RATES[:1], ("United States, standard cities, including every state capital", "$78", "$260")]
    rows += MEAL_RATES[2:]
    document = parse_document(make_table_pdf(tmp_path / "meals.pdf", rows, borders=borders, v_align=v_align))
    tables = [e for e in document.elements if e.kind is ElementKind.TABLE]
    assert len(tables) == 1
    lines = tables[0].text.splitlines()
    assert lines[0] == "Region | Daily rate | Hotel cap"
    assert lines[1].startswith("United States, standard cities, including every state")
    assert lines[1].endswith("| $78 | $260")
    assert "capital" in tables[0].text
    assert lines[-1] == "Euro area | EUR 71 | EUR 240"
    assert not any(e.kind is ElementKind.TITLE and e.text == "Region" for e in document.elements)


def test_two_column_prose_is_not_a_table(tmp_path: Path) -> None:
    fpdf = pytest.importorskip("fpdf", reason="fpdf2 is needed to write a test PDF")
    left = (
        "The warehouse in Reno ships robots to customer sites across North America. Most orders leave "
        "within two days, and the dock team checks every crate against the packing list before it goes."
    )
    right = (
        "Returns come back through the same dock. Each returned unit is inspected, cleaned and logged "
        "before it is put back into stock or sent to the repair shop for a full service."
    )
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=11)
    top = pdf.get_y()
    pdf.multi_cell(w=85, text=left, align="L")
    pdf.set_xy(115, top)
    pdf.multi_cell(w=85, text=right, align="L")
    path = tmp_path / "columns.pdf"
    pdf.output(str(path))
    document = parse_document(path)
    assert [e.kind for e in document.elements] == [ElementKind.TEXT, ElementKind.TEXT]
    assert document.elements[0].text == left
    assert document.elements[1].text == right


SAMPLE_CORPUS = REPO_ROOT / "samples" / "corpus"


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        (
            "brightwater/company/travel-expense-policy.pdf",
            [
                "Region | Breakfast | Lunch | Dinner | Daily total",
                "United States, standard cities | $16 | $22 | $40 | $78",
                "United Kingdom | GBP 13 | GBP 18 | GBP 32 | GBP 63",
                "Expense | Approver",
                "Business class flight | Chief Financial Officer",
            ],
        ),
        (
            "brightwater/finance/fy2026-budget.pdf",
            [
                "Item | FY2025 forecast | FY2026 budget",
                "Operating income | $2,045,000 | $14,810,000",
                "Sales and marketing | $19,800,000 | +18 percent",
            ],
        ),
        (
            "northwind/partner-rate-card-2026.pdf",
            [
                "Warehousing, Reno | per pallet per month | $24.00/pallet",
                "LTL rate, West region | $2.95/kg | $2.64/kg",
            ],
        ),
    ],
)
def test_sample_pdf_tables_keep_each_row_together(name: str, rows: list[str]) -> None:
    path = SAMPLE_CORPUS / name
    if not path.is_file():
        pytest.skip(f"sample document not found: {path}")
    document = parse_document(path)
    tables = [e.text.splitlines() for e in document.elements if e.kind is ElementKind.TABLE]
    assert set(rows) <= {line for lines in tables for line in lines}
    header_cells = {cell for lines in tables for cell in lines[0].split(" | ")}
    assert not any(e.kind is ElementKind.TITLE and e.text in header_cells for e in document.elements)


# -- failures --------------------------------------------------------------------------


def _zip_without_office_parts() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a workbook")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("data.xyz", b"anything", "unsupported file type .xyz"),
        ("locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024), "encrypted or legacy binary Office file"),
        ("legacy.pptx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024), "encrypted or legacy binary Office file"),
        ("plain.xlsx", b"just some text", "corrupt or truncated file: not a zip archive"),
        ("archive.xlsx", _zip_without_office_parts(), "corrupt or truncated file: not an Office package"),
        ("broken.pdf", b"this is not a PDF at all\n" * 20, "corrupt or truncated file: invalid PDF structure"),
        ("empty.txt", b"", "no text found"),
        ("blank.txt", b"   \n\t\n  \n", "no text found"),
        ("empty.docx", b"", "no text found"),
    ],
)
def test_clear_reasons(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert reason_of(path) == reason


def test_truncated_docx_is_corrupt(tmp_path: Path) -> None:
    whole = make_docx(tmp_path / "whole.docx").read_bytes()
    path = tmp_path / "cut.docx"
    path.write_bytes(whole[: len(whole) // 2])
    assert reason_of(path).startswith("corrupt or truncated file: ")


def test_password_protected_pdf(tmp_path: Path) -> None:
    fpdf = pytest.importorskip("fpdf", reason="fpdf2 is needed to write a test PDF")
    pdf = fpdf.FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="Salary bands")
    path = tmp_path / "locked.pdf"
    pdf.output(str(path))
    assert reason_of(path) == "encrypted PDF (password required)"


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    fpdf = pytest.importorskip("fpdf", reason="fpdf2 is needed to write a test PDF")
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")  # a drawing, as a scanner would leave an image
    path = tmp_path / "scan.pdf"
    pdf.output(str(path))
    assert reason_of(path) == "no extractable text (scanned PDF? OCR is not available)"


def test_missing_file(tmp_path: Path) -> None:
    assert reason_of(tmp_path / "gone.docx") == "file not found"


def test_unexpected_parser_error_names_the_exception(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("name,role\nada,analyst\nbob,developer,extra\n", encoding="utf-8")
    reason = reason_of(path)
    assert reason.startswith("parser failed: ParserError")
    assert len(reason) <= 200


# -- offline ---------------------------------------------------------------------------

# Runs in a fresh interpreter: an audit hook records (and blocks) every attempt to
# resolve a host, open a connection or start a program, before anything is imported.
_OFFLINE_PROBE = """
import json, socket, sys
attempts = []
def guard(event, args):
    if event in {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname",
                 "socket.sendto", "urllib.Request", "subprocess.Popen", "os.system"}:
        attempts.append(event)
        raise RuntimeError("blocked: " + event)
sys.addaudithook(guard)

from core.errors import DocumentParseError
from ingest.parse import parse_document
from pathlib import Path

results = {}
for name in sys.argv[1:]:
    try:
        results[name] = len(parse_document(Path(name)).elements)
    except DocumentParseError as exc:
        results[name] = exc.reason
during_parse = list(attempts)
from unstructured.nlp import tokenize  # only after parsing: the product reaches `unstructured` through it
try:
    socket.create_connection(("192.0.2.1", 9), timeout=1)
except Exception:
    pass
print(json.dumps({"results": results, "attempts": during_parse, "guard_works": len(attempts) > len(during_parse),
                  "nlp_loaded": tokenize._get_nlp.cache_info().currsize == 1}))
"""


def test_parsing_never_touches_the_network(tmp_path: Path) -> None:
    files = list(make_samples(tmp_path).values())
    outlook = FIXTURES / "unstructured" / "fake-email.msg"  # .msg cannot be written by hand
    if outlook.is_file():
        files.append(outlook)
    opt_outs = {"DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE"}
    env = {k: v for k, v in os.environ.items() if k not in opt_outs}
    env["PYTHONPATH"] = str(REPO_ROOT)
    completed = subprocess.run(
        [sys.executable, "-c", _OFFLINE_PROBE, *map(str, files)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["guard_works"], "the network guard itself did not fire"
    assert report["attempts"] == [], f"parsing tried to reach out: {report['attempts']}"
    assert report["nlp_loaded"], "the text classifier was never exercised"
    for name, outcome in report["results"].items():
        assert isinstance(outcome, int) and outcome > 0, f"{name}: {outcome}"


# The real-world fixtures (../shared/data/fixtures) run through the whole ingestion
# pipeline in tests/test_fixtures_ingest.py.


def test_legacy_xls_workbook_is_read_sheet_by_sheet() -> None:
    workbook = FIXTURES / "tika" / "testComment.xls"
    if not workbook.is_file():
        pytest.skip(f"fixture documents not found at {FIXTURES} (set CLEARANCE_SHARED_DATA)")
    document = parse_document(workbook)
    assert document.elements[0].page_name == "Sheet1" and "Here is some text" in document.elements[0].text


def test_password_protected_xls_is_a_clear_error() -> None:
    workbook = FIXTURES / "tika" / "password.xls"
    if not workbook.is_file():
        pytest.skip(f"fixture documents not found at {FIXTURES} (set CLEARANCE_SHARED_DATA)")
    assert reason_of(workbook) == "encrypted file (password required)"


def test_rtf_is_converted_offline_by_the_bundled_pandoc(tmp_path: Path) -> None:
    path = tmp_path / "memo.rtf"
    path.write_text(
        r"{\rtf1\ansi{\b Shipping memo}\par The Reno dock opens at 6 am on weekdays.\par}", encoding="ascii"
    )
    document = parse_document(path)
    assert any("Reno dock opens at 6 am" in element.text for element in document.elements)
