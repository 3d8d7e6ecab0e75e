"""Writers that render a :class:`~markup.Document` into one of nine file formats.

Every writer is deterministic: OOXML packages are rewritten with fixed entry
dates, and document properties carry the document's own date.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.policy
import html
import io
import re
import textwrap
import zipfile
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pptx
from docx.shared import Pt as DocxPt
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from markup import Bullets, Document, Lines, Table, source_text
from openpyxl.styles import Font
from pptx.text.text import TextFrame
from pptx.util import Inches
from pptx.util import Pt as PptxPt

ZIP_DATE_TIME = (2025, 1, 1, 0, 0, 0)
CORE_DATES = re.compile(r"(<dcterms:(created|modified)\b[^>]*>)[^<]*(</dcterms:\2>)")


def _cell_value(text: str) -> str | int | float:
    """Numbers become numeric spreadsheet cells; everything else stays text."""
    if re.fullmatch(r"-?[1-9]\d*|0", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text


def _plain_table(table: Table) -> list[str]:
    def fmt(row: tuple[str, ...]) -> str:
        return " | ".join(cell.ljust(w) for cell, w in zip(row, table.widths, strict=True)).rstrip()

    return [fmt(table.header), "-+-".join("-" * w for w in table.widths), *(fmt(row) for row in table.rows)]


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
                out += [*block.items, ""]
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
                out += [f"{line}  " for line in block.items] + [""]
            else:
                out.append("| " + " | ".join(block.header) + " |")
                out.append("|" + "|".join(" --- " for _ in block.header) + "|")
                out += ["| " + " | ".join(row) + " |" for row in block.rows] + [""]
    target.write_text("\n".join(out).rstrip() + "\n", encoding="utf-8")


def write_html(document: Document, target: Path) -> None:
    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">']
    out += [f"<title>{esc(document.title)}</title>", f'<meta name="author" content="{html.escape(document.author)}">']
    out += [f'<meta name="date" content="{document.date.isoformat()}">', "</head>", "<body>", "<article>"]
    out.append(f"<h1>{esc(document.title)}</h1>")
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
                out.append("<p>" + "<br>\n".join(esc(line) for line in block.items) + "</p>")
            else:
                out += ["<table>", "<thead>", "<tr>", *(f"<th>{esc(cell)}</th>" for cell in block.header)]
                out += ["</tr>", "</thead>", "<tbody>"]
                out += ["<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in block.rows]
                out += ["</tbody>", "</table>"]
        out.append("</section>")
    out += ["</article>", "</body>", "</html>"]
    target.write_text("\n".join(out) + "\n", encoding="utf-8")


def write_csv(document: Document, target: Path) -> None:
    blocks = [b for s in document.sections for b in s.blocks]
    if len(blocks) != 1 or not isinstance(blocks[0], Table):
        raise ValueError(f"{document.path}: a CSV document is exactly one table")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(blocks[0].header)
    writer.writerows(blocks[0].rows)
    target.write_text(buffer.getvalue(), encoding="utf-8")


def write_eml(document: Document, target: Path) -> None:
    mail = document.mail
    if mail is None:
        raise ValueError(f"{document.path}: an e-mail needs headers")
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
                data = CORE_DATES.sub(rf"\g<1>{stamp}\g<3>", data.decode("utf-8")).encode("utf-8")
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            info.external_attr = 0o644 << 16
            package.writestr(info, data)
    target.write_bytes(buffer.getvalue())


def _set_core_properties(props: Any, document: Document) -> None:
    """Title, author and dates of a docx or pptx package (in this order: it is the XML order)."""
    props.title = document.title
    props.author = document.author
    props.last_modified_by = document.author
    props.created = document.timestamp.replace(tzinfo=None)
    props.modified = document.timestamp.replace(tzinfo=None)
    props.revision = 1


def write_docx(document: Document, target: Path) -> None:
    out = docx.Document()
    _set_core_properties(out.core_properties, document)
    out.add_heading(document.title, level=0)
    for section in document.sections:
        if section.heading:
            out.add_heading(section.heading, level=1)
        for block in section.blocks:
            if isinstance(block, str):
                out.add_paragraph(block)
            elif isinstance(block, Bullets | Lines):
                for item in block.items:
                    out.add_paragraph(item, style="List Bullet" if isinstance(block, Bullets) else None)
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


def _fill_text_frame(frame: TextFrame, texts: Sequence[str], size: int) -> None:
    frame.word_wrap = True
    for i, text in enumerate(texts):
        paragraph = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
        paragraph.text = text
        for run in paragraph.runs:
            run.font.size = PptxPt(size)


def write_pptx(document: Document, target: Path) -> None:
    deck = pptx.Presentation()
    _set_core_properties(deck.core_properties, document)
    for section in document.sections:
        texts: list[str] = []
        tables: list[Table] = []
        for block in section.blocks:
            if isinstance(block, Table):
                tables.append(block)
            elif isinstance(block, str):
                texts.append(block)
            else:
                texts.extend(block.items)
        if len(tables) > 1 or (tables and not section.heading):
            raise ValueError(f"{document.path}: at most one table per slide, and none on the title slide")
        slide = deck.slides.add_slide(deck.slide_layouts[5 if tables else 1 if section.heading else 0])
        assert slide.shapes.title is not None
        slide.shapes.title.text = section.heading or document.title
        if not tables:
            _fill_text_frame(slide.placeholders[1].text_frame, texts, 18 if section.heading else 20)
            continue
        top: int = Inches(1.6)
        if texts:
            height = Inches(0.45 * len(texts))
            box = slide.shapes.add_textbox(Inches(0.5), top, Inches(9.0), height)
            _fill_text_frame(box.text_frame, texts, 16)
            top = top + height + Inches(0.2)
        table = tables[0]
        rows = 1 + len(table.rows)
        shape = slide.shapes.add_table(rows, len(table.header), Inches(0.5), top, Inches(9.0), Inches(0.4) * rows)
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
        table = section.blocks[0] if len(section.blocks) == 1 else None
        if not isinstance(table, Table):
            raise ValueError(f"{document.path}: each sheet is exactly one table")
        sheet = book.create_sheet(section.heading[:31])
        sheet.append(list(table.header))
        for row in table.rows:
            sheet.append([_cell_value(cell) for cell in row])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for c, longest in enumerate(table.widths, start=1):
            sheet.column_dimensions[openpyxl.utils.get_column_letter(c)].width = min(90, longest + 3)
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
                prefix = "-  " if isinstance(block, Bullets) else ""
                for item in block.items:
                    pdf.set_x(pdf.l_margin + 4)
                    pdf.multi_cell(pdf.epw - 4, 5.6, prefix + item, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(2.5)
            else:
                pdf.set_font("Helvetica", "", 9.5)
                widths = tuple(max(8, min(40, n)) for n in block.widths)
                with pdf.table(col_widths=widths, text_align="LEFT", line_height=5.2) as grid:
                    for row in (block.header, *block.rows):
                        grid.row(row)
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
