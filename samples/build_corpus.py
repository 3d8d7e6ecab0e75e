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
        ("alice", "Alice Chen", "Robotics Software Engineer", BRIGHTWATER, OID_ALICE, [G_ENGINEERING], [], False),
        ("bob", "Bob Okafor", "Financial Analyst", BRIGHTWATER, OID_BOB, [G_FINANCE], [], False),
        (
            "carol",
            "Carol Diaz",
            "VP Operations",
            BRIGHTWATER,
            OID_CAROL,
            [G_ENGINEERING, G_ENG_LEADS, G_FINANCE, G_MANAGERS],
            ["Clearance.Admin"],
            False,
        ),
        (
            "dan",
            "Dan Fischer",
            "External Contractor, Lidar Integration",
            BRIGHTWATER,
            OID_DAN,
            [G_PROJECT_ATLAS],
            [],
            True,
        ),
        ("erin", "Erin Walsh", "Partner Manager", NORTHWIND, OID_ERIN, [G_PARTNERS], [], False),
        ("frank", "Frank Ito", "Sales Director", BRIGHTWATER, OID_FRANK, frank_groups, [], False),
        ("grace", "Grace Park", "HR Business Partner", BRIGHTWATER, OID_GRACE, [G_HR, G_MANAGERS], [], False),
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
    groups += [{"id": gid, "tenant": BRIGHTWATER, "name": name} for gid, name in distribution_lists()]
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
    "brightwater/announcements/inventor-award-alice-chen.html.acl.json": _acl([_u(OID_ALICE)]),
    "brightwater/engineering/.acl.json": _acl([_g(G_ENGINEERING)]),
    "brightwater/engineering/leads/.acl.json": _acl([_g(G_ENG_LEADS)]),
    "brightwater/projects/atlas/.acl.json": _acl([_g(G_PROJECT_ATLAS), _g(G_ENGINEERING)]),
    "brightwater/projects/atlas/atlas-budget.xlsx.acl.json": _acl([_g(G_FINANCE), _g(G_MANAGERS)]),
    "brightwater/finance/.acl.json": _acl([_g(G_FINANCE), _g(G_MANAGERS)]),
    "brightwater/finance/board-compensation-2025.docx.acl.json": _acl([], [_u(OID_GRACE)], inherit=True),
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
    the header (a row that does not end with ``|`` continues on the next
    line), ``/ `` lines are kept as lines, other lines join into paragraphs.
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
        elif kind == "table" and not pending[-1].endswith("|"):
            pending[-1] = f"{pending[-1]} {line}"
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
    widths = [max(len(row[i]) for row in (table.header, *table.rows)) for i in range(len(table.header))]

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
                out += [*textwrap.wrap(block, width), ""]
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
        top: int = Inches(1.6)
        if texts:
            height = Inches(0.45 * len(texts))
            box = slide.shapes.add_textbox(Inches(0.5), top, Inches(9.0), height)
            _fill_text_frame(box.text_frame, texts, 16)
            top = top + height + Inches(0.2)
        table = tables[0]
        shape = slide.shapes.add_table(
            1 + len(table.rows),
            len(table.header),
            Inches(0.5),
            top,
            Inches(9.0),
            Inches(0.4) * (1 + len(table.rows)),
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
    book.remove(book.active)
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
        for c in range(len(table.header)):
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
                    pdf.multi_cell(pdf.epw - 4, 5.6, prefix + item, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(2.5)
            else:
                pdf.set_font("Helvetica", "", 9.5)
                lengths = [max(len(row[i]) for row in (block.header, *block.rows)) for i in range(len(block.header))]
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
        | 2025-02-17 | Monday | Presidents' Day | All US sites | Floating holiday: may be swapped for another day with
        manager approval. |
        | 2025-05-26 | Monday | Memorial Day | All US sites | Offices and plant closed. |
        | 2025-06-19 | Thursday | Juneteenth | All US sites | Offices and plant closed. |
        | 2025-07-04 | Friday | Independence Day | All US sites | Reno plant runs a skeleton crew paid at double time. |
        | 2025-08-15 | Friday | Recharge Day | All sites | Company-wide day off; on-call engineers take a replacement
        day within 30 days. |
        | 2025-09-01 | Monday | Labor Day | All US sites | Offices and plant closed. |
        | 2025-10-31 | Friday | Nevada Day | Reno plant only | Portland and Pittsburgh work as normal. |
        | 2025-11-27 | Thursday | Thanksgiving Day | All US sites | Offices and plant closed. |
        | 2025-11-28 | Friday | Day after Thanksgiving | All US sites | Customer support keeps a reduced on-call
        roster. |
        | 2025-12-24 | Wednesday | Christmas Eve | All US sites | Offices close at 13:00. |
        | 2025-12-25 | Thursday | Christmas Day | All US sites | Offices and plant closed. |
        | 2025-12-29 | Monday | Winter shutdown | All US sites | Shutdown days do not count against paid time off. |
        | 2025-12-30 | Tuesday | Winter shutdown | All US sites | Shutdown days do not count against paid time off. |
        | 2025-12-31 | Wednesday | Winter shutdown | All US sites | Plant maintenance crew works; shutdown pay
        applies. |
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
        "Postmortem: Sev-1 fleet stall at Kestrel Memphis (INC-2025-0914)",
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
        | The 2026 plan adds 18 net new engineering positions, taking engineering from 91 to 109 people by December
        2026. |
        | Approved by the executive team on 28 October 2025; the cost is included in the FY2026 operating budget. |
        | Four of the 18 positions are Atlas sustaining roles and open only after the Atlas general availability
        decision. |
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

# --------------------------------------------------------------------------
# Content: Project Atlas (engineering plus the external contractor)
# --------------------------------------------------------------------------

ATLAS: tuple[Document, ...] = (
    doc(
        "brightwater/projects/atlas/atlas-launch-plan.pptx",
        "Project Atlas Launch Plan",
        author="Ingrid Solberg",
        date=D(2025, 10, 20),
        body="""
        Launch plan for the Atlas high-bay pallet robot. Program review, 20
        October 2025.

        ## Atlas at a glance
        - Autonomous pallet robot that lifts loads of up to 1,200 kg onto
          racking 11 m high
        - Runs on Harbor and the Tidewater traffic planner, so it shares aisles
          with Tern robots
        - Lidar stack built with Fischer Sensorik, our integration contractor
        - Target list price to be set by Sales in the first quarter of 2026

        ## Milestones
        | Milestone | Date | Status |
        | EVT complete | 2025-07-31 | Done |
        | DVT complete | 2025-11-14 | On track |
        | UL 3100 certification submitted | 2025-12-05 | On track |
        | Pilot start at Larkspur Foods, Sacramento | 2026-01-12 | Planned |
        | General availability | 2026-03-17 | Planned |

        ## Pilot plan
        - 4 Atlas robots at the Larkspur Foods distribution center in
          Sacramento, on the night shift only for the first 2 weeks
        - Success criterion: at least 40 km mean distance between
          interventions over 6 weeks
        - Brightwater field engineers on site for the first 10 nights

        ## Top risks
        - Second lidar supplier not yet qualified: single source until the
          second quarter of 2026
        - Mast vibration above 10 m on uneven floors (defect ATL-D-031)
        - The UL 3100 review queue could delay general availability by 3 to 5
          weeks

        ## Team
        - Program lead: Ingrid Solberg, Hardware and Mechatronics
        - Software lead: Priya Raman, Robot Software
        - Lidar integration: Dan Fischer, Fischer Sensorik (contractor)
        - Weekly program review on Wednesdays at 09:00 Pacific

        ## Go or no-go for general availability
        - Pilot success criterion met
        - UL 3100 certificate received
        - No open Sev-1 defects and fewer than 5 open Sev-2 defects
        - Decision meeting with the executive team on 2026-03-03
        """,
    ),
    doc(
        "brightwater/projects/atlas/atlas-test-results.xlsx",
        "Atlas Test Results",
        author="Atlas Test Team",
        date=D(2025, 10, 17),
        body="""
        ## Lift tests
        | Test ID | Date | Load kg | Height m | Result | Notes |
        | ATL-T-101 | 2025-08-04 | 500 | 6.0 | Pass | Baseline run |
        | ATL-T-104 | 2025-08-11 | 800 | 8.0 | Pass | Sway 9 mm at the top |
        | ATL-T-108 | 2025-08-25 | 1000 | 9.5 | Pass | Sway 14 mm at the top |
        | ATL-T-111 | 2025-09-08 | 1200 | 10.0 | Pass | Sway 21 mm at the top |
        | ATL-T-114 | 2025-09-22 | 1200 | 10.5 | Fail | Mast oscillation of 46 mm over a floor joint; test stopped |
        | ATL-T-117 | 2025-10-06 | 1200 | 10.5 | Pass | Firmware damping patch; sway 19 mm |
        | ATL-T-119 | 2025-10-13 | 1200 | 11.0 | Pass | Sway 24 mm; the limit is 30 mm |

        ## Navigation runs
        | Run ID | Site | Distance km | Interventions | Km per intervention |
        | NAV-07 | Pittsburgh test hall | 118 | 4 | 29.5 |
        | NAV-08 | Pittsburgh test hall | 142 | 3 | 47.3 |
        | NAV-09 | Reno plant warehouse | 96 | 2 | 48.0 |
        | NAV-10 | Reno plant warehouse | 131 | 2 | 65.5 |

        ## Open defects
        | Defect ID | Severity | Description | Owner | Status |
        | ATL-D-031 | Sev-2 | Mast oscillation above 10 m on uneven floor joints | Ingrid Solberg | Fix in validation |
        | ATL-D-037 | Sev-2 | Lidar dropouts in direct sunlight at dock doors | Dan Fischer | Investigating |
        | ATL-D-040 | Sev-3 | Fork tilt sensor reports a 0.4 degree offset after a cold start | Ravi Menon | Open |
        | ATL-D-042 | Sev-3 | Harbor console shows the wrong battery icon for Atlas | Lucia Ferraro | Fixed in next
        build |

        ## Notes
        | Note |
        | All lift tests use the Reno test rack with 11 m uprights and a certified 1,200 kg test load. |
        | Test ATL-T-114 failed at 10.5 m when the mast oscillated over a floor joint; the damping patch in build
        0.9.4 fixed it (retest ATL-T-117). |
        | A navigation intervention is counted whenever a person has to touch the robot or the console to keep it
        working. |
        """,
    ),
    doc(
        "brightwater/projects/atlas/contractor-onboarding.md",
        "Project Atlas: Contractor Onboarding",
        author="Ingrid Solberg",
        date=D(2025, 6, 2),
        body="""
        Welcome to Project Atlas. This guide is for external contractors
        working on Atlas, such as our lidar integration partner Fischer
        Sensorik. Your Brightwater sponsor is the Atlas program lead, Ingrid
        Solberg.

        ## Your account
        You receive a guest account in the Brightwater directory, linked to the
        e-mail address of your own company. The guest account gives access to
        the Atlas project folder, the ATL project in Jira and the #atlas-ext
        Slack channel. It does not give access to the company intranet, the
        VPN or other projects. Guest accounts expire after 6 months and are
        renewed by your sponsor.

        ## Tools
        | Tool | What for | How to get access |
        | Jira project ATL | Tasks and defects | Granted with the guest account |
        | Slack channel #atlas-ext | Day-to-day questions | Invitation from your sponsor |
        | Atlas project folder | Specifications, test results, launch plan | Granted with the guest account |
        | Fieldglass | Timesheets | Invitation from Procurement |

        ## Timesheets and invoices
        Record your hours in Fieldglass every week by Friday at 17:00 Pacific.
        Invoices are generated monthly from approved timesheets; do not send
        separate invoices by e-mail.

        ## Working on site
        Before your first visit to the Reno plant, complete the 90-minute
        online safety induction. On site, wear safety shoes and the orange
        contractor badge at all times. The Atlas test rack is in bay 7 of the
        Reno plant, a restricted area: a Brightwater engineer escorts
        contractors there.

        ## Confidentiality
        Your contract includes a non-disclosure agreement. Do not copy Atlas
        documents to personal devices or share them outside the people named
        in your statement of work.
        """,
    ),
    doc(
        "brightwater/projects/atlas/atlas-budget.xlsx",
        "Project Atlas Budget FY2026",
        author="Hannah Lindqvist",
        date=D(2025, 9, 30),
        body="""
        ## Program budget
        | Category | FY2025 actual USD | FY2026 budget USD | Notes |
        | Engineering labor | 1840000 | 2310000 | 14 full-time engineers in FY2026 |
        | Prototype hardware | 612000 | 480000 | 6 DVT units and 4 pilot units |
        | Lidar sensors and integration | 395000 | 540000 | Includes the Fischer Sensorik contract |
        | Test facility, Reno bay 7 | 210000 | 160000 | Rack rental ends in June 2026 |
        | Certification, UL 3100 and CE | 45000 | 230000 | Test lab fees and consulting |
        | Pilot support | 0 | 260000 | Larkspur Foods pilot, field engineers and travel |
        | Contingency | 0 | 880000 | Held by Finance |
        | Total | 3102000 | 4860000 | Approved 30 September 2025 |

        ## Contractors
        | Contractor | Role | Day rate USD | Days FY2026 | Total USD |
        | Fischer Sensorik (Dan Fischer) | Lidar integration | 1150 | 180 | 207000 |
        | Kettle Labs | Mast dynamics simulation | 980 | 60 | 58800 |
        | Ortega Compliance | UL 3100 consulting | 1400 | 45 | 63000 |

        ## Notes
        | Note |
        | The FY2026 Atlas program budget is $4,860,000, including a contingency of $880,000 held by Finance. |
        | Approved by Carol Diaz and Hannah Lindqvist on 30 September 2025. |
        | Contractor day rates are confidential and must not be shared with contractors or their companies. |
        | Spending above a category budget by more than 10 percent needs a reallocation request to Finance. |
        | The budget assumes general availability in March 2026; every month of delay adds about $190,000 of labor
        cost. |
        """,
    ),
)

# --------------------------------------------------------------------------
# Content: finance
# --------------------------------------------------------------------------

FINANCE: tuple[Document, ...] = (
    doc(
        "brightwater/finance/q3-results.xlsx",
        "Q3 2025 Financial Results",
        author="Bob Okafor",
        date=D(2025, 10, 24),
        body="""
        ## P&L summary
        | Line (USD thousands) | Q3 2025 | Q2 2025 | Q3 2024 |
        | Revenue | 38420 | 35110 | 29330 |
        | Cost of revenue | 21285 | 19870 | 17010 |
        | Gross profit | 17135 | 15240 | 12320 |
        | Operating expenses | 15890 | 15320 | 13450 |
        | Operating income | 1245 | -80 | -1130 |

        ## Revenue by product
        | Product | Q3 2025 (USD thousands) | Share percent |
        | Tern robots (hardware) | 16140 | 42.0 |
        | Heron picking arms | 7300 | 19.0 |
        | Harbor software subscriptions | 9220 | 24.0 |
        | Robots as a service | 3840 | 10.0 |
        | Services and spare parts | 1920 | 5.0 |

        ## Revenue by region
        | Region | Q3 2025 (USD thousands) | Q3 2024 (USD thousands) | Growth percent |
        | United States | 27660 | 21700 | 27.5 |
        | Canada | 3070 | 2350 | 30.6 |
        | Europe | 7690 | 5280 | 45.6 |

        ## Opex by department
        | Department | Q3 2025 (USD thousands) | Budget (USD thousands) | Variance |
        | Engineering | 7420 | 7600 | -180 |
        | Sales and marketing | 4310 | 4150 | 160 |
        | Operations and field service | 2460 | 2500 | -40 |
        | General and administrative | 1700 | 1750 | -50 |

        ## Notes
        | Note |
        | All amounts are in thousands of US dollars unless stated otherwise. |
        | Q3 2025 revenue was $38.42 million, up 31 percent year over year; gross margin was 44.6 percent. |
        | Q3 2025 is the first quarter with a positive operating income, $1.245 million. |
        | Cash at 30 September 2025 was $52.7 million; no debt is drawn. |
        | Deferred revenue from Harbor subscriptions rose to $21.3 million. |
        | Results were presented to the Board of Directors on 21 October 2025. |
        """,
    ),
    doc(
        "brightwater/finance/fy2026-budget.pdf",
        "FY2026 Operating Budget",
        author="Hannah Lindqvist",
        date=D(2025, 12, 10),
        body="""
        FY2026 operating budget of Brightwater Robotics, approved by the Board
        of Directors on 9 December 2025. Fiscal year 2026 runs from 1 January
        to 31 December 2026. Prepared by Finance; owner Hannah Lindqvist, CFO.

        ## Summary
        | Item | FY2025 forecast | FY2026 budget |
        | Revenue | $146,800,000 | $188,500,000 |
        | Gross margin | 43.9 percent | 46.0 percent |
        | Operating expenses | $62,400,000 | $71,900,000 |
        | Operating income | $2,045,000 | $14,810,000 |
        | Capital expenditure | $6,300,000 | $9,840,000 |
        | Year-end headcount | 340 | 392 |

        ## Revenue plan
        Revenue grows by 28 percent. About 55 percent of the new revenue comes
        from expansion at existing customers, the rest from new customers in
        North America and from the Atlas launch, which contributes $11,200,000
        in the second half of the year. Harbor subscription revenue is planned
        at $44,000,000, up from $36,100,000.

        ## Operating expenses by department
        | Department | FY2026 budget | Change vs FY2025 |
        | Engineering | $33,600,000 | +14 percent |
        | Sales and marketing | $19,800,000 | +18 percent |
        | Operations and field service | $11,100,000 | +9 percent |
        | General and administrative | $7,400,000 | +6 percent |

        ## Capital expenditure
        The capital budget of $9,840,000 funds Atlas production tooling on
        Reno Line 2 ($4,100,000), a second robot test lane in Reno
        ($2,650,000), test equipment for the Pittsburgh lab ($1,420,000) and IT
        and office equipment ($1,670,000).

        ## Headcount
        Year-end headcount grows from 340 to 392. Engineering adds 18
        positions, Sales 14, Operations and field service 15, and General and
        administrative 5.

        ## Budget controls
        Budget owners review spending every month with their finance partner.
        Reallocations between departments above $300,000 need approval from
        the CFO. The contingency of $2,000,000 is held centrally and released
        only by the CEO and the CFO together. A reforecast is presented to the
        board after the second quarter.
        """,
    ),
    doc(
        "brightwater/finance/vendor-payment-runbook.docx",
        "Vendor Payment Runbook",
        author="Rosa Delgado",
        date=D(2025, 5, 12),
        body="""
        How Finance Operations pays suppliers. Owner: Rosa Delgado, Finance
        Operations Manager. Applies to all supplier payments from Brightwater's
        operating accounts at Cascade Commerce Bank.

        ## Payment calendar
        Payment runs happen every Tuesday and Thursday. Invoices must be
        approved in NetSuite by 12:00 Pacific on the day before the run.
        Invoices with 2/10 net 30 early-payment terms are scheduled on day 9
        to capture the discount.

        ## Three-way match
        Before an invoice is paid, NetSuite matches the purchase order, the
        goods receipt and the invoice. The match passes when the invoice is
        within 2 percent or $500 of the received amount, whichever is lower.
        Invoices that fail the match go back to the buyer with a reason code.

        ## Approval limits
        | Payment amount | Approvers |
        | Up to $25,000 | Accounts payable specialist and budget owner |
        | $25,000 to $250,000 | Finance Operations Manager |
        | Above $250,000 | Chief Financial Officer, plus a second signatory in the bank portal |

        ## New suppliers and bank detail changes
        Every new supplier and every change of bank details is verified by a
        call-back to a phone number from the supplier's contract or website,
        never to a number given in the request itself. The person who makes
        the call-back cannot be the person who enters the bank details.
        Changes take effect only after a hold of 3 business days.

        ## Running the payment file
        - Export the approved payment batch from NetSuite as a NACHA file.
        - Upload the file to the Cascade Commerce Bank portal before 15:00
          Pacific.
        - The second approver releases the batch in the portal; the bank
          confirms by e-mail within 1 hour.
        - Attach the bank confirmation to the batch in NetSuite and close it.

        ## When something goes wrong
        A rejected or returned payment is investigated on the same day.
        Suspected fraud, such as an unexpected change of bank details, is
        reported immediately to the CFO and to security@brightwater.example,
        and the payment batch is put on hold.
        """,
    ),
    doc(
        "brightwater/finance/board-compensation-2025.docx",
        "Executive and Board Compensation 2025",
        author="Compensation Committee",
        date=D(2025, 9, 23),
        body="""
        Approved by the Compensation Committee of the Board of Directors on 23
        September 2025. Restricted to finance leadership and the committee.

        ## Executive base salaries for 2026
        | Executive | Role | 2025 base salary | 2026 base salary | Bonus target |
        | Martin Alvarez | Chief Executive Officer | $370,000 | $385,000 | 50 percent |
        | Hannah Lindqvist | Chief Financial Officer | $298,000 | $310,000 | 40 percent |
        | Carol Diaz | VP Operations | $255,000 | $266,000 | 35 percent |
        | Oliver Grant | General Counsel | $262,000 | $270,000 | 30 percent |
        | Nikhil Varma | Head of Security | $228,000 | $236,000 | 25 percent |

        ## 2025 bonus payout
        The company reached 104 percent of its revenue goal and 112 percent of
        its operating income goal, so the 2025 bonus pool is funded at 108
        percent. Individual bonuses are paid on 13 March 2026.

        ## Board fees
        Independent directors receive an annual cash retainer of $45,000 and an
        equity grant worth $120,000 that vests over one year. The chair of the
        audit committee receives an additional $15,000 and the chair of the
        compensation committee an additional $10,000.

        ## Equity refresh
        The committee approved an executive equity refresh of 410,000 options
        at an exercise price of $6.85 per share, the 409A valuation of 31
        August 2025. The options vest over 4 years with a one-year cliff.

        ## Process notes
        The committee used the Radford technology survey for companies with
        250 to 500 employees and targeted the 50th percentile for base salary.
        The next review is scheduled for September 2026.
        """,
    ),
)

# --------------------------------------------------------------------------
# Content: HR
# --------------------------------------------------------------------------

HR: tuple[Document, ...] = (
    doc(
        "brightwater/hr/salary-bands-2025.xlsx",
        "Salary Bands 2025",
        author="Grace Park",
        date=D(2025, 3, 1),
        body="""
        ## Engineering
        | Level | Title | Minimum USD | Midpoint USD | Maximum USD |
        | L3 | Robotics Software Engineer I | 104000 | 122000 | 140000 |
        | L4 | Robotics Software Engineer II | 126000 | 147000 | 168000 |
        | L5 | Senior Robotics Software Engineer | 151000 | 176000 | 201000 |
        | L6 | Staff Robotics Software Engineer | 181000 | 211000 | 241000 |
        | L7 | Principal Robotics Software Engineer | 214000 | 250000 | 286000 |

        ## Operations
        | Level | Title | Minimum USD | Midpoint USD | Maximum USD |
        | O1 | Robot Assembly Technician | 52000 | 60000 | 68000 |
        | O2 | Senior Assembly Technician | 61000 | 71000 | 81000 |
        | O3 | Field Service Engineer | 78000 | 91000 | 104000 |
        | O4 | Field Service Lead | 92000 | 107000 | 122000 |

        ## Sales
        | Level | Title | Base minimum USD | Base midpoint USD | Base maximum USD | On-target earnings USD |
        | S2 | Account Executive | 98000 | 115000 | 132000 | 230000 |
        | S3 | Senior Account Executive | 120000 | 140000 | 160000 | 280000 |
        | S4 | Sales Director | 155000 | 180000 | 205000 | 340000 |

        ## Notes
        | Note |
        | Bands are effective from 1 March 2025 for US locations. Reno and Pittsburgh apply a geographic factor of
        0.92; Portland uses 1.0. |
        | The midpoint of the L5 Senior Robotics Software Engineer band is $176,000. |
        | Offers above the midpoint need approval from the People team and the department head; offers above the
        maximum need approval from the CEO. |
        | Bands are reviewed every February against market survey data. |
        """,
    ),
    doc(
        "brightwater/hr/parental-leave-policy.docx",
        "Parental Leave Policy",
        author="People Team",
        date=D(2025, 1, 2),
        body="""
        Policy HR-POL-011, effective 1 January 2025, for all US employees of
        Brightwater Robotics.

        ## Who is eligible
        Every employee who has worked at Brightwater for at least 90 days on
        the date of birth, adoption or foster placement is eligible, whatever
        their gender and whichever parent gives birth.

        ## How much leave
        Every eligible parent receives 18 weeks of fully paid parental leave.
        Birthing parents receive up to 6 additional weeks of paid medical
        recovery leave, as certified by their doctor. Leave can be taken in one
        block or in up to 3 blocks of at least 2 weeks each, within 12 months
        of the birth or placement.

        ## Pay and benefits during leave
        Brightwater pays 100 percent of base salary during parental leave,
        topping up state programs such as Paid Leave Oregon. Benefits continue
        unchanged and paid time off keeps accruing. Sales employees on
        commission receive their average monthly commission of the previous 12
        months.

        ## Returning to work
        Parents can use a phased return of up to 4 weeks on a 60 percent
        schedule with full pay. Your role, or an equivalent role with the same
        pay and level, is guaranteed on your return.

        ## Adoption and surrogacy support
        Brightwater reimburses up to $15,000 per child of adoption or
        surrogacy expenses, such as agency and legal fees.

        ## How to request leave
        Tell your manager and the People team at least 8 weeks before the
        expected start of your leave, or as soon as possible for adoption and
        foster placement. Submit the request in Workday under Time Off,
        Parental Leave. Your HR business partner confirms the dates and pay in
        writing within 5 business days.
        """,
    ),
    doc(
        "brightwater/hr/investigation-case-hr-2025-017.eml",
        "Case HR-2025-017 - interim summary (confidential)",
        author="Lena Morozov",
        date=D(2025, 10, 10),
        mail=Mail(
            sender="Lena Morozov <lena@morozov-investigations.example>",
            to="Grace Park <grace.park@brightwater.example>",
            date=dt.datetime(2025, 10, 10, 16, 5, tzinfo=PDT),
            message_id="<hr-2025-017.interim@morozov-investigations.example>",
        ),
        body="""
        Grace,

        As agreed, here is my interim summary for case HR-2025-017. It is
        confidential and legally privileged; please do not forward it.

        ## Complaint
        On 22 September 2025, two assembly technicians on the evening shift at
        the Reno plant complained that their shift supervisor, Derek Haines,
        assigned overtime on the basis of personal favoritism and made
        demeaning remarks about their age in team meetings.

        ## Work so far
        I interviewed the two complainants, Derek Haines and 6 witnesses
        between 29 September and 8 October. I also reviewed the overtime
        records of the evening shift from June to September 2025 and the
        team's Slack messages, provided by IT under the investigation hold.

        ## Interim observations
        - The overtime records show that 4 of the 14 technicians on the shift
          received 61 percent of the overtime hours in the period.
        - Three witnesses independently described remarks consistent with the
          complaint; two witnesses did not recall them.
        - I found no evidence that the complainants were treated differently
          after they complained.

        No findings have been made yet, and these observations may change as
        the investigation continues.

        ## Interim measures in place
        Derek Haines moved to the day shift on 25 September 2025 and does not
        assign overtime while the investigation is open. Overtime on the
        evening shift is assigned by the plant manager from a rotating list.

        ## Next steps
        I will interview the plant manager and two further witnesses next week
        and expect to deliver the final report by 7 November 2025.

        / Regards,
        / Lena Morozov
        / Morozov Workplace Investigations LLC
        """,
    ),
)

# --------------------------------------------------------------------------
# Content: sales
# --------------------------------------------------------------------------

SALES: tuple[Document, ...] = (
    doc(
        "brightwater/sales/price-list-2025.csv",
        "Price List 2025",
        author="Sales Operations",
        date=D(2025, 1, 15),
        body="""
        | sku | product | description | unit | list_price_usd | notes |
        | TERN-200 | Tern 200 tote carrier | Autonomous tote robot, 30 kg payload | robot | 38500 | Includes a 1-year
        warranty |
        | TERN-300 | Tern 300 tote carrier | Autonomous tote robot, 60 kg payload | robot | 46900 | Includes a 1-year
        warranty |
        | HERON-P1 | Heron picking arm | Piece-picking arm with vision kit | arm | 92000 | Requires a site survey |
        | CHG-DOCK-2 | Charging dock | Opportunity charging dock for Tern robots | dock | 3150 | One dock per 6 robots
        recommended |
        | QUAY-GW | Quay edge gateway | Industrial edge PC with message broker | gateway | 6800 | Two per site for
        redundancy |
        | HARBOR-SITE | Harbor site license | Fleet manager license per site | site per year | 24000 | Billed annually
        in advance |
        | HARBOR-ROBOT | Harbor robot license | Fleet manager license per robot | robot per month | 145 | Minimum of
        10 robots |
        | RAAS-TERN-300 | Tern 300 as a service | Robot, software, maintenance and battery swaps | robot per month
        | 1390 | 36-month minimum term |
        | SVC-INSTALL | Installation | Site mapping, commissioning and go-live support | robot | 1200 | Minimum charge
        of 15000 per site |
        | SVC-TRAIN | Operator training | On-site training for up to 12 operators | day | 2400 | Travel billed at cost |
        | WAR-EXT-5 | Extended warranty | Warranty extended to 5 years | percent of hardware price per year | 12
        | Must be bought with the hardware |
        | SPARE-WHL-300 | Drive wheel kit | Replacement drive wheels for the Tern 300 | kit | 640 | Field-replaceable
        in 20 minutes |
        """,
    ),
    doc(
        "brightwater/sales/key-accounts.docx",
        "Key Accounts Overview",
        author="Frank Ito",
        date=D(2025, 10, 1),
        body="""
        Key account overview for the Sales and Customer Success teams, updated
        on 1 October 2025. Owner: Frank Ito, Sales Director.

        ## Top accounts
        | Account | Sites | Robots deployed | Annual recurring revenue | Renewal date | Account owner |
        | Kestrel Outfitters | Memphis, Reno | 64 | $2,450,000 | 2026-04-30 | Jonah Reyes |
        | Harborline Grocers | Columbus, Indianapolis | 88 | $3,120,000 | 2026-09-30 | Frank Ito |
        | Pinecrest Pharma | Louisville | 41 | $1,680,000 | 2026-02-28 | Aisha Bello |
        | Meridian Apparel | Rotterdam, Tilburg | 57 | $2,010,000 | 2027-01-31 | Lars Vermeer |
        | Larkspur Foods | Sacramento | 22 | $790,000 | 2026-06-30 | Aisha Bello |

        ## Account notes
        Kestrel Outfitters: the relationship recovered after the September
        stall in Memphis, and the customer accepted the service credit. An
        expansion to a third site in Dallas is likely in 2026; the decision
        maker is Paul Whitaker, VP Fulfillment.

        Harborline Grocers: our largest account by robots. An expansion of 60
        Tern 300 robots for Columbus is in negotiation; see the Q4 pipeline.

        Pinecrest Pharma: the renewal is at risk. The customer is evaluating a
        competitor because of GxP validation requirements; an executive
        sponsor meeting with Martin Alvarez is planned for November.

        Meridian Apparel: our reference customer in Europe, invoiced in EUR.
        The contract renews automatically unless it is cancelled 90 days
        before the renewal date.

        Larkspur Foods: pilot customer for Atlas from January 2026. Route every
        Atlas question from Larkspur through the Atlas program team.

        ## Rules of engagement
        - Discounts above 15 percent off list need approval from the Sales
          Director; above 25 percent, from the CEO.
        - Every account with more than $1,000,000 in annual recurring revenue
          has a quarterly business review.
        - Log all executive contacts in Salesforce within 2 business days.
        """,
    ),
    doc(
        "brightwater/sales/q4-pipeline.pptx",
        "Q4 2025 Sales Pipeline",
        author="Frank Ito",
        date=D(2025, 10, 6),
        body="""
        Q4 2025 sales pipeline review. Sales leadership meeting, 6 October
        2025.

        ## Pipeline summary
        - 23 open opportunities closing in Q4 2025
        - Total pipeline of $14.6M; weighted pipeline of $7.9M
        - Commit forecast of $6.2M against a Q4 target of $6.8M
        - Gap to target of $0.6M, to be closed with Harborline and two RaaS
          deals

        ## Top opportunities
        | Account | Deal | Stage | Amount | Close date | Probability |
        | Ostara Home | 120 Tern 300 robots and Harbor | Negotiation | $3.4M | 2025-12-12 | 60 percent |
        | Harborline Grocers | Columbus expansion, 60 Tern 300 | Proposal | $2.9M | 2025-11-21 | 70 percent |
        | Blue Finch Books | RaaS, 35 robots | Proposal | $1.6M | 2025-12-19 | 50 percent |
        | Meridian Apparel | Heron arms for Tilburg | Discovery | $1.1M | 2025-12-30 | 25 percent |
        | Cobalt Auto Parts | RaaS pilot, 12 robots | Negotiation | $0.5M | 2025-11-14 | 80 percent |

        ## Stage conversion this year
        - Discovery to proposal: 46 percent
        - Proposal to negotiation: 58 percent
        - Negotiation to closed won: 71 percent
        - Average sales cycle: 147 days

        ## Risks
        - Ostara Home wants all 120 robots delivered before 1 February 2026;
          Reno production slots are tight until Line 2 is running
        - Blue Finch Books asks for a 24-month RaaS term instead of 36 months

        ## Asks for leadership
        - Approve a 12 percent discount for Ostara Home if it signs by 12
          December
        - Reserve 60 Reno production slots in January for Harborline
        """,
    ),
    doc(
        "brightwater/sales/customer-email-harborline.eml",
        "Columbus expansion - our requirements for the quote",
        author="Megan Holt",
        date=D(2025, 10, 8),
        mail=Mail(
            sender="Megan Holt <megan.holt@harborline.example>",
            to="Frank Ito <frank.ito@brightwater.example>",
            date=dt.datetime(2025, 10, 8, 9, 14, tzinfo=EDT),
            message_id="<columbus-expansion-20251008@harborline.example>",
        ),
        body="""
        Hi Frank,

        Thanks for the walkthrough of the Tern 300 at our Columbus DC last
        week. Our operations team is ready to move forward with the expansion,
        and I want to share our requirements before you send the formal
        quote.

        ## Scope
        We need 60 additional Tern 300 robots for the Columbus DC, with 10 more
        charging docks and a second Quay gateway. The new robots will serve
        the frozen and chilled zones, so they have to work at temperatures
        down to -5 C. Please confirm this in the quote.

        ## Timeline
        Installation has to be complete by 15 February 2026, well before our
        spring peak. We can give your team access to the site on Sundays and
        at night from mid-January.

        ## Commercials
        Given the size of the order, we are looking for a 9 percent discount
        off the 2025 list price for the robots and docks, and we would like the
        Harbor robot licenses at the same price per robot as our existing
        fleet. Our procurement lead, Dev Anand, needs the quote by 24 October
        2025 to bring it to our November capital committee.

        ## Integration
        Our warehouse management system moves from Manhattan SCALE to
        Manhattan Active in March 2026. Please confirm that Harbor supports
        Manhattan Active at go-live, or tell us what the workaround is.

        Looking forward to your proposal.

        / Best regards,
        / Megan Holt
        / Director of Distribution Operations, Harborline Grocers
        """,
    ),
)

# --------------------------------------------------------------------------
# Content: drafts (no manifest: visible to nobody) and announcements
# --------------------------------------------------------------------------

DRAFTS: tuple[Document, ...] = (
    doc(
        "brightwater/drafts/reorg-proposal-draft.md",
        "DRAFT: Customer Operations Reorganization Proposal",
        author="Carol Diaz",
        date=D(2025, 10, 30),
        body="""
        Draft, not approved and not for distribution. Version 0.3, 30 October
        2025.

        ## Purpose
        Project Keel proposes to combine the Reno plant quality team, field
        service and customer success into one Customer Operations organization
        reporting to the VP Operations from 1 February 2026. Today a customer
        issue passes through three teams with three ticket systems, and the
        average time to resolve a robot hardware fault at a customer site is
        6.4 days.

        ## Proposed structure
        | Team | Reports to today | Proposed lead | People |
        | Field service | Operations | Field Service Director (new role) | 38 |
        | Customer success | Sales | Customer Success Director | 17 |
        | Plant quality | Reno plant | Quality Manager | 11 |
        | Support tooling | Fleet Platform | Engineering manager on loan | 4 |

        ## Impact on roles
        Two team lead roles in field service and customer success overlap and
        would be merged. No other roles are eliminated. Moving customer
        success out of Sales needs the agreement of Frank Ito before this
        proposal goes further.

        ## Expected results
        - Average time to resolve a hardware fault down from 6.4 days to under
          3 days
        - One ticket system (Zendesk) instead of three
        - Annual savings of about $420,000 in tooling and duplicated management

        ## Open questions
        - Is the new Field Service Director based in Reno or in Portland?
        - How do we keep the plant quality team independent for ISO 9001
          audits?
        - How does the timing fit with the Atlas pilot in January?
        """,
    ),
)

ANNOUNCEMENTS: tuple[Document, ...] = (
    doc(
        "brightwater/announcements/all-hands-october-2025.html",
        "All-Hands Recap, October 2025",
        author="Internal Communications",
        date=D(2025, 10, 17),
        body="""
        Recap of the company all-hands meeting on Thursday 16 October 2025 in
        Portland, streamed to Reno and Pittsburgh. The recording stays on the
        intranet for 90 days.

        ## Highlights from Martin Alvarez, CEO
        - We welcomed 41 new colleagues since July; Brightwater now has 340
          people.
        - TernOS 4.2.0 is rolling out, with faster aisles and fewer false
          stops.
        - Reno Line 2 opens on 3 November; see the separate announcement.
        - Our net promoter score for the third quarter was 61, up from 54 in
          the second quarter.

        ## Questions from the floor
        Asked whether the company will open an office in Europe, Martin said
        that Brightwater will decide in the first half of 2026, once Meridian
        Apparel and two other European customers have expanded. Asked about
        hybrid work, Carol Diaz confirmed that the two office days per week
        stay unchanged in 2026.

        ## Winter celebration
        The winter celebration takes place on Friday 12 December 2025 from
        18:00 at The Boiler Room at Pier 9, 2 NW Naito Parkway, Portland.
        Travel is covered for colleagues from Reno and Pittsburgh; register
        with the Workplace team by 21 November. Families are welcome from
        18:00 to 20:00.

        ## Recognition
        The Safety Star award for the third quarter goes to the Reno day shift
        for 180 days without a lost-time injury.
        """,
    ),
    doc(
        "brightwater/announcements/reno-line-2-opening.html",
        "Reno Line 2 Opens on 3 November",
        author="Teresa Vance",
        date=D(2025, 10, 27),
        body="""
        The second assembly line at our Reno plant opens on Monday 3 November
        2025. This note explains what changes for the plant and for everyone
        who sells or orders robots.

        ## Capacity
        Line 2 raises the output of the Reno plant from 40 to 95 robots per
        week. Line 1 continues to build Tern 200 and Tern 300 robots; Line 2
        builds Tern 300 robots first and adds Atlas production in the second
        quarter of 2026. The lead time for new Tern orders drops from 14 weeks
        to 8 weeks for orders placed after 1 December 2025.

        ## New jobs
        We are hiring 46 assembly technicians and 6 quality inspectors for
        Line 2. The plant moves to a three-shift pattern in January 2026.
        Referral bonuses of $1,500 apply to all Line 2 roles until 31 December
        2025.

        ## Opening day
        The opening ceremony starts at 11:00 Pacific on 3 November with Martin
        Alvarez and the Reno plant manager, Teresa Vance. Employees at other
        sites can follow the livestream on the intranet. Tours of Line 2 run at
        13:00 and 15:00; book a place with the Workplace team.

        ## Safety
        Line 2 has its own marked walkways and a new robot test lane. Everyone
        entering Line 2 completes the updated 20-minute safety briefing,
        including visitors from other Brightwater sites.
        """,
    ),
    doc(
        "brightwater/announcements/inventor-award-alice-chen.html",
        "Brightwater Inventor Award 2025: Alice Chen",
        author="People Team",
        date=D(2025, 11, 10),
        body="""
        Personal notice, embargoed until the company-wide announcement on 20
        November 2025.

        ## Congratulations, Alice
        Dear Alice, the Inventor Award committee has selected you as the 2025
        recipient of the Brightwater Inventor Award for the invention
        "Deadlock-free aisle reservation for mixed robot fleets". The
        invention was filed with the US Patent and Trademark Office as
        application 18/944,210 on 3 June 2025 and is already used by the
        Tidewater traffic planner at every customer site.

        ## The award
        The award includes a one-time bonus of $5,000, paid with the payroll
        of 28 November 2025, and a framed copy of the patent application. The
        bonus is taxed as regular income; the People team can tell you the net
        amount in advance. The award is presented on stage at the winter
        celebration in December, and your name is added to the inventors'
        wall on the second floor in Portland.

        ## Until the announcement
        Please keep this news to yourself until 20 November 2025, when Martin
        Alvarez announces all 2025 awards in a company-wide post. Your manager
        has been informed and has agreed to the embargo.

        ## Questions
        Contact the People team at people@brightwater.example with any
        questions about the bonus, the ceremony or the patent process.
        """,
    ),
)

# --------------------------------------------------------------------------
# Content: Northwind Partners (a second tenant)
# --------------------------------------------------------------------------

NORTHWIND_DOCS: tuple[Document, ...] = (
    doc(
        "northwind/partner-rate-card-2026.pdf",
        "Northwind Partners: 2026 Rate Card and Key Account Limits",
        author="Erin Walsh",
        date=D(2025, 10, 15),
        body="""
        Internal to Northwind Partners. Prepared by Erin Walsh, Partner
        Manager, on 15 October 2025. Rates apply to shipments picked up from 1
        January 2026.

        ## Standard 2026 rates
        | Service | Unit | 2026 rate |
        | Less-than-truckload, West region | per kg | $3.05/kg |
        | Full truckload, West region | per mile | $3.40/mile |
        | Cross-dock handling, Sacramento | per pallet | $18.50/pallet |
        | Warehousing, Reno | per pallet per month | $24.00/pallet |
        | White-glove robot delivery and uncrating | per unit | $410/unit |

        ## Brightwater Robotics account
        Brightwater Robotics ships robots from Reno to customer sites across
        North America, mostly as less-than-truckload freight: about 1,850
        tonnes in 2025. Their contract renews on 1 March 2026, and Brightwater
        procurement has asked for a 10 percent reduction. Our negotiation
        limits for the renewal:

        | Item | Opening offer | Walk-away |
        | LTL rate, West region | $2.95/kg | $2.64/kg |
        | Cross-dock handling | $17.00/pallet | $15.75/pallet |
        | Maximum overall discount | 3 percent | 6.5 percent |

        Do not share these limits outside Northwind Partners. Anything beyond
        the walk-away column needs approval from the Northwind CFO.

        ## Other key accounts
        Granite Peak Outdoor renews on 1 June 2026 with volume up 12 percent;
        hold standard rates. Saltmarsh Electronics moves to a dedicated weekly
        truck from Fresno in February 2026.

        ## Terms
        Rates exclude the fuel surcharge, which is set every week from the US
        diesel price index. Payment terms are net 45 days. Claims for damage
        must be filed within 9 months of delivery.
        """,
    ),
    doc(
        "northwind/carrier-onboarding.docx",
        "Northwind Partners: Carrier Onboarding Guide",
        author="Northwind Carrier Relations",
        date=D(2025, 4, 1),
        body="""
        This guide explains how trucking companies join the Northwind Partners
        carrier network. Questions go to carriers@northwind.example.

        ## Requirements
        | Requirement | Minimum |
        | Operating authority | Active for at least 12 months |
        | Auto liability insurance | $1,000,000 per occurrence |
        | Cargo insurance | $100,000 per load |
        | Safety rating | Satisfactory or not rated |
        | Electronic logging device | Required for all drivers |

        ## How to apply
        - Register in the Northwind Carrier Portal and upload your certificate
          of insurance, W-9 form and operating authority.
        - Our carrier relations team checks your safety record and insurance
          within 3 business days.
        - Approved carriers sign the Northwind broker-carrier agreement
          electronically and receive a carrier number.

        ## Tracking and service
        Carriers share location updates at least every 2 hours through the
        portal API or the Northwind Driver app. Late pickups must be reported
        before the appointment time. Carriers with on-time performance below 92
        percent for two months in a row are placed on probation.

        ## Payment
        Standard payment terms are net 30 days from receipt of the proof of
        delivery. Quick pay within 2 days is available for a fee of 2 percent.
        Invoices are submitted in the portal together with the signed proof of
        delivery.

        ## Robot and high-value freight
        Loads of robots and other high-value equipment need air-ride trailers,
        two load bars per pallet row and a photo of the load before the doors
        are sealed.
        """,
    ),
    doc(
        "northwind/qbr-notes-brightwater.eml",
        "Brightwater QBR notes - 21 October 2025",
        author="Erin Walsh",
        date=D(2025, 10, 22),
        mail=Mail(
            sender="Erin Walsh <erin.walsh@northwind.example>",
            to="Account Team <account-team@northwind.example>",
            date=dt.datetime(2025, 10, 22, 8, 30, tzinfo=PDT),
            message_id="<qbr-brightwater-20251021@northwind.example>",
        ),
        body="""
        Team,

        Notes from yesterday's quarterly business review with Brightwater
        Robotics in Portland.

        ## Volumes and service
        - Q3 volume: 486 tonnes, up 22 percent on Q3 2024.
        - On-time delivery: 96.2 percent against the 97 percent target; most
          misses were on the Memphis lane in August.
        - Damage claims: 2 claims, both settled, $7,340 in total.

        ## What Brightwater told us
        - They plan to ship the first Atlas pallet robots to Sacramento in
          January and asked whether our Sacramento cross-dock can handle
          crates of 2,100 kg. I confirmed that the dock forklifts are rated for
          2,500 kg.
        - Their new Reno line will roughly double outbound volume from the
          second quarter of 2026.

        ## Our follow-ups
        | Action | Owner | Due |
        | Quote a dedicated Reno to Sacramento lane for Atlas crates | Erin Walsh | 31 October 2025 |
        | Root-cause report on the August Memphis delays | Tom Becker | 7 November 2025 |
        | Renewal proposal within the 2026 rate card limits | Erin Walsh | 15 December 2025 |

        ## Internal view
        The account is healthy, and Brightwater's growth means we should hold
        our rates rather than compete on price. Our internal margin on the
        Brightwater account is 18.4 percent, and we want it to stay above 17
        percent after the renewal.

        / Erin
        """,
    ),
)

DOCUMENTS: tuple[Document, ...] = (
    COMPANY + ENGINEERING + ATLAS + FINANCE + HR + SALES + DRAFTS + ANNOUNCEMENTS + NORTHWIND_DOCS
)

# --------------------------------------------------------------------------
# Questions whose right answer depends on who asks
# --------------------------------------------------------------------------

USER_NAMES: tuple[str, ...] = ("alice", "bob", "carol", "dan", "erin", "frank", "grace")
EMPLOYEES = ("alice", "bob", "carol", "frank", "grace")  # non-guest Brightwater members
ENGINEERS = ("alice", "carol")
ATLAS_READERS = ("alice", "carol", "dan")
FINANCE_READERS = ("bob", "carol", "grace")
SALES_READERS = ("carol", "frank", "grace")

#: (id, question, document, answer_contains, visible_to); everyone else is in
#: hidden_from.
QUESTIONS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    (
        "per-diem",
        "What is the daily meal per diem for a trip to a standard US city?",
        "brightwater/company/travel-expense-policy.pdf",
        "$78",
        EMPLOYEES,
    ),
    (
        "recharge-day",
        "On which date is Recharge Day in 2025?",
        "brightwater/company/holiday-calendar-2025.csv",
        "2025-08-15",
        EMPLOYEES,
    ),
    (
        "home-office-stipend",
        "How much is the home-office stipend for new starters?",
        "brightwater/company/employee-handbook.docx",
        "$650",
        EMPLOYEES,
    ),
    (
        "passphrase-length",
        "How long must a single sign-on passphrase be?",
        "brightwater/company/it-security-policy.md",
        "14 characters",
        EMPLOYEES,
    ),
    (
        "ethics-line",
        "What is the phone number of the Ethics Line?",
        "brightwater/company/code-of-conduct.txt",
        "1-800-555-0142",
        EMPLOYEES,
    ),
    (
        "video-wall-room",
        "Which Portland meeting room has the video wall?",
        "brightwater/company/office-guide.html",
        "Columbia",
        EMPLOYEES,
    ),
    (
        "reno-capacity",
        "What will the Reno plant's weekly output be once Line 2 opens?",
        "brightwater/announcements/reno-line-2-opening.html",
        "95 robots per week",
        EMPLOYEES,
    ),
    (
        "winter-party",
        "Where is the 2025 winter celebration?",
        "brightwater/announcements/all-hands-october-2025.html",
        "Pier 9",
        EMPLOYEES,
    ),
    (
        "inventor-award",
        "What is the application number of the aisle reservation patent?",
        "brightwater/announcements/inventor-award-alice-chen.html",
        "18/944,210",
        ("alice",),
    ),
    (
        "planner-interval",
        "How often does the Tidewater traffic planner replan routes?",
        "brightwater/engineering/architecture-overview.docx",
        "250 ms",
        ENGINEERS,
    ),
    (
        "fleet-pause",
        "Which command pauses a site's fleet during an incident?",
        "brightwater/engineering/on-call-runbook.md",
        "harborctl fleet pause",
        ENGINEERS,
    ),
    (
        "memphis-stall",
        "How long did the September fleet stall in Memphis last?",
        "brightwater/engineering/postmortem-inc-2025-0914.eml",
        "47 minutes",
        ENGINEERS,
    ),
    (
        "ternos-upgrade-path",
        "Which TernOS version must a robot run before upgrading to 4.2.0?",
        "brightwater/engineering/fleet-firmware-release-notes.txt",
        "4.1.3",
        ENGINEERS,
    ),
    (
        "eng-headcount-2026",
        "How many people will engineering have at the end of 2026?",
        "brightwater/engineering/leads/headcount-plan-2026.xlsx",
        "109",
        ("carol",),
    ),
    (
        "staff-promotion",
        "Who was promoted to Staff Engineer in the H2 2025 calibration?",
        "brightwater/engineering/leads/performance-calibration-notes.docx",
        "Ines Carvalho",
        ("carol",),
    ),
    (
        "atlas-pilot-start",
        "When does the Atlas pilot at Larkspur Foods start?",
        "brightwater/projects/atlas/atlas-launch-plan.pptx",
        "2026-01-12",
        ATLAS_READERS,
    ),
    (
        "atlas-failed-test",
        "Which Atlas lift test failed because of mast oscillation?",
        "brightwater/projects/atlas/atlas-test-results.xlsx",
        "ATL-T-114",
        ATLAS_READERS,
    ),
    (
        "atlas-slack",
        "Which Slack channel do Atlas contractors use?",
        "brightwater/projects/atlas/contractor-onboarding.md",
        "#atlas-ext",
        ATLAS_READERS,
    ),
    (
        "atlas-budget",
        "What is the total FY2026 budget of Project Atlas?",
        "brightwater/projects/atlas/atlas-budget.xlsx",
        "$4,860,000",
        FINANCE_READERS,
    ),
    (
        "q3-revenue",
        "What was Brightwater's revenue in Q3 2025?",
        "brightwater/finance/q3-results.xlsx",
        "$38.42 million",
        FINANCE_READERS,
    ),
    (
        "fy2026-capex",
        "How large is the FY2026 capital expenditure budget?",
        "brightwater/finance/fy2026-budget.pdf",
        "$9,840,000",
        FINANCE_READERS,
    ),
    (
        "cfo-payment-approval",
        "Above which amount does a vendor payment need the CFO?",
        "brightwater/finance/vendor-payment-runbook.docx",
        "$250,000",
        FINANCE_READERS,
    ),
    (
        "ceo-salary",
        "What is the CEO's base salary for 2026?",
        "brightwater/finance/board-compensation-2025.docx",
        "$385,000",
        ("bob", "carol"),
    ),
    (
        "l5-midpoint",
        "What is the midpoint of the L5 engineering salary band?",
        "brightwater/hr/salary-bands-2025.xlsx",
        "$176,000",
        ("grace",),
    ),
    (
        "parental-leave",
        "How many weeks of paid parental leave does a parent get?",
        "brightwater/hr/parental-leave-policy.docx",
        "18 weeks",
        ("grace",),
    ),
    (
        "investigation-subject",
        "Who is the subject of the open HR investigation at Reno?",
        "brightwater/hr/investigation-case-hr-2025-017.eml",
        "Derek Haines",
        ("grace",),
    ),
    (
        "raas-price",
        "What is the monthly list price of a Tern 300 as a service?",
        "brightwater/sales/price-list-2025.csv",
        "1390",
        SALES_READERS,
    ),
    (
        "kestrel-decision-maker",
        "Who decides on the Kestrel Outfitters Dallas expansion?",
        "brightwater/sales/key-accounts.docx",
        "Paul Whitaker",
        SALES_READERS,
    ),
    (
        "largest-opportunity",
        "What is the largest opportunity in the Q4 2025 pipeline?",
        "brightwater/sales/q4-pipeline.pptx",
        "Ostara Home",
        SALES_READERS,
    ),
    (
        "harborline-procurement",
        "Who is Harborline's procurement lead for the expansion?",
        "brightwater/sales/customer-email-harborline.eml",
        "Dev Anand",
        SALES_READERS,
    ),
    (
        "reorg-codename",
        "What is the code name of the operations reorganization?",
        "brightwater/drafts/reorg-proposal-draft.md",
        "Project Keel",
        (),
    ),
    (
        "northwind-walk-away",
        "What is the lowest LTL rate Northwind will accept from Brightwater?",
        "northwind/partner-rate-card-2026.pdf",
        "$2.64/kg",
        ("erin",),
    ),
    (
        "northwind-margin",
        "What margin does Northwind make on the Brightwater account?",
        "northwind/qbr-notes-brightwater.eml",
        "18.4 percent",
        ("erin",),
    ),
)


def questions() -> list[dict[str, object]]:
    """The ``questions.json`` document."""
    return [
        {
            "id": qid,
            "question": question,
            "document": document,
            "answer_contains": answer,
            "visible_to": list(visible),
            "hidden_from": [name for name in USER_NAMES if name not in visible],
        }
        for qid, question, document, answer, visible in QUESTIONS
    ]


# --------------------------------------------------------------------------
# Self-check: an independent reading of the manifests written to disk
# --------------------------------------------------------------------------

AclSets = tuple[frozenset[str], frozenset[str]]


def _read_manifest(path: Path) -> tuple[AclSets, bool] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return (frozenset(data.get("allow", [])), frozenset(data.get("deny", []))), bool(data.get("inherit", False))


def _merge(own: tuple[AclSets, bool] | None, parent: AclSets | None) -> AclSets | None:
    if own is None:
        return parent
    (allow, deny), inherit = own
    if inherit and parent is not None:
        return allow | parent[0], deny | parent[1]
    return allow, deny


def _folder_acl(root: Path, folder: Path) -> AclSets | None:
    parent = _folder_acl(root, folder.parent) if folder != root else None
    return _merge(_read_manifest(folder / ".acl.json"), parent)


def effective_acl(relative: str) -> AclSets | None:
    """The allow and deny entries in force for a corpus file, or None."""
    source = relative.split("/", 1)[0]
    root = CORPUS_DIR / source
    target = CORPUS_DIR / relative
    folder = _folder_acl(root, target.parent)
    return _merge(_read_manifest(target.with_name(target.name + ".acl.json")), folder)


def can_read(user: dict[str, object], relative: str) -> bool:
    """Whether ``user`` (a users.json entry, groups fully resolved) may read a file."""
    acl = effective_acl(relative)
    if acl is None:
        return False
    source_tenant = SOURCE_TENANTS[relative.split("/", 1)[0]]
    groups = user["groups"]
    assert isinstance(groups, list)

    def matches(entry: str) -> bool:
        if entry == "tenant":
            return user["tenant"] == source_tenant and not user["guest"]
        kind, _, value = entry.partition(":")
        if kind == "user":
            return value == user["oid"]
        if kind == "group":
            return value in groups
        return False

    allow, deny = acl
    return not any(matches(e) for e in deny) and any(matches(e) for e in allow)


def extracted_text(path: Path) -> str | None:
    """Text read back from a generated file (None for PDF, not read here)."""
    suffix = path.suffix
    if suffix == ".docx":
        out = docx.Document(str(path))
        parts = [p.text for p in out.paragraphs]
        parts += [c.text for t in out.tables for row in t.rows for c in row.cells]
        return "\n".join(parts)
    if suffix == ".pptx":
        parts = []
        for slide in pptx.Presentation(str(path)).slides:
            for shape in slide.shapes:
                if shape.has_text_frame:
                    parts.append(shape.text_frame.text)
                if shape.has_table:
                    table = shape.table
                    parts += [c.text for row in table.rows for c in row.cells]
        return "\n".join(parts)
    if suffix == ".xlsx":
        book = openpyxl.load_workbook(path, read_only=True)
        values = [
            str(v) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for v in row if v is not None
        ]
        book.close()
        return "\n".join(values)
    if suffix == ".eml":
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        return f"{message['Subject']}\n{body.get_content()}"
    if suffix == ".html":
        return html.unescape(re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")))
    if suffix in (".txt", ".md", ".csv"):
        return path.read_text(encoding="utf-8")
    return None


def _squash(text: str) -> str:
    return " ".join(text.split())


def self_check() -> None:
    """Assert that questions.json agrees with the manifests and the documents."""
    by_path = {d.path: d for d in DOCUMENTS}
    directory_users = {str(u["name"]): u for u in json.loads(USERS_FILE.read_text())["users"]}
    assert set(directory_users) == set(USER_NAMES)
    frank_groups = directory_users["frank"]["groups"]
    assert isinstance(frank_groups, list) and len(frank_groups) > 200

    for question in json.loads(QUESTIONS_FILE.read_text()):
        qid, relative = question["id"], question["document"]
        visible, hidden = set(question["visible_to"]), set(question["hidden_from"])
        assert visible | hidden == set(USER_NAMES) and not visible & hidden, qid
        assert (CORPUS_DIR / relative).is_file(), f"{qid}: missing {relative}"
        for name, user in directory_users.items():
            expected = name in visible
            assert can_read(user, relative) == expected, f"{qid}: {name} expected {expected}"
        answer = question["answer_contains"]
        holders = [d.path for d in DOCUMENTS if answer in source_text(d)]
        assert holders == [relative], f"{qid}: {answer!r} found in {holders}"
        assert answer in source_text(by_path[relative])
        text = extracted_text(CORPUS_DIR / relative)
        if text is not None:
            assert _squash(answer) in _squash(text), f"{qid}: {answer!r} not in file text"

    # Every document is readable by someone, except the unmanifested draft.
    for document in DOCUMENTS:
        readers = [n for n, u in directory_users.items() if can_read(u, document.path)]
        assert bool(readers) != document.path.startswith("brightwater/drafts/"), document.path


# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def build() -> None:
    """(Re)write the corpus, the manifests, users.json and questions.json."""
    paths = [d.path for d in DOCUMENTS]
    assert len(paths) == len(set(paths)), "duplicate document paths"
    if CORPUS_DIR.exists():
        shutil.rmtree(CORPUS_DIR)
    for document in DOCUMENTS:
        words = word_count(document)
        assert MIN_WORDS <= words <= MAX_WORDS, f"{document.path}: {words} words"
        assert source_text(document).isascii(), f"{document.path}: non-ASCII text"
        target = CORPUS_DIR / document.path
        target.parent.mkdir(parents=True, exist_ok=True)
        WRITERS[document.fmt](document, target)
    for relative, manifest in MANIFESTS.items():
        target = CORPUS_DIR / relative
        assert target.parent.is_dir(), f"manifest outside the corpus: {relative}"
        if not relative.endswith("/.acl.json"):
            sidecar_for = CORPUS_DIR / relative.removesuffix(".acl.json")
            assert sidecar_for.is_file(), f"sidecar without a file: {relative}"
        _write_json(target, manifest)
    _write_json(USERS_FILE, directory())
    _write_json(QUESTIONS_FILE, questions())


def summary(documents: Iterable[Document]) -> str:
    docs = list(documents)
    formats = sorted({d.fmt for d in docs})
    size = sum(p.stat().st_size for p in CORPUS_DIR.rglob("*") if p.is_file())
    assert size < MAX_CORPUS_BYTES, f"corpus is {size} bytes"
    return (
        f"wrote {len(docs)} documents in {len(formats)} formats ({', '.join(formats)}), "
        f"{len(MANIFESTS)} manifests, {len(QUESTIONS)} questions; {size:,} bytes"
    )


def main() -> None:
    build()
    self_check()
    print(summary(DOCUMENTS))


if __name__ == "__main__":
    main()
