"""Tables as rows: the HTML `unstructured` gives for a table, turned into ``a | b | c`` lines.

A table flattened to its words ("Topic Team Contact Payroll and pay slips Finance
payroll@...") loses which cell belongs to which column: a chunk of it cannot say
"Contact: payroll@..." for "Payroll and pay slips", and an answer drawn from it
can only quote the whole sheet. Kept as one line per row, with the header row
first (the shape the PDF parser gives its tables), each row can be read and cited
with its headers; :func:`ingest.chunk.chunk_document` repeats the header row in
every chunk of a long table.
"""

from __future__ import annotations

from html.parser import HTMLParser

CELL_SEPARATOR = " | "
# A cell's own "|" would read as a column boundary.
_SEPARATOR_STAND_IN = "/"


class _TableRows(HTMLParser):
    """Collects the text of each ``<td>``/``<th>`` by ``<tr>``; nested tables add their cells to the row they sit in."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._end_row()
            self._row = []
        elif tag in ("td", "th"):
            self._end_cell()
            if self._row is None:
                self._row = []
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._end_cell()
        elif tag in ("tr", "table"):
            self._end_row()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def close(self) -> None:
        super().close()
        self._end_row()

    def _end_cell(self) -> None:
        if self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
        self._cell = None

    def _end_row(self) -> None:
        self._end_cell()
        if self._row is not None and any(self._row):
            self.rows.append(self._row)
        self._row = None


def html_table_rows(html: str) -> list[list[str]]:
    """The non-empty rows of an HTML table, each a list of its cells' text (whitespace collapsed)."""
    parser = _TableRows()
    parser.feed(html)
    parser.close()
    return parser.rows


def rows_text(rows: list[list[str]]) -> str:
    """One line per row, cells joined by `` | `` (a one-column table: one cell per line, as prose)."""
    width = max((len(row) for row in rows), default=0)
    lines = []
    for row in rows:
        cells = [cell.replace("|", _SEPARATOR_STAND_IN) for cell in row]
        if width > 1:
            cells += [""] * (width - len(cells))  # short rows keep their cells under the right headers
        lines.append(CELL_SEPARATOR.join(cells) if width > 1 else cells[0])
    return "\n".join(lines)


def is_row_table(text: str) -> bool:
    """Whether ``text`` is a table in row lines (every line holds a cell separator, and there are two or more)."""
    lines = text.splitlines()
    return len(lines) >= 2 and all("|" in line for line in lines)
