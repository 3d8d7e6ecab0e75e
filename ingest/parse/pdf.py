"""PDF pages to elements with pdfminer.six's layout analysis: headings, text blocks and tables.

pdfminer groups characters into text lines and lines into text boxes. Each box becomes
one element; tables are found first, from where the lines sit on the page, because
pdfminer sees a table as a heap of one-cell boxes, column by column.

Tables: the page's upright text lines are grouped into rows by their vertical centre.
A line inside a drawn rectangle that is one of a grid of them (a ruled cell) takes that
rectangle's band as its row, and lines stacked in one such rectangle (a wrapped cell)
are one cell; so are lines that pdfminer boxed together right below a cell. A row with
two or more cells side by side is a candidate row; two or more candidate rows close
together form a table, which may hold up to three lone-cell rows in a row (an unruled
cell wrapping onto more lines) but never ends with one. It is kept only where its cells
are short (median at most 30 characters, at most one column of longer ones) and do not
read as running text (many begin in lower case); lines of boxes that read as a
paragraph never join one. This keeps prose set in columns out. A table is one TABLE
element, one row a line with its cells joined by " | " (an empty cell stays empty where
the columns line up), header row first, placed where its header's box stood. Its lines
leave the boxes they came from; a box left empty disappears.

Headings: a text block is a TITLE when it is a single line of at most twelve words
with at least three letters, does not end like a sentence, and is set either in a
font at least 15 % larger than the document's body text (the median character size)
or in a bold font. Everything else is TEXT.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from statistics import median
from typing import Any, Final

from core.errors import DocumentParseError
from ingest.parse.elements import ElementKind, ParsedDocument, ParsedElement

_SENTENCE_END: Final = (".", "!", ",", ";")
_TITLE_MAX_WORDS: Final = 12
_HEADING_SIZE_RATIO: Final = 1.15
_BOLD_SHARE: Final = 0.8
_MIN_HEADING_LETTERS: Final = 3
_BOLD_FONT = re.compile(r"bold|black|heavy|semibold|demi", re.IGNORECASE)
_CID = re.compile(r"\(cid:\d+\)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0]+")

_ROW_TOLERANCE: Final = 3.0  # points between the vertical centres of one row's cells
_MIN_CELL_GAP: Final = 1.0  # points between two cells side by side
_MAX_ROW_GAP: Final = 2.5  # blank space between table rows, in line heights
_MAX_MEDIAN_CELL: Final = 30  # characters; longer cells are prose in columns
_MIN_TABLE_ROWS: Final = 2
_MAX_LONE_ROWS: Final = 3  # lines of one wrapped cell in a row, below its row's full line
_MAX_WRAP_GAP: Final = 0.6  # blank space above the next line of a wrapped cell, in line heights
_PARAGRAPH_MIN_LINES: Final = 3
_PARAGRAPH_LOWER_SHARE: Final = 0.3  # of a box's later lines beginning in lower case
_RUNNING_SHARE: Final = 0.4  # of a column's cells beginning in lower case: a sentence goes on
_LOWER_TABLE_SHARE: Final = 0.5  # of all cells beginning in lower case: prose, not a table
_RUNNING_MIN_CHARS: Final = 15  # median cell length above which such a column is running text
_CELL_MAX_HEIGHT: Final = 100.0  # points; taller rectangles are frames, not cells
_CELL_MIN_SIZE: Final = 4.0  # points; thinner rectangles are rules
_MAX_RECTS: Final = 3000  # a page drawn with more rectangles than this is artwork
_SLACK: Final = 1.0  # points a line may stick out of its cell rectangle


def clean_text(text: str) -> str:
    """Drop control characters, collapse runs of spaces, trim each line and the whole."""
    text = _CONTROL.sub(" ", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


@dataclass(frozen=True, slots=True)
class _Block:
    """One pdfminer text box (what is left of it) with what the heading rule needs."""

    page: int
    text: str
    lines: int
    size: float  # median character size
    bold: bool  # at least 80 % of the characters are in a bold font


@dataclass(slots=True)
class _Line:
    box: int  # index of the text box it belongs to
    text: str
    x0: float
    x1: float
    y0: float
    y1: float
    upright: bool = True  # False for rotated text, which never joins a table
    cell: tuple[float, float, float, float] | None = None  # the rectangle it sits in


@dataclass(slots=True)
class _Cell:
    lines: list[_Line]
    x0: float
    x1: float
    y0: float
    y1: float

    @property
    def text(self) -> str:
        ordered = sorted(self.lines, key=lambda line: (-line.y1, line.x0))
        return _join_lines([line.text for line in ordered])


@dataclass(slots=True)
class _Row:
    cells: list[_Cell] = field(default_factory=list)

    @property
    def top(self) -> float:
        return max(cell.y1 for cell in self.cells)

    @property
    def bottom(self) -> float:
        return min(cell.y0 for cell in self.cells)

    @property
    def height(self) -> float:
        return max(line.y1 - line.y0 for cell in self.cells for line in cell.lines)


@dataclass(slots=True)
class _Table:
    rows: list[_Row]

    @property
    def top(self) -> float:
        return self.rows[0].top

    @property
    def text(self) -> str:
        columns = _columns(self.rows)
        lines = []
        for row in self.rows:
            texts = [cell.text for cell in row.cells]
            if columns is not None:
                slots = ["" for _ in columns]
                for cell, text in zip(row.cells, texts, strict=True):
                    slots[_column_of(cell, columns)] = text
                texts = slots
            lines.append(_SPACES.sub(" ", " | ".join(texts)).strip())
        return "\n".join(lines)


def parse_pdf(path: Path, *, max_pages: int | None = None) -> ParsedDocument:
    """Parse a PDF; with ``max_pages``, refuse one with more pages before any layout analysis."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams

    if max_pages is not None and _has_more_pages(path, max_pages):
        raise DocumentParseError(f"page count exceeds the limit (more than {max_pages:,} pages)")
    items: list[_Block | tuple[int, _Table]] = []
    sizes: list[float] = []
    pages = extract_pages(path, laparams=LAParams(all_texts=True), maxpages=max_pages or 0)
    for number, page in enumerate(pages, 1):
        boxes = list(_text_boxes(page))
        box_lines = [_box_lines(index, box) for index, box in enumerate(boxes)]
        tables = _find_tables([line for lines in box_lines for line in lines], _grid_rects(_cell_rects(page)))
        used = {id(line) for table in tables for row in table.rows for cell in row.cells for line in cell.lines}
        placed: dict[int, list[_Table]] = {}
        for table in tables:
            first = min(line.box for cell in table.rows[0].cells for line in cell.lines)
            placed.setdefault(first, []).append(table)
        for index, box in enumerate(boxes):
            kept = [line for line in box_lines[index] if id(line) not in used]
            block = _pdf_block(number, box, kept, sizes)
            # A table goes before what is left of its first box, unless that starts above it.
            here = placed.get(index, [])
            text_first = block is not None and bool(here) and max(line.y1 for line in kept) > here[0].top
            if block is not None and text_first:
                items.append(block)
            items.extend((number, table) for table in here)
            if block is not None and not text_first:
                items.append(block)
    body_size = median(sizes) if sizes else 0.0
    elements = tuple(_element(item, body_size) for item in items)
    title = next((e.text for e in elements if e.kind is ElementKind.TITLE), None)
    return ParsedDocument(title=title, elements=elements)


def _has_more_pages(path: Path, limit: int) -> bool:
    """Whether the page tree holds more than ``limit`` pages.

    Walks the tree that layout analysis would walk, rather than trusting the catalog's
    ``/Count``, which a crafted file can understate; stops at ``limit + 1``.
    """
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser

    with path.open("rb") as handle:
        document = PDFDocument(PDFParser(handle))
        pages = PDFPage.create_pages(document)
        return sum(1 for _ in islice(pages, limit + 1)) > limit


def _element(item: _Block | tuple[int, _Table], body_size: float) -> ParsedElement:
    if isinstance(item, tuple):
        page, table = item
        return ParsedElement(kind=ElementKind.TABLE, text=table.text, page=page)
    kind = ElementKind.TITLE if _looks_like_heading(item, body_size) else ElementKind.TEXT
    return ParsedElement(kind=kind, text=item.text, page=item.page)


def _text_boxes(container: Iterable[Any]) -> Iterator[Any]:
    """Text boxes in layout order, including those inside figures."""
    from pdfminer.layout import LTFigure, LTTextBox

    for item in container:
        if isinstance(item, LTTextBox):
            yield item
        elif isinstance(item, LTFigure):
            yield from _text_boxes(item)


def _cell_rects(container: Iterable[Any]) -> list[tuple[float, float, float, float]]:
    """Drawn rectangles of a size that can frame a table cell or row, including in figures."""
    from pdfminer.layout import LTFigure, LTRect

    rects: list[tuple[float, float, float, float]] = []
    for item in container:
        if isinstance(item, LTRect):
            if _CELL_MIN_SIZE <= item.height <= _CELL_MAX_HEIGHT and item.width >= _CELL_MIN_SIZE:
                rects.append((item.x0, item.y0, item.x1, item.y1))
        elif isinstance(item, LTFigure):
            rects.extend(_cell_rects(item))
    return rects if len(rects) <= _MAX_RECTS else []


def _grid_rects(rects: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Rectangles that touch a neighbour of the same height or width: the cells of a ruled grid.

    A lone rectangle is more likely a frame around a whole table or a paragraph.
    """
    by_band: dict[tuple[int, int], list[tuple[float, float, float, float]]] = {}
    by_span: dict[tuple[int, int], list[tuple[float, float, float, float]]] = {}
    for rect in rects:
        by_band.setdefault((round(rect[1]), round(rect[3])), []).append(rect)
        by_span.setdefault((round(rect[0]), round(rect[2])), []).append(rect)

    def touches(rect: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = rect
        beside = by_band[(round(y0), round(y1))]
        above = by_span[(round(x0), round(x1))]
        return any(abs(o[0] - x1) <= _SLACK or abs(o[2] - x0) <= _SLACK for o in beside if o is not rect) or any(
            abs(o[1] - y1) <= _SLACK or abs(o[3] - y0) <= _SLACK for o in above if o is not rect
        )

    return [rect for rect in rects if touches(rect)]


def _box_lines(index: int, box: Any) -> list[_Line]:
    from pdfminer.layout import LTChar, LTTextLine

    lines = []
    for line in box:
        if isinstance(line, LTTextLine):
            text = clean_text(_CID.sub("", line.get_text()))
            if text:
                upright = all(char.upright for char in line if isinstance(char, LTChar))
                lines.append(_Line(index, text, line.x0, line.x1, line.y0, line.y1, upright))
    return lines


def _pdf_block(page: int, box: Any, kept: list[_Line], sizes: list[float]) -> _Block | None:
    """The box's characters count towards the body size; its kept lines make the block."""
    from pdfminer.layout import LTChar, LTTextLine

    box_sizes: list[float] = []
    bold = 0
    for line in box:
        if not isinstance(line, LTTextLine):
            continue
        for char in line:
            if isinstance(char, LTChar) and not char.get_text().isspace():
                box_sizes.append(char.size)
                bold += bool(_BOLD_FONT.search(char.fontname or ""))
    sizes.extend(box_sizes)
    if not kept:
        return None
    size = median(box_sizes) if box_sizes else 0.0
    is_bold = bool(box_sizes) and bold >= _BOLD_SHARE * len(box_sizes)
    return _Block(page, _join_lines([line.text for line in kept]), len(kept), size, is_bold)


def _join_lines(lines: list[str]) -> str:
    """Join a block's lines into one paragraph, mending words hyphenated at a line end."""
    text = lines[0]
    for line in lines[1:]:
        if text.endswith("-") and text[-2:-1].isalpha() and line[:1].islower():
            text = text[:-1] + line
        else:
            text = f"{text} {line}"
    return text


def _looks_like_heading(block: _Block, body_size: float) -> bool:
    text = block.text
    if block.lines != 1 or text.endswith(_SENTENCE_END):
        return False
    if len(text.split()) > _TITLE_MAX_WORDS:
        return False
    if sum(c.isalpha() for c in text) < _MIN_HEADING_LETTERS:
        return False
    larger = body_size > 0 and block.size >= _HEADING_SIZE_RATIO * body_size
    return larger or block.bold


# -- tables ---------------------------------------------------------------------------


def _find_tables(lines: list[_Line], rects: list[tuple[float, float, float, float]]) -> list[_Table]:
    prose = _paragraph_boxes(lines)
    lines = [line for line in lines if line.upright and line.box not in prose]
    for line in lines:
        line.cell = _smallest_rect_around(line, rects)
    rows = _rows(_cells(lines))
    tables: list[_Table] = []
    run: list[_Row] = []
    for row in [*rows, None]:
        if row is not None and run and _continue_cells(run[-1], row):
            continue
        joins = row is not None and (len(row.cells) >= 2 or (bool(run) and _in_one_column(run, row)))
        if row is not None and joins and (not run or _close(run[-1], row)):
            run.append(row)
            continue
        while run and len(run[-1].cells) < 2:  # a table ends with a full row
            run.pop()
        full = sum(len(r.cells) >= 2 for r in run)
        if full >= _MIN_TABLE_ROWS and _short_cells(run) and _columns(run) is not None:
            tables.append(_Table(run))
        run = [row] if row is not None and len(row.cells) >= 2 else []
    return tables


def _in_one_column(run: list[_Row], row: _Row) -> bool:
    """A lone cell between table rows (an unruled cell wrapping onto another line) stays in.

    It must sit under one column only, and a few such rows at most may follow each other.
    """
    if len(row.cells) != 1 or all(len(r.cells) < 2 for r in run[-_MAX_LONE_ROWS:]):
        return False
    widest = max(run, key=lambda r: len(r.cells))
    return sum(c.x0 < row.cells[0].x1 and row.cells[0].x0 < c.x1 for c in widest.cells) == 1


def _continue_cells(upper: _Row, row: _Row) -> bool:
    """Merge ``row`` into ``upper`` where it only carries on cells that wrap onto another line.

    Each of its cells must lie right below a cell of ``upper`` that pdfminer put in the same
    text box, and it must have fewer cells than ``upper`` (a full row is a row of its own).
    """
    if len(row.cells) >= len(upper.cells) or upper.bottom - row.top > _MAX_WRAP_GAP * row.height:
        return False
    targets = []
    for cell in row.cells:
        boxes = {line.box for line in cell.lines}
        above = [c for c in upper.cells if c.x0 < cell.x1 and cell.x0 < c.x1]
        if len(above) != 1 or not boxes & {line.box for line in above[0].lines}:
            return False
        targets.append(above[0])
    for cell, target in zip(row.cells, targets, strict=True):
        target.lines.extend(cell.lines)
        target.x0, target.x1, target.y0 = min(target.x0, cell.x0), max(target.x1, cell.x1), min(target.y0, cell.y0)
    return True


def _paragraph_boxes(lines: list[_Line]) -> set[int]:
    """Boxes that read as a paragraph: three or more long lines, many going on a sentence.

    Their lines stay out of tables, so that prose beside a table (in the next column of a
    two-column page) is not taken for its cells.
    """
    by_box: dict[int, list[str]] = {}
    for line in lines:
        by_box.setdefault(line.box, []).append(line.text)
    return {
        box
        for box, texts in by_box.items()
        if len(texts) >= _PARAGRAPH_MIN_LINES
        and median(map(len, texts)) > _MAX_MEDIAN_CELL
        and sum(text[:1].islower() for text in texts[1:]) >= _PARAGRAPH_LOWER_SHARE * (len(texts) - 1)
    }


def _smallest_rect_around(
    line: _Line, rects: list[tuple[float, float, float, float]]
) -> tuple[float, float, float, float] | None:
    best: tuple[float, float, float, float] | None = None
    for rect in rects:
        x0, y0, x1, y1 = rect
        inside = x0 - _SLACK <= line.x0 and line.x1 <= x1 + _SLACK and y0 - _SLACK <= line.y0 and line.y1 <= y1 + _SLACK
        if inside and (best is None or (x1 - x0) * (y1 - y0) < (best[2] - best[0]) * (best[3] - best[1])):
            best = rect
    return best


def _cells(lines: list[_Line]) -> list[_Cell]:
    """Lines stacked in one rectangle, overlapping side to side, are one cell; others are their own."""
    cells: list[_Cell] = []
    open_cells: dict[tuple[float, float, float, float], list[_Cell]] = {}
    for line in sorted(lines, key=lambda line: (-line.y1, line.x0)):
        if line.cell is not None:
            cell = next((c for c in open_cells.get(line.cell, []) if c.x0 < line.x1 and line.x0 < c.x1), None)
            if cell is not None:
                cell.lines.append(line)
                cell.x0, cell.x1 = min(cell.x0, line.x0), max(cell.x1, line.x1)
                cell.y0 = min(cell.y0, line.y0)
                continue
        cell = _Cell([line], line.x0, line.x1, line.y0, line.y1)
        cells.append(cell)
        if line.cell is not None:
            open_cells.setdefault(line.cell, []).append(cell)
    return cells


def _band(cell: _Cell) -> tuple[float, float]:
    """The vertical extent that decides a cell's row: its rectangle's where it has one."""
    rect = cell.lines[0].cell
    return (rect[1], rect[3]) if rect is not None else (cell.y0, cell.y1)


def _rows(cells: list[_Cell]) -> list[_Row]:
    """Cells grouped by vertical centre, top row first; each row's cells left to right."""
    rows: list[tuple[float, _Row]] = []
    for cell in sorted(cells, key=lambda c: -sum(_band(c))):
        centre = sum(_band(cell)) / 2
        if rows and abs(rows[-1][0] - centre) <= _ROW_TOLERANCE:
            rows[-1][1].cells.append(cell)
        else:
            rows.append((centre, _Row([cell])))
    result = []
    for _, row in rows:
        row.cells.sort(key=lambda c: c.x0)
        merged: list[_Cell] = []
        for cell in row.cells:  # overlapping side to side: one cell, not two
            if merged and cell.x0 < merged[-1].x1 + _MIN_CELL_GAP:
                last = merged[-1]
                last.lines.extend(cell.lines)
                last.x1, last.y0, last.y1 = max(last.x1, cell.x1), min(last.y0, cell.y0), max(last.y1, cell.y1)
            else:
                merged.append(cell)
        row.cells = merged
        result.append(row)
    return result


def _close(upper: _Row, lower: _Row) -> bool:
    return upper.bottom - lower.top <= _MAX_ROW_GAP * max(upper.height, lower.height)


def _short_cells(rows: list[_Row]) -> bool:
    """Short cells overall, at most one column of long ones, and no running text.

    Two columns of long cells, or a column whose lines mostly go on a sentence (they begin
    in lower case), are prose set in columns beside something else, not a table.
    """
    texts_all = [cell.text for row in rows for cell in row.cells]
    if median(map(len, texts_all)) > _MAX_MEDIAN_CELL:
        return False
    if sum(text[:1].islower() for text in texts_all) >= _LOWER_TABLE_SHARE * len(texts_all):
        return False  # words of a widely spaced sentence, not cells
    columns = _columns(rows)
    if columns is None:
        return True
    texts: list[list[str]] = [[] for _ in columns]
    for row in rows:
        for cell in row.cells:
            texts[_column_of(cell, columns)].append(cell.text)
    long = sum(median(map(len, column)) > _MAX_MEDIAN_CELL for column in texts)
    return long <= 1 and not any(_running_text(column) for column in texts)


def _running_text(texts: list[str]) -> bool:
    lower = sum(text[:1].islower() for text in texts)
    return len(texts) >= 2 and lower >= _RUNNING_SHARE * len(texts) and median(map(len, texts)) > _RUNNING_MIN_CHARS


def _columns(rows: list[_Row]) -> list[tuple[float, float]] | None:
    """The table's columns as merged x-ranges, or None where a row has two cells in one column."""
    columns: list[tuple[float, float]] = []
    for cell in sorted((cell for row in rows for cell in row.cells), key=lambda c: c.x0):
        if columns and cell.x0 <= columns[-1][1]:
            columns[-1] = (columns[-1][0], max(columns[-1][1], cell.x1))
        else:
            columns.append((cell.x0, cell.x1))
    for row in rows:
        slots = [_column_of(cell, columns) for cell in row.cells]
        if len(set(slots)) < len(slots):
            return None
    return columns


def _column_of(cell: _Cell, columns: list[tuple[float, float]]) -> int:
    return next(i for i, (x0, x1) in enumerate(columns) if x0 <= cell.x0 <= x1)
