"""The sample corpus's document model and the content files it is read from.

A content file is ``samples/content/<source>/<path>.md``: it becomes the corpus
document ``<source>/<path>`` (the extension before ``.md`` picks the format).
It starts with a front-matter block of ``key: value`` lines between ``---``
lines (a value in double quotes is a JSON string), then the body markup that
:func:`parse_body` reads.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

KEYS = ("title", "author", "date", "from", "to", "cc", "sent", "message-id")


@dataclass(frozen=True)
class Table:
    """A table with a header row; in a workbook, one sheet."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def widths(self) -> list[int]:
        """The length of the longest cell of each column, header included."""
        return [max(len(row[i]) for row in (self.header, *self.rows)) for i in range(len(self.header))]


@dataclass(frozen=True)
class Bullets:
    """A bulleted list."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Lines:
    """Lines kept as they are (an e-mail signature)."""

    items: tuple[str, ...]


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

    @property
    def fmt(self) -> str:
        return self.path.rsplit(".", 1)[1]

    @property
    def timestamp(self) -> dt.datetime:
        return dt.datetime(self.date.year, self.date.month, self.date.day, 9, 0, tzinfo=dt.UTC)


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
    new_page = next_new_page = False
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

    for raw in source.splitlines():
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


def split_front_matter(text: str, origin: str) -> tuple[dict[str, str], str]:
    """Split a content file into its front-matter values and its body."""
    head, found, body = text.removeprefix("---\n").partition("\n---\n")
    if not text.startswith("---\n") or not found:
        raise ValueError(f"{origin}: a content file starts with a --- front-matter block")
    meta: dict[str, str] = {}
    for line in head.splitlines():
        key, colon, value = line.partition(":")
        if not colon or key.strip() in meta:
            raise ValueError(f"{origin}: bad front-matter line {line!r}")
        value = value.strip()
        meta[key.strip()] = json.loads(value) if value.startswith('"') else value
    if set(meta) - set(KEYS):
        raise ValueError(f"{origin}: unknown keys {sorted(set(meta) - set(KEYS))}; known keys are {KEYS}")
    return meta, body


def load_document(file: Path, path: str) -> Document:
    """Read one content file as the corpus document ``path``; ``from`` makes it a mail."""
    meta, body = split_front_matter(file.read_text(encoding="utf-8"), str(file))
    try:
        mail = None
        if "from" in meta:
            sent = dt.datetime.fromisoformat(meta["sent"])
            mail = Mail(meta["from"], meta["to"], sent, meta["message-id"], meta.get("cc"))
        date = dt.date.fromisoformat(meta["date"])
        return Document(path, meta["title"], meta["author"], date, parse_body(body), mail)
    except KeyError as missing:
        raise ValueError(f"{file}: front matter needs {missing}") from None


def load_documents(content_dir: Path) -> tuple[Document, ...]:
    """Every document under ``content_dir``, ordered by corpus path."""
    files = sorted(content_dir.rglob("*.md"))
    return tuple(load_document(f, f.relative_to(content_dir).as_posix().removesuffix(".md")) for f in files)


def source_text(document: Document) -> str:
    """All text of a document, as written in its content file."""
    parts = [document.title]
    for section in document.sections:
        if section.heading:
            parts.append(section.heading)
        for block in section.blocks:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Bullets | Lines):
                parts.extend(block.items)
            else:
                parts.append(" ".join(block.header))
                parts.extend(" ".join(row) for row in block.rows)
    return "\n".join(parts)
