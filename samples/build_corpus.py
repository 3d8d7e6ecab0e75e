"""Build the Clearance sample corpus: two fictional companies with ACL manifests.

Every document is written from the Python data in this file, so the corpus is
reproducible byte for byte: re-running the script leaves the committed files
unchanged. The script also writes ``users.json`` (the development directory)
and ``questions.json``, then checks the questions against an independent
evaluation of the ACL manifests.

Run from the repository root::

    .venv/bin/python samples/build_corpus.py
"""

from __future__ import annotations

import csv
import datetime as dt
import email.policy
import html
import io
import json
import re
import shutil
import textwrap
import uuid
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import docx
import openpyxl
import pptx
from docx.shared import Pt as DocxPt
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from openpyxl.styles import Font
from pptx.util import Inches
from pptx.util import Pt as PptxPt

SAMPLES_DIR = Path(__file__).resolve().parent
CORPUS_DIR = SAMPLES_DIR / "corpus"
USERS_FILE = SAMPLES_DIR / "users.json"
QUESTIONS_FILE = SAMPLES_DIR / "questions.json"

UTC = dt.UTC
ZIP_DATE_TIME = (2025, 1, 1, 0, 0, 0)
MIN_WORDS = 150
MAX_WORDS = 800
MAX_CORPUS_BYTES = 1_000_000

# --------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------

BRIGHTWATER = "d1f72fea-086f-4448-9dce-2f71deb8ef72"
NORTHWIND = "d397c693-4a32-47ad-9ee4-9ad621108730"

TENANTS: tuple[dict[str, str], ...] = (
    {"id": BRIGHTWATER, "name": "Brightwater Robotics", "domain": "brightwater.example"},
    {"id": NORTHWIND, "name": "Northwind Partners", "domain": "northwind.example"},
)

#: Which tenant each top-level source folder of the corpus is ingested with.
SOURCE_TENANTS: dict[str, str] = {"brightwater": BRIGHTWATER, "northwind": NORTHWIND}

G_ENGINEERING = "1f1e9e2a-6ddd-46d4-8b7d-abe6a1a0fce9"
G_ENG_LEADS = "94f2c857-e9bb-4882-8ead-6d95ea795166"
G_FINANCE = "2bae5069-1629-441f-aa19-9f76b6e7dd9d"
G_HR = "3207a9e7-c4c1-4754-89d3-8e7450ba6051"
G_MANAGERS = "5f16e99e-1635-419e-a551-ea319caa0800"
G_SALES = "5075f0e2-35ea-43ee-81c8-ebaf249959a1"
G_PROJECT_ATLAS = "0523db4c-c030-4657-82dc-a361b9200bc7"
G_PARTNERS = "1d5f6b51-5ae0-4b12-b436-4b99e83f4c80"

NAMED_GROUPS: tuple[tuple[str, str, str], ...] = (
    (G_ENGINEERING, BRIGHTWATER, "engineering"),
    (G_ENG_LEADS, BRIGHTWATER, "eng-leads"),
    (G_FINANCE, BRIGHTWATER, "finance"),
    (G_HR, BRIGHTWATER, "hr"),
    (G_MANAGERS, BRIGHTWATER, "managers"),
    (G_SALES, BRIGHTWATER, "sales"),
    (G_PROJECT_ATLAS, BRIGHTWATER, "project-atlas"),
    (G_PARTNERS, NORTHWIND, "partners"),
)

#: Frank's distribution lists: enough groups to overflow a 200-group token.
DISTRIBUTION_LIST_COUNT = 240


def distribution_lists() -> list[tuple[str, str]]:
    """Return ``(id, name)`` of the distribution-list groups, in order."""
    return [
        (str(uuid.uuid5(uuid.NAMESPACE_URL, f"brightwater/dl-{i:03d}")), f"dl-{i:03d}")
        for i in range(1, DISTRIBUTION_LIST_COUNT + 1)
    ]


OID_ALICE = "cbec799b-8420-4c3c-b01d-1aa1216cd5ee"
OID_BOB = "32a402f7-bf12-40d3-bea2-209c4c89f63c"
OID_CAROL = "3917b67c-04ed-4d6b-bba5-7e975478cd70"
OID_DAN = "502635a8-8e6b-4233-8129-bcc3917480ca"
OID_ERIN = "5ef96d04-1b8a-4c22-abcb-e28ef1ddb64e"
OID_FRANK = "eb694ff9-c0fe-4922-9210-f698304bd258"
OID_GRACE = "558cd96b-7a50-4af3-bce4-03be6e3023b1"


def users() -> list[dict[str, object]]:
    """The development directory's users, in the ``users.json`` schema."""
    frank_groups = [G_SALES] + [gid for gid, _ in distribution_lists()]
    rows: list[tuple[str, str, str, str, str, list[str], list[str], bool]] = [
        ("alice", "Alice Chen", "Robotics Software Engineer", BRIGHTWATER,
         OID_ALICE, [G_ENGINEERING], [], False),
        ("bob", "Bob Okafor", "Financial Analyst", BRIGHTWATER,
         OID_BOB, [G_FINANCE], [], False),
        ("carol", "Carol Diaz", "VP Operations", BRIGHTWATER, OID_CAROL,
         [G_ENGINEERING, G_ENG_LEADS, G_FINANCE, G_MANAGERS],
         ["Clearance.Admin"], False),
        ("dan", "Dan Fischer", "External Contractor, Lidar Integration",
         BRIGHTWATER, OID_DAN, [G_PROJECT_ATLAS], [], True),
        ("erin", "Erin Walsh", "Partner Manager", NORTHWIND,
         OID_ERIN, [G_PARTNERS], [], False),
        ("frank", "Frank Ito", "Sales Director", BRIGHTWATER,
         OID_FRANK, frank_groups, [], False),
        ("grace", "Grace Park", "HR Business Partner", BRIGHTWATER,
         OID_GRACE, [G_HR, G_MANAGERS], [], False),
    ]
    return [
        {
            "name": name,
            "display_name": display,
            "title": title,
            "tenant": tenant,
            "oid": oid,
            "groups": groups,
            "roles": roles,
            "guest": guest,
        }
        for name, display, title, tenant, oid, groups, roles, guest in rows
    ]


def directory() -> dict[str, object]:
    """The whole ``users.json`` document."""
    groups = [{"id": gid, "tenant": tid, "name": name} for gid, tid, name in NAMED_GROUPS]
    groups += [
        {"id": gid, "tenant": BRIGHTWATER, "name": name}
        for gid, name in distribution_lists()
    ]
    return {"tenants": list(TENANTS), "groups": groups, "users": users()}


# --------------------------------------------------------------------------
# ACL manifests
# --------------------------------------------------------------------------


def _acl(allow: Sequence[str], deny: Sequence[str] = (), *, inherit: bool = False) -> dict[str, object]:
    return {"allow": list(allow), "deny": list(deny), "inherit": inherit}


def _g(group_id: str) -> str:
    return f"group:{group_id}"


def _u(oid: str) -> str:
    return f"user:{oid}"


#: Manifest path (relative to the corpus) -> manifest content. A folder's
#: manifest is ``<folder>/.acl.json``; a file's sidecar is ``<file>.acl.json``.
#: ``brightwater/drafts`` deliberately has no manifest anywhere above it.
MANIFESTS: dict[str, dict[str, object]] = {
    "brightwater/company/.acl.json": _acl(["tenant"]),
    "brightwater/announcements/.acl.json": _acl(["tenant"]),
    "brightwater/announcements/inventor-award-alice-chen.html.acl.json": _acl(
        [_u(OID_ALICE)]
    ),
    "brightwater/engineering/.acl.json": _acl([_g(G_ENGINEERING)]),
    "brightwater/engineering/leads/.acl.json": _acl([_g(G_ENG_LEADS)]),
    "brightwater/projects/atlas/.acl.json": _acl([_g(G_PROJECT_ATLAS), _g(G_ENGINEERING)]),
    "brightwater/projects/atlas/atlas-budget.xlsx.acl.json": _acl(
        [_g(G_FINANCE), _g(G_MANAGERS)]
    ),
    "brightwater/finance/.acl.json": _acl([_g(G_FINANCE), _g(G_MANAGERS)]),
    "brightwater/finance/board-compensation-2025.docx.acl.json": _acl(
        [], [_u(OID_GRACE)], inherit=True
    ),
    "brightwater/hr/.acl.json": _acl([_g(G_HR)]),
    "brightwater/hr/investigation-case-hr-2025-017.eml.acl.json": _acl([_u(OID_GRACE)]),
    "brightwater/sales/.acl.json": _acl([_g(G_SALES), _g(G_MANAGERS)]),
    "northwind/.acl.json": _acl(["tenant"]),
}

# --------------------------------------------------------------------------
# Document model and the small markup the content below is written in
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table with a header row; in a workbook, one sheet."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Bullets:
    """A bulleted list."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Lines:
    """Lines kept as they are (an e-mail signature)."""

    lines: tuple[str, ...]


Block = str | Table | Bullets | Lines


@dataclass(frozen=True)
class Section:
    """A heading (empty for the text before the first heading) and its blocks."""

    heading: str
    blocks: tuple[Block, ...]
    new_page: bool = False


@dataclass(frozen=True)
class Mail:
    """Headers of a document written as an RFC 822 message."""

    sender: str
    to: str
    date: dt.datetime
    message_id: str
    cc: str | None = None


@dataclass(frozen=True)
class Document:
    """One corpus document; ``path`` is relative to the corpus folder."""

    path: str
    title: str
    author: str
    date: dt.date
    sections: tuple[Section, ...]
    mail: Mail | None = None
    subtitle: str = field(default="")

    @property
    def fmt(self) -> str:
        return self.path.rsplit(".", 1)[1]

    @property
    def timestamp(self) -> dt.datetime:
        return dt.datetime(self.date.year, self.date.month, self.date.day, 9, 0, tzinfo=UTC)


def _split_row(line: str) -> tuple[str, ...]:
    return tuple(cell.strip() for cell in line.strip().strip("|").split("|"))


def parse_body(source: str) -> tuple[Section, ...]:
    """Parse the content markup.

    ``## Heading`` starts a section, ``!newpage`` makes the next section start
    on a new page (PDF), blank lines separate blocks, ``- `` starts a bullet
    (indented lines continue it), ``|`` lines form a table whose first row is
    the header, ``/ `` lines are kept as lines, other lines join into
    paragraphs.
    """
    sections: list[Section] = []
    heading = ""
    new_page = False
    next_new_page = False
    blocks: list[Block] = []
    pending: list[str] = []
    kind = ""

    def flush() -> None:
        nonlocal pending, kind
        if kind == "p":
            blocks.append(" ".join(pending))
        elif kind == "ul":
            blocks.append(Bullets(tuple(pending)))
        elif kind == "table":
            rows = [_split_row(line) for line in pending]
            if any(len(row) != len(rows[0]) for row in rows):
                raise ValueError(f"ragged table under {heading!r}: {rows}")
            blocks.append(Table(rows[0], tuple(rows[1:])))
        elif kind == "lines":
            blocks.append(Lines(tuple(pending)))
        pending = []
        kind = ""

    def close_section() -> None:
        flush()
        if heading or blocks:
            sections.append(Section(heading, tuple(blocks), new_page))

    for raw in textwrap.dedent(source).splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("## "):
            close_section()
            heading, blocks, new_page = line[3:].strip(), [], next_new_page
            next_new_page = False
        elif line == "!newpage":
            next_new_page = True
        elif line.startswith("- "):
            if kind != "ul":
                flush()
                kind = "ul"
            pending.append(line[2:])
        elif kind == "ul" and raw.startswith("  "):
            pending[-1] = f"{pending[-1]} {line}"
        elif line.startswith("|"):
            if kind != "table":
                flush()
                kind = "table"
            pending.append(line)
        elif line.startswith("/ "):
            if kind != "lines":
                flush()
                kind = "lines"
            pending.append(line[2:])
        else:
            if kind not in ("", "p"):
                flush()
            kind = "p"
            pending.append(line)
    close_section()
    return tuple(sections)


def doc(
    path: str,
    title: str,
    *,
    author: str,
    date: dt.date,
    body: str,
    mail: Mail | None = None,
    subtitle: str = "",
) -> Document:
    """Build a :class:`Document` from markup."""
    return Document(path, title, author, date, parse_body(body), mail, subtitle)


def source_text(document: Document) -> str:
    """All text of a document, as written in this file."""
    parts = [document.title]
    if document.subtitle:
        parts.append(document.subtitle)
    for section in document.sections:
        if section.heading:
            parts.append(section.heading)
        for block in section.blocks:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Bullets):
                parts.extend(block.items)
            elif isinstance(block, Lines):
                parts.extend(block.lines)
            else:
                parts.append(" ".join(block.header))
                parts.extend(" ".join(row) for row in block.rows)
    return "\n".join(parts)


def word_count(document: Document) -> int:
    return len(source_text(document).split())


# --------------------------------------------------------------------------
# Writers, one per format
# --------------------------------------------------------------------------


def _cell_value(text: str) -> str | int | float:
    """Numbers become numeric spreadsheet cells; everything else stays text."""
    if re.fullmatch(r"-?[1-9]\d*|0", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text


def _plain_table(table: Table, indent: str = "") -> list[str]:
    widths = [
        max(len(row[i]) for row in (table.header, *table.rows))
        for i in range(len(table.header))
    ]

    def fmt(row: tuple[str, ...]) -> str:
        return indent + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    rule = indent + "-+-".join("-" * w for w in widths)
    return [fmt(table.header), rule, *(fmt(row) for row in table.rows)]


def _plain_text(document: Document, width: int, *, with_title: bool) -> str:
    """Plain-text rendering shared by .txt files and e-mail bodies."""
    out: list[str] = []
    if with_title:
        out += [document.title, "=" * len(document.title), ""]
    for section in document.sections:
        if section.heading:
            out += [section.heading, "-" * len(section.heading), ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += textwrap.wrap(block, width) + [""]
            elif isinstance(block, Bullets):
                for item in block.items:
                    out += textwrap.wrap(item, width, initial_indent="- ", subsequent_indent="  ")
                out.append("")
            elif isinstance(block, Lines):
                out += [*block.lines, ""]
            else:
                out += [*_plain_table(block), ""]
    return "\n".join(out).rstrip() + "\n"


def write_txt(document: Document, target: Path) -> None:
    target.write_text(_plain_text(document, 78, with_title=True), encoding="utf-8")


def write_md(document: Document, target: Path) -> None:
    out = [f"# {document.title}", ""]
    for section in document.sections:
        if section.heading:
            out += [f"## {section.heading}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += [block, ""]
            elif isinstance(block, Bullets):
                out += [f"- {item}" for item in block.items] + [""]
            elif isinstance(block, Lines):
                out += [f"{line}  " for line in block.lines] + [""]
            else:
                out.append("| " + " | ".join(block.header) + " |")
                out.append("|" + "|".join(" --- " for _ in block.header) + "|")
                out += ["| " + " | ".join(row) + " |" for row in block.rows]
                out.append("")
    target.write_text("\n".join(out).rstrip() + "\n", encoding="utf-8")


def write_html(document: Document, target: Path) -> None:
    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(document.title)}</title>",
        f'<meta name="author" content="{html.escape(document.author)}">',
        f'<meta name="date" content="{document.date.isoformat()}">',
        "</head>",
        "<body>",
        "<article>",
        f"<h1>{esc(document.title)}</h1>",
    ]
    for section in document.sections:
        out.append("<section>")
        if section.heading:
            out.append(f"<h2>{esc(section.heading)}</h2>")
        for block in section.blocks:
            if isinstance(block, str):
                out.append(f"<p>{esc(block)}</p>")
            elif isinstance(block, Bullets):
                out += ["<ul>", *(f"<li>{esc(item)}</li>" for item in block.items), "</ul>"]
            elif isinstance(block, Lines):
                out.append("<p>" + "<br>\n".join(esc(line) for line in block.lines) + "</p>")
            else:
                out += ["<table>", "<thead>", "<tr>"]
                out += [f"<th>{esc(cell)}</th>" for cell in block.header]
                out += ["</tr>", "</thead>", "<tbody>"]
                for row in block.rows:
                    out.append("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>")
                out += ["</tbody>", "</table>"]
        out.append("</section>")
    out += ["</article>", "</body>", "</html>"]
    target.write_text("\n".join(out) + "\n", encoding="utf-8")


def write_csv(document: Document, target: Path) -> None:
    tables = [b for s in document.sections for b in s.blocks if isinstance(b, Table)]
    others = [b for s in document.sections for b in s.blocks if not isinstance(b, Table)]
    if len(tables) != 1 or others:
        raise ValueError(f"{document.path}: a CSV document is exactly one table")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(tables[0].header)
    writer.writerows(tables[0].rows)
    target.write_text(buffer.getvalue(), encoding="utf-8")


def write_eml(document: Document, target: Path) -> None:
    if document.mail is None:
        raise ValueError(f"{document.path}: an e-mail needs headers")
    mail = document.mail
    message = EmailMessage(policy=email.policy.default)
    message["From"] = mail.sender
    message["To"] = mail.to
    if mail.cc:
        message["Cc"] = mail.cc
    message["Date"] = format_datetime(mail.date)
    message["Subject"] = document.title
    message["Message-ID"] = mail.message_id
    message.set_content(_plain_text(document, 72, with_title=False), cte="7bit")
    target.write_bytes(message.as_bytes())


def _normalize_zip(target: Path, timestamp: dt.datetime) -> None:
    """Rewrite an OOXML package with fixed entry dates and core-property dates."""
    stamp = timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(target) as source:
        entries = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in entries:
            if name == "docProps/core.xml":
                text = re.sub(
                    r"(<dcterms:(created|modified)\b[^>]*>)[^<]*(</dcterms:\2>)",
                    lambda m: f"{m.group(1)}{stamp}{m.group(3)}",
                    data.decode("utf-8"),
                )
                data = text.encode("utf-8")
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            info.external_attr = 0o644 << 16
            package.writestr(info, data)
    target.write_bytes(buffer.getvalue())


def write_docx(document: Document, target: Path) -> None:
    out = docx.Document()
    props = out.core_properties
    props.title = document.title
    props.author = document.author
    props.last_modified_by = document.author
    props.created = document.timestamp.replace(tzinfo=None)
    props.modified = document.timestamp.replace(tzinfo=None)
    props.revision = 1
    out.add_heading(document.title, level=0)
    for section in document.sections:
        if section.heading:
            out.add_heading(section.heading, level=1)
        for block in section.blocks:
            if isinstance(block, str):
                out.add_paragraph(block)
            elif isinstance(block, Bullets):
                for item in block.items:
                    out.add_paragraph(item, style="List Bullet")
            elif isinstance(block, Lines):
                for line in block.lines:
                    out.add_paragraph(line)
            else:
                table = out.add_table(rows=1 + len(block.rows), cols=len(block.header))
                table.style = "Table Grid"
                for r, row in enumerate((block.header, *block.rows)):
                    for c, text in enumerate(row):
                        cell = table.cell(r, c)
                        cell.text = text
                        for run in cell.paragraphs[0].runs:
                            run.font.size = DocxPt(9.5)
                            run.font.bold = r == 0
                out.add_paragraph()
    out.save(str(target))
    _normalize_zip(target, document.timestamp)


def _fill_text_frame(frame: object, texts: Sequence[str], size: int) -> None:
    from pptx.text.text import TextFrame

    assert isinstance(frame, TextFrame)
    frame.word_wrap = True
    for i, text in enumerate(texts):
        paragraph = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
        paragraph.text = text
        for run in paragraph.runs:
            run.font.size = PptxPt(size)


def write_pptx(document: Document, target: Path) -> None:
    deck = pptx.Presentation()
    props = deck.core_properties
    props.title = document.title
    props.author = document.author
    props.last_modified_by = document.author
    props.created = document.timestamp.replace(tzinfo=None)
    props.modified = document.timestamp.replace(tzinfo=None)
    props.revision = 1
    for section in document.sections:
        texts: list[str] = []
        tables: list[Table] = []
        for block in section.blocks:
            if isinstance(block, str):
                texts.append(block)
            elif isinstance(block, Bullets):
                texts.extend(block.items)
            elif isinstance(block, Table):
                tables.append(block)
            else:
                texts.extend(block.lines)
        if not section.heading:
            slide = deck.slides.add_slide(deck.slide_layouts[0])
            assert slide.shapes.title is not None
            slide.shapes.title.text = document.title
            _fill_text_frame(slide.placeholders[1].text_frame, texts, 20)
            continue
        if not tables:
            slide = deck.slides.add_slide(deck.slide_layouts[1])
            assert slide.shapes.title is not None
            slide.shapes.title.text = section.heading
            _fill_text_frame(slide.placeholders[1].text_frame, texts, 18)
            continue
        if len(tables) > 1:
            raise ValueError(f"{document.path}: one table per slide")
        slide = deck.slides.add_slide(deck.slide_layouts[5])
        assert slide.shapes.title is not None
        slide.shapes.title.text = section.heading
        top = Inches(1.6)
        if texts:
            height = Inches(0.45 * len(texts))
            box = slide.shapes.add_textbox(Inches(0.5), top, Inches(9.0), height)
            _fill_text_frame(box.text_frame, texts, 16)
            top = top + height + Inches(0.2)
        table = tables[0]
        shape = slide.shapes.add_table(
            1 + len(table.rows), len(table.header), Inches(0.5), top,
            Inches(9.0), Inches(0.4) * (1 + len(table.rows)),
        )
        for r, row in enumerate((table.header, *table.rows)):
            for c, text in enumerate(row):
                cell = shape.table.cell(r, c)
                cell.text = text
                for paragraph in cell.text_frame.paragraphs:
                    for run in paragraph.runs:
                        run.font.size = PptxPt(12)
    deck.save(str(target))
    _normalize_zip(target, document.timestamp)


def write_xlsx(document: Document, target: Path) -> None:
    book = openpyxl.Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    book.properties.title = document.title
    book.properties.creator = document.author
    book.properties.lastModifiedBy = document.author
    book.properties.created = document.timestamp.replace(tzinfo=None)
    book.properties.modified = document.timestamp.replace(tzinfo=None)
    for section in document.sections:
        if len(section.blocks) != 1 or not isinstance(section.blocks[0], Table):
            raise ValueError(f"{document.path}: each sheet is exactly one table")
        table = section.blocks[0]
        sheet = book.create_sheet(section.heading[:31])
        sheet.append(list(table.header))
        for row in table.rows:
            sheet.append([_cell_value(cell) for cell in row])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for c, name in enumerate(table.header):
            longest = max(len(row[c]) for row in (table.header, *table.rows))
            letter = openpyxl.utils.get_column_letter(c + 1)
            sheet.column_dimensions[letter].width = min(90, longest + 3)
    book.save(str(target))
    _normalize_zip(target, document.timestamp)


class _Pdf(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 10, f"{self.footer_text} - page {self.page_no()} of {{nb}}", align="C")


def write_pdf(document: Document, target: Path) -> None:
    if not source_text(document).isascii():
        raise ValueError(f"{document.path}: PDF text must be ASCII (core fonts)")
    pdf = _Pdf(format="letter")
    pdf.footer_text = document.title
    pdf.set_creation_date(document.timestamp)
    pdf.set_title(document.title)
    pdf.set_author(document.author)
    pdf.set_creator("Brightwater Robotics document templates")
    pdf.set_producer("Brightwater Robotics document templates")
    pdf.set_margins(22, 20, 22)
    pdf.set_auto_page_break(True, margin=22)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 17)
    pdf.multi_cell(0, 8, document.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    for section in document.sections:
        if section.new_page:
            pdf.add_page()
        if section.heading:
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 13)
            pdf.multi_cell(0, 7, section.heading, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1)
        for block in section.blocks:
            pdf.set_font("Helvetica", "", 11)
            if isinstance(block, str):
                pdf.multi_cell(0, 5.6, block, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(2.5)
            elif isinstance(block, Bullets | Lines):
                items = block.items if isinstance(block, Bullets) else block.lines
                prefix = "-  " if isinstance(block, Bullets) else ""
                for item in items:
                    pdf.set_x(pdf.l_margin + 4)
                    pdf.multi_cell(pdf.epw - 4, 5.6, prefix + item,
                                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(2.5)
            else:
                pdf.set_font("Helvetica", "", 9.5)
                lengths = [
                    max(len(row[i]) for row in (block.header, *block.rows))
                    for i in range(len(block.header))
                ]
                widths = tuple(max(8, min(40, n)) for n in lengths)
                with pdf.table(col_widths=widths, text_align="LEFT", line_height=5.2) as grid:
                    for row in (block.header, *block.rows):
                        cells = grid.row()
                        for text in row:
                            cells.cell(text)
                pdf.ln(3)
    pdf.output(str(target))


WRITERS: dict[str, Callable[[Document, Path], None]] = {
    "csv": write_csv,
    "docx": write_docx,
    "eml": write_eml,
    "html": write_html,
    "md": write_md,
    "pdf": write_pdf,
    "pptx": write_pptx,
    "txt": write_txt,
    "xlsx": write_xlsx,
}


# --------------------------------------------------------------------------
# Content: Brightwater Robotics, company-wide
# --------------------------------------------------------------------------

D = dt.date
PDT = dt.timezone(dt.timedelta(hours=-7), "PDT")
EDT = dt.timezone(dt.timedelta(hours=-4), "EDT")

COMPANY: tuple[Document, ...] = (
    doc(
        "brightwater/company/employee-handbook.docx",
        "Brightwater Robotics Employee Handbook",
        author="People Team",
        date=D(2025, 1, 6),
        body="""
        This handbook applies to every employee of Brightwater Robotics, Inc.
        from 1 January 2025 and replaces the 2023 edition. Contractors and guest
        accounts follow their own agreements and the onboarding guide of their
        project.

        ## About Brightwater Robotics
        Brightwater Robotics designs, builds and supports autonomous mobile
        robots for warehouses and distribution centers. Our Tern tote carriers
        and Heron picking arms run at 212 customer sites in North America and
        Europe, coordinated by the Harbor fleet manager. We employ about 340
        people at the Portland headquarters, the Reno assembly plant and the
        Pittsburgh research lab.

        ## Working hours
        Core collaboration hours are 10:00 to 15:00 local time, Monday to
        Thursday. Outside core hours, teams agree their own schedules. Employees
        in hybrid roles work from the office at least two days per week. The
        Reno plant runs two shifts (06:00 to 14:30 and 14:30 to 23:00) and shift
        staff follow the rota published by the plant manager every second
        Friday.

        ## Paid time off and sick leave
        Full-time employees accrue 1.75 days of paid time off per month, which
        is 21 days a year, on top of the company holidays in the holiday
        calendar. Up to 5 unused days carry over into the next year; days above
        that lapse on 31 March. Requests for more than 3 consecutive days need
        2 weeks of notice in Workday.

        Sick leave is separate from paid time off: 10 days per year at full
        pay, and no doctor's note is needed for absences of up to 3 days.

        ## Equipment and home office
        Every new starter receives a laptop (a MacBook Pro 14 for engineering,
        a ThinkPad T14 for other teams), a headset and a one-time home-office
        stipend of $650, paid with the first salary. Equipment stays company
        property and is returned on the last working day.

        ## Performance and pay reviews
        Reviews run twice a year, in April and October. Each review combines a
        self-assessment, feedback from 3 peers and a conversation with your
        manager. Merit increases take effect on 1 July; promotions can take
        effect on 1 January or 1 July.

        ## Who to contact
        | Topic | Team | Contact |
        | Payroll and pay slips | Finance | payroll@brightwater.example |
        | Benefits and leave | People team | people@brightwater.example |
        | Laptops and accounts | IT service desk | extension 4357 |
        | Building and badges | Workplace team | workplace@brightwater.example |
        | Safety incidents | Environment, Health and Safety | extension 7233 |
        """,
    ),
    doc(
        "brightwater/company/travel-expense-policy.pdf",
        "Travel and Expense Policy",
        author="Hannah Lindqvist",
        date=D(2025, 2, 1),
        body="""
        Policy FIN-POL-007, version 4.1, effective 1 February 2025. Owner:
        Hannah Lindqvist, Chief Financial Officer. This policy applies to all
        employees who travel on company business. Contractors are reimbursed
        under the terms of their contract, not under this policy.

        ## 1. Booking travel
        Book all flights, hotels and rental cars through the Navan travel
        portal, so that the travel team can locate you in an emergency. Book
        flights at least 14 days before departure. Economy class applies to
        flights shorter than 6 hours; premium economy is allowed for a single
        flight segment of 6 hours or longer. Business class needs written
        approval from the CFO.

        Hotel nightly caps, before taxes: $260 in standard cities and $340 in
        high-cost cities (New York, San Francisco, Boston, Seattle, London and
        Zurich). Customer sites with a negotiated Brightwater rate must use
        that hotel.

        ## 2. Meal per diem
        Brightwater pays a fixed daily allowance for meals instead of
        reimbursing meal receipts. The per diem covers breakfast, lunch, dinner
        and tips.

        | Region | Breakfast | Lunch | Dinner | Daily total |
        | United States, standard cities | $16 | $22 | $40 | $78 |
        | United States, high-cost cities | $19 | $27 | $52 | $98 |
        | Canada | CAD 18 | CAD 24 | CAD 44 | CAD 86 |
        | Euro area | EUR 14 | EUR 21 | EUR 36 | EUR 71 |
        | United Kingdom | GBP 13 | GBP 18 | GBP 32 | GBP 63 |

        The full daily total applies to each full travel day. On the day of
        departure and the day of return, 75 percent of the daily total applies.
        Meals provided by a customer, a conference or an airline are deducted
        at the rate in the table.

        ## 3. Ground transport
        Use public transport, taxis or ride-hailing where practical. Rental cars
        are limited to the mid-size category; decline the optional insurance,
        which our corporate policy already covers. Personal vehicles are
        reimbursed at $0.70 per mile, the 2025 IRS standard rate, from your
        home or office, whichever is nearer.

        ## 4. Expense reports
        Submit expense reports in Navan Expense within 30 days of returning.
        Attach an itemized receipt for any expense of $25 or more. Reports
        above $5,000 need approval from a vice president. Approved reports are
        paid with the next payroll run.

        ## 5. Items we do not reimburse
        - Upgrades of flights, seats or hotel rooms, whether paid personally or
          with points
        - Minibar, in-room movies, spa and fitness charges
        - Traffic and parking fines
        - Lost luggage or personal items, which your own insurance covers
        - Alcohol, except at approved customer dinners with a customer present

        ## 6. Corporate cards
        Employees who travel more than 4 times a year receive an American
        Express corporate card with a monthly limit of $10,000. The card is for
        business expenses only. Statements are reconciled in Navan by the 5th
        business day of the following month; cards with items open for more
        than 60 days are suspended.

        !newpage
        ## Appendix A. Approval matrix
        | Expense | Approver |
        | Domestic trip under $2,500 | Direct manager |
        | Domestic trip of $2,500 or more | Department head |
        | International trip | Vice president |
        | Business class flight | Chief Financial Officer |
        | Customer entertainment over $150 per person | Vice president |

        ## Appendix B. Contacts
        Travel desk (Navan): travel@brightwater.example, available 24 hours a
        day. Expense questions: expenses@brightwater.example. Corporate card
        program administrator: Rosa Delgado, Finance Operations.
        """,
    ),
    doc(
        "brightwater/company/holiday-calendar-2025.csv",
        "Company Holiday Calendar 2025",
        author="People Team",
        date=D(2024, 11, 15),
        body="""
        | date | weekday | holiday | offices | notes |
        | 2025-01-01 | Wednesday | New Year's Day | All US sites | Offices and plant closed. |
        | 2025-01-20 | Monday | Martin Luther King Jr. Day | All US sites | Offices and plant closed. |
        | 2025-02-17 | Monday | Presidents' Day | All US sites | Floating holiday: may be swapped for another day with manager approval. |
        | 2025-05-26 | Monday | Memorial Day | All US sites | Offices and plant closed. |
        | 2025-06-19 | Thursday | Juneteenth | All US sites | Offices and plant closed. |
        | 2025-07-04 | Friday | Independence Day | All US sites | Reno plant runs a skeleton crew paid at double time. |
        | 2025-08-15 | Friday | Recharge Day | All sites | Company-wide day off; on-call engineers take a replacement day within 30 days. |
        | 2025-09-01 | Monday | Labor Day | All US sites | Offices and plant closed. |
        | 2025-10-31 | Friday | Nevada Day | Reno plant only | Portland and Pittsburgh work as normal. |
        | 2025-11-27 | Thursday | Thanksgiving Day | All US sites | Offices and plant closed. |
        | 2025-11-28 | Friday | Day after Thanksgiving | All US sites | Customer support keeps a reduced on-call roster. |
        | 2025-12-24 | Wednesday | Christmas Eve | All US sites | Offices close at 13:00. |
        | 2025-12-25 | Thursday | Christmas Day | All US sites | Offices and plant closed. |
        | 2025-12-29 | Monday | Winter shutdown | All US sites | Shutdown days do not count against paid time off. |
        | 2025-12-30 | Tuesday | Winter shutdown | All US sites | Shutdown days do not count against paid time off. |
        | 2025-12-31 | Wednesday | Winter shutdown | All US sites | Plant maintenance crew works; shutdown pay applies. |
        """,
    ),
    doc(
        "brightwater/company/office-guide.html",
        "Office Guide",
        author="Workplace Team",
        date=D(2025, 3, 10),
        body="""
        Practical information for the three Brightwater Robotics sites. Badge
        problems and visitor registration go to workplace@brightwater.example.

        ## Portland headquarters
        Address: 1400 NW Harbor Works Way, Portland, OR 97209. Reception on
        the ground floor is staffed from 07:30 to 18:00, Monday to Friday.
        Badges open the building from 06:00 to 22:00; outside those hours,
        request after-hours access from the Workplace team at least one day
        ahead.

        Visitor parking is on level P2, spaces 40 to 55. Employees park on
        levels P3 and P4 with a monthly permit of $45, deducted from pay. The
        bike room next to the loading dock has 60 racks and two showers.

        ## Meeting rooms in Portland
        | Room | Floor | Seats | Equipment |
        | Willamette | 2 | 12 | Conference camera, whiteboard wall |
        | Columbia | 3 | 20 | Video wall, ceiling microphones, hybrid kit |
        | Deschutes | 3 | 6 | Display and speakerphone |
        | Clackamas | 4 | 8 | Display, access to the robot demo floor |

        Book rooms in Google Calendar. Meetings with more than 20 people use
        the fourth-floor commons, booked through the Workplace team.

        ## Wi-Fi and printing
        Employees connect laptops to BW-Staff with their single sign-on
        account. Visitors use BW-Guest; the daily password is printed at
        reception. Printers are on every floor and release jobs when you tap
        your badge.

        ## Reno assembly plant
        Address: 2250 Alameda Ridge Road, Reno, NV 89502. Safety shoes and
        high-visibility vests are mandatory beyond the yellow line. Visitors
        complete a 15-minute safety briefing at the gatehouse and stay with
        their host.

        ## Pittsburgh research lab
        Address: 310 Foundry Street, Suite 500, Pittsburgh, PA 15222. The lab
        shares the building with other tenants; use the Brightwater entrance on
        Foundry Street. The robot test hall is open to lab staff only.
        """,
    ),
    doc(
        "brightwater/company/it-security-policy.md",
        "IT Security Policy",
        author="Nikhil Varma",
        date=D(2025, 4, 1),
        body="""
        Policy SEC-POL-002, version 3.0, effective 1 April 2025. Owner: Nikhil
        Varma, Head of Security. Questions go to security@brightwater.example.

        ## Accounts and passwords
        - Use a passphrase of at least 14 characters for your single sign-on
          account. It does not expire unless we detect a compromise.
        - Multi-factor authentication with Okta Verify is mandatory for every
          account. Administrators of production systems use a YubiKey 5C
          hardware key instead of push notifications.
        - Never share accounts. Shared robot service accounts are stored in the
          1Password Engineering vault and rotated every 90 days.

        ## Devices
        Company laptops are enrolled in Kandji (Mac) or Intune (Windows) before
        handover. Full-disk encryption is always on, the screen locks after 5
        minutes of inactivity and USB storage devices are blocked. Personal
        phones may access e-mail and Slack only through the managed apps.

        Critical security patches are installed within 72 hours of release;
        other updates within 14 days. Devices that fall behind lose access to
        single sign-on applications until they are updated.

        ## Data classification
        | Class | Examples | Handling |
        | Public | Website, published datasheets | No restrictions |
        | Internal | Handbook, office guide, release notes | Employees only |
        | Confidential | Customer contracts, pricing, financial results | Need-to-know groups |
        | Restricted | Salary data, investigations, board material | Named people only, never exported |

        ## Reporting incidents
        Report suspected phishing with the Report Phish button in Gmail. Report
        a lost or stolen laptop or phone to the IT service desk within 1 hour,
        at any time of day. Robot or customer-site security issues go to the
        security on-call through the PagerDuty service sec-oncall.
        """,
    ),
    doc(
        "brightwater/company/code-of-conduct.txt",
        "Code of Conduct",
        author="Oliver Grant",
        date=D(2024, 12, 12),
        body="""
        Adopted by the Board of Directors of Brightwater Robotics on 12
        December 2024. Everyone who works for or with Brightwater follows this
        code.

        ## Our commitments
        We build robots that work next to people, so safety comes first: stop
        any robot, line or test that you believe is unsafe, and report it.
        Nobody is ever disciplined for a good-faith safety stop. We treat
        colleagues, customers and partners with respect, and we do not
        tolerate harassment or discrimination of any kind.

        ## Gifts and hospitality
        You may accept gifts or hospitality from a customer, supplier or
        partner up to a value of $100 per business partner per calendar year.
        Anything above that amount, and any gift of cash or gift cards of any
        value, must be declined or declared in the gifts register within 5
        business days. Never accept anything while a purchase decision
        involving that company is open.

        ## Conflicts of interest
        Declare any outside job, board seat, investment above 1 percent of a
        company, or family relationship that could influence your decisions at
        Brightwater. Declarations go to legal@brightwater.example and are
        reviewed by the General Counsel, Oliver Grant, within 10 business days.

        ## Fair competition and confidential information
        Do not discuss prices, bids or customers with competitors. Protect the
        confidential information of Brightwater and of our customers,
        including warehouse layouts and throughput data that we collect through
        the Harbor fleet manager. Share it only with people who need it for
        their work.

        ## Speaking up
        Raise concerns with your manager, the People team or Legal. You may
        also report anonymously through the Ethics Line at 1-800-555-0142 or at
        ethics.brightwater.example; the line is run by an independent provider
        and is available 24 hours a day, 7 days a week. Retaliation against
        anyone who raises a concern in good faith is itself a violation of
        this code.
        """,
    ),
    doc(
        "brightwater/company/benefits-overview-2026.pptx",
        "Benefits Overview 2026",
        author="People Team",
        date=D(2025, 10, 1),
        body="""
        2026 benefits for US employees. Open enrollment runs from 3 November to
        21 November 2025 in Workday.

        ## Medical plans
        | Plan | Carrier | Employee premium per month | Deductible |
        | Harbor PPO | Regence | $0 | $750 |
        | Harbor HDHP | Regence | $0 | $3,200 |
        | Kaiser HMO (Oregon only) | Kaiser Permanente | $35 | $500 |

        ## Retirement and savings
        - 401(k) with Fidelity: Brightwater matches 100 percent of the first 4
          percent of salary you contribute
        - Matching contributions vest immediately
        - HSA contribution of $1,000 per year for employees on the Harbor HDHP
          plan

        ## Time off and family
        - 21 days of paid time off plus company holidays
        - Paid parental leave: see the parental leave policy from the People
          team
        - Backup child and elder care through Bright Horizons: 10 days per year

        ## Wellbeing
        - Monthly wellness allowance of $60 for gyms, sports or mental health
          apps
        - Employee Assistance Program: 8 free counseling sessions per issue
        - Free lunch on Tuesdays and Thursdays at the Portland and Pittsburgh
          sites

        ## What changes in 2026
        - Dental coverage moves from Delta Dental to Guardian on 1 January 2026
        - The HSA contribution rises from $750 to $1,000 per year
        - The vision frames allowance increases to $200 every 24 months
        """,
    ),
)

# --------------------------------------------------------------------------
# Content: engineering (and engineering leads)
# --------------------------------------------------------------------------

ENGINEERING: tuple[Document, ...] = (
    doc(
        "brightwater/engineering/architecture-overview.docx",
        "Harbor Fleet Platform: Architecture Overview",
        author="Fleet Platform Team",
        date=D(2025, 6, 20),
        body="""
        This overview describes the Harbor fleet platform as deployed in June
        2025. It is maintained by the Fleet Platform team; changes go through
        an architecture decision record in the harbor-adr repository.

        ## System context
        Harbor coordinates Tern tote carriers and Heron picking arms inside a
        customer warehouse. Each site runs a Quay edge gateway, an industrial
        PC that keeps the site running for up to 72 hours without a connection
        to the cloud. The cloud side of Harbor runs on Amazon EKS in us-west-2,
        with a disaster recovery copy in us-east-2.

        ## Components
        | Component | Runs on | Language | Owner team |
        | TernOS | Robot (NVIDIA Jetson Orin NX) | C++ on ROS 2 Humble | Robot Software |
        | Quay gateway | Site edge PC | Rust | Fleet Platform |
        | Tidewater traffic planner | Quay gateway | C++ | Motion Planning |
        | Harbor API | Cloud (EKS) | Go | Fleet Platform |
        | Telemetry pipeline | Cloud (EKS) | Go, TimescaleDB | Data Platform |
        | Harbor console | Browser | TypeScript, React | Customer Apps |

        ## Traffic planning
        Tidewater plans every robot's route on a time-expanded graph of the
        site map and replans every 250 ms. Aisles are reserved as segments, so
        two robots never enter the same single-lane segment in opposite
        directions. When a reservation cannot be granted within 2 seconds, the
        robot waits at the nearest parking node and Tidewater raises a
        congestion event.

        ## Messaging
        Robots talk to the Quay gateway over MQTT 5 with mutual TLS, through an
        EMQX broker on the gateway. Certificates are issued by the site's
        intermediate CA and renewed 30 days before they expire. The gateway
        forwards telemetry to the cloud in batches every 10 seconds and buffers
        up to 48 GB locally while offline.

        ## Data and retention
        Robot telemetry is kept at full resolution for 30 days and as 1-minute
        aggregates for 2 years. Site maps and configuration are versioned in
        the Harbor API and can be rolled back from the console.
        """,
    ),
    doc(
        "brightwater/engineering/on-call-runbook.md",
        "Harbor Production On-Call Runbook",
        author="Fleet Platform Team",
        date=D(2025, 8, 4),
        body="""
        Runbook for the Harbor production on-call rotation. Last reviewed on 4
        August 2025.

        ## Rotation
        The rotation is weekly and hands over on Monday at 10:00 Pacific in the
        #harbor-oncall channel. Each week has a primary and a secondary
        engineer from the Fleet Platform and Robot Software teams. On-call
        engineers receive a stipend of $350 per week and a day off in lieu
        after any night with more than 2 hours of incident work.

        ## Severity levels
        | Severity | Definition | Acknowledge within | Escalate to secondary after |
        | Sev-1 | Robots stopped at a customer site, or a safety risk | 5 minutes | 10 minutes |
        | Sev-2 | Throughput at a site degraded by more than 20 percent | 15 minutes | 30 minutes |
        | Sev-3 | Single robot or non-urgent defect | Next business day | Not applicable |

        For a Sev-1, the primary becomes incident commander, opens an incident
        in PagerDuty and posts customer updates every 30 minutes through the
        customer success manager. If the incident is not mitigated within 1
        hour, page the engineering manager on duty, then Carol Diaz, VP
        Operations.

        ## Procedure: fleet stall at a site
        - Check the site dashboard in Grafana (Harbor / Site overview) for
          gateway health and the MQTT connection count.
        - If robots are moving unsafely, pause the site fleet with harborctl
          fleet pause --site SITE_ID; robots finish their current motion and
          brake.
        - Check the gateway certificates with harborctl gateway certs --site
          SITE_ID.
        - Restart the broker only after confirming the certificates; robots
          reconnect within 90 seconds.
        - Resume with harborctl fleet resume --site SITE_ID and watch
          throughput for 15 minutes.

        ## Procedure: robot reported lost
        Ask site staff to press the robot's amber button, which triggers a
        relocalization. If relocalization fails 3 times, mark the robot out of
        service in the Harbor console and create a field service ticket.

        ## After the incident
        Write a postmortem within 3 business days for every Sev-1 and Sev-2
        and send it to the engineering list.
        """,
    ),
    doc(
        "brightwater/engineering/postmortem-inc-2025-0914.eml",
        "Postmortem: Sev-1 fleet stall at Kestrel Outfitters Memphis (INC-2025-0914)",
        author="Alice Chen",
        date=D(2025, 9, 16),
        mail=Mail(
            sender="Alice Chen <alice.chen@brightwater.example>",
            to="Engineering <engineering@brightwater.example>",
            cc="Carol Diaz <carol.diaz@brightwater.example>",
            date=dt.datetime(2025, 9, 16, 17, 42, tzinfo=PDT),
            message_id="<inc-2025-0914.postmortem@brightwater.example>",
        ),
        body="""
        Hi all,

        Here is the postmortem for last Sunday's Sev-1. The review meeting is
        on Thursday 18 September at 11:00 Pacific in the Willamette room and on
        the video link in the calendar invite.

        ## Summary
        On Sunday 14 September 2025, all 38 Tern robots at the Kestrel
        Outfitters distribution center in Memphis stopped for 47 minutes, from
        06:12 to 06:59 Central time. The robots stopped safely; nobody was hurt
        and no goods were damaged. Kestrel lost roughly 2,900 order picks,
        which were recovered by the end of the morning shift.

        ## Root cause
        The server certificate of the MQTT broker on the site's Quay gateway
        expired at 06:12. The renewal job had been disabled during the upgrade
        of the gateway to Quay 2.3 on 28 August and was never re-enabled, so
        the renewal 30 days before expiry did not happen. Robots refused the
        expired certificate and stopped, as designed, when they lost their
        connection.

        ## Timeline (Central time)
        - 06:12 The certificate expires; robots lose their connection and stop.
        - 06:15 PagerDuty pages the primary on-call, Alice Chen.
        - 06:25 Escalated to the secondary, Marcus Bell.
        - 06:41 Expired certificate identified.
        - 06:52 New certificate issued and broker restarted.
        - 06:59 All robots reconnected and working.

        ## What went well
        The robots failed safely, and the site team kept shipping by hand from
        the two manual pick zones.

        ## Action items
        | Action | Owner | Due |
        | Re-enable certificate renewal on all gateways and verify it | Marcus Bell | 19 Sep 2025 |
        | Alert 14 days before any gateway certificate expires | Alice Chen | 26 Sep 2025 |
        | Add a renewal check to the Quay upgrade checklist | Priya Raman | 26 Sep 2025 |
        | Offer Kestrel a service credit under the SLA | Jonah Reyes | 30 Sep 2025 |

        Thanks to everyone who helped on a Sunday morning.

        / Alice
        """,
    ),
    doc(
        "brightwater/engineering/fleet-firmware-release-notes.txt",
        "TernOS Fleet Firmware Release Notes",
        author="Robot Software Team",
        date=D(2025, 10, 6),
        body="""
        Release notes for TernOS, the robot software of the Tern tote carrier.
        Rollouts are staged through the Harbor console; customer sites are
        never upgraded during their peak windows.

        ## TernOS 4.2.0, released 6 October 2025
        - Obstacle classifier v3 distinguishes people, pallets and other
          robots; false emergency stops fall by about 35 percent in our test
          hall.
        - Maximum aisle speed increases from 1.6 m/s to 2.0 m/s in aisles
          marked as robot-only in the site map.
        - Battery swap scheduling: robots below 22 percent charge go to a swap
          station when one is free within 4 minutes.
        - Support for the new CHG-DOCK-2 charging dock.
        - Fixed: robots no longer pause for 3 seconds after a map update
          (TERN-4471).
        - Fixed: odometry drift on the Tern 300 with worn wheels (TERN-4502).

        ## Upgrade path
        Robots must run TernOS 4.1.3 before they upgrade to 4.2.0, because
        4.2.0 needs the new bootloader that 4.1.3 installs. Robots on 4.0.x
        upgrade in two steps. A site of 50 robots upgrades in about 40 minutes;
        robots upgrade in batches of 5 while the rest keep working.

        ## Rollout waves for 4.2.0
        | Wave | Sites | Start date |
        | Wave 1 | Pittsburgh test hall and 3 pilot customer sites | 6 October 2025 |
        | Wave 2 | 40 sites in North America | 20 October 2025 |
        | Wave 3 | All remaining sites, except those in holiday peak freeze | 12 January 2026 |

        ## Known issues
        - On sites with more than 120 robots, the first route after a restart
          can take up to 6 seconds to plan. A fix is planned for 4.2.1.
        - Heron picking arms are not affected by this release; Heron firmware
          follows its own schedule.

        ## TernOS 4.1.3, released 18 August 2025
        - New bootloader with signed-image verification.
        - Fixed a rare battery gauge reset after a swap (TERN-4390).
        """,
    ),
    doc(
        "brightwater/engineering/leads/headcount-plan-2026.xlsx",
        "Engineering Headcount Plan 2026",
        author="Carol Diaz",
        date=D(2025, 10, 28),
        body="""
        ## Headcount by team
        | Team | Current headcount | Approved adds 2026 | Open backfills | Target end of 2026 | Hiring manager |
        | Robot Software | 24 | 5 | 1 | 29 | Priya Raman |
        | Fleet Platform | 18 | 4 | 2 | 22 | Marcus Bell |
        | Motion Planning | 11 | 3 | 0 | 14 | Tomasz Nowak |
        | Hardware and Mechatronics | 21 | 3 | 1 | 24 | Ingrid Solberg |
        | Data Platform | 9 | 2 | 0 | 11 | Samir Haddad |
        | Customer Apps | 8 | 1 | 1 | 9 | Lucia Ferraro |
        | Total | 91 | 18 | 5 | 109 | Carol Diaz |

        ## Open requisitions
        | Requisition | Role | Team | Level | Location | Target start |
        | ENG-REQ-2026-001 | Senior Robotics Software Engineer | Robot Software | L5 | Portland | 2026-02 |
        | ENG-REQ-2026-002 | Robotics Software Engineer | Robot Software | L4 | Pittsburgh | 2026-03 |
        | ENG-REQ-2026-003 | Staff Site Reliability Engineer | Fleet Platform | L6 | Portland | 2026-02 |
        | ENG-REQ-2026-004 | Motion Planning Engineer | Motion Planning | L5 | Pittsburgh | 2026-04 |
        | ENG-REQ-2026-005 | Mechatronics Engineer, Atlas sustaining | Hardware and Mechatronics | L4 | Reno | 2026-05 |
        | ENG-REQ-2026-006 | Data Engineer | Data Platform | L4 | Remote, US | 2026-03 |

        ## Notes
        | Note |
        | The 2026 plan adds 18 net new engineering positions, taking engineering from 91 to 109 people by December 2026. |
        | Approved by the executive team on 28 October 2025; the cost is included in the FY2026 operating budget. |
        | Four of the 18 positions are Atlas sustaining roles and open only after the Atlas general availability decision. |
        | Backfills do not count against the 18 new positions and can be opened by the hiring manager at any time. |
        | Do not share requisition details with candidates or agencies before the role is posted. |
        """,
    ),
    doc(
        "brightwater/engineering/leads/performance-calibration-notes.docx",
        "Engineering Performance Calibration Notes, H2 2025",
        author="Carol Diaz",
        date=D(2025, 10, 22),
        body="""
        Calibration of engineering ratings for the H2 2025 review cycle, held
        on 21 October 2025. Attendees: Carol Diaz (chair), Priya Raman, Marcus
        Bell, Tomasz Nowak, Ingrid Solberg, Samir Haddad and Lucia Ferraro.
        Confidential to engineering leads.

        ## Rating distribution
        | Rating | Engineers | Share |
        | Exceeds expectations | 16 | 18 percent |
        | Meets expectations | 64 | 71 percent |
        | Below expectations | 10 | 11 percent |

        90 engineers were rated; one engineer who joined in October is rated
        in the next cycle. The group agreed to keep the Exceeds share below 20
        percent and reviewed every rating at the boundary between two levels.

        ## Promotions approved
        - Ines Carvalho, Motion Planning: from L5 Senior Engineer to L6 Staff
          Engineer, for the redesign of aisle reservations in Tidewater.
        - Alice Chen, Fleet Platform: from L4 to L5 Senior Robotics Software
          Engineer, effective 1 January 2026.
        - Ravi Menon, Hardware and Mechatronics: from L3 to L4.

        Two further nominations, one in Robot Software and one in Data
        Platform, were deferred to the April 2026 cycle with development plans.

        ## Performance plans
        Three engineers rated below expectations for the second cycle in a row
        move to a 60-day performance improvement plan starting on 3 November
        2025. Their managers meet the HR business partner, Grace Park, before
        31 October.

        ## Next steps
        - Managers send their final ratings to Carol Diaz by 7 November 2025.
        - Employees hear their ratings in one-to-one meetings by 21 November
          2025.
        - For the next cycle, collect peer feedback before the manager writes
          the draft, not after.
        """,
    ),
)
