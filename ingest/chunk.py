"""Chunking: parsed elements -> passages that keep their section title and page.

A chunk never spans two sections or two pages (slides, sheets), so a citation
can always name one section and one page. Long elements are split at sentence
boundaries, then at words.
"""

from __future__ import annotations

import re

from core.records import ChunkDraft
from ingest.parse.elements import ElementKind, ParsedDocument, ParsedElement
from ingest.parse.tables import is_row_table

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MAX_SECTION_CHARS = 200


def chunk_document(document: ParsedDocument, *, max_chars: int = 1000) -> list[ChunkDraft]:
    """Group consecutive elements of one section and page into chunks of at most ``max_chars``."""
    chunks: list[ChunkDraft] = []
    section: str | None = None
    buffer: list[str] = []
    buffer_page: tuple[int | None, str | None] = (None, None)

    def flush() -> None:
        if buffer:
            chunks.append(
                ChunkDraft(text="\n".join(buffer), section=section, page=buffer_page[0], page_name=buffer_page[1])
            )
            buffer.clear()

    for element in document.elements:
        text = element.text.strip()
        if not text:
            continue
        page = (element.page, element.page_name)
        if element.kind is ElementKind.TITLE and len(text) <= _MAX_SECTION_CHARS:
            flush()
            section = text
            buffer_page = page
            continue
        if page != buffer_page:
            flush()
            buffer_page = page
        if element.kind is ElementKind.TABLE and is_row_table(text):
            # A table's chunks hold only its rows, each chunk under the header row, so that every row can be
            # read with its column names (and no other table's rows run into it).
            flush()
            for piece in _split_table(text, max_chars):
                buffer.append(piece)
                flush()
            continue
        for piece in _split(text, max_chars):
            if buffer and sum(len(b) + 1 for b in buffer) + len(piece) > max_chars:
                flush()
            buffer.append(piece)
    flush()
    if not chunks and section:
        # A document made only of headings (a title slide, say) is still findable.
        chunks.append(ChunkDraft(text=section, section=section, page=buffer_page[0], page_name=buffer_page[1]))
    return chunks


def _split(text: str, max_chars: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        for part in _hard_split(sentence, max_chars):
            if current and len(current) + 1 + len(part) > max_chars:
                pieces.append(current)
                current = part
            else:
                current = f"{current} {part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _split_table(text: str, max_chars: int) -> list[str]:
    """Row lines in pieces of at most ``max_chars`` (a longer row is cut at words), each under the header row."""
    header, *rows = text.splitlines()
    if len(text) <= max_chars or not rows:
        return [text]
    budget = max(max_chars - len(header) - 1, max_chars // 2)  # a very wide header still leaves room for rows
    pieces: list[str] = []
    current: list[str] = []
    for row in rows:
        for part in _hard_split(row, budget):
            if current and sum(len(r) + 1 for r in current) + len(part) > budget:
                pieces.append("\n".join([header, *current]))
                current = []
            current.append(part)
    if current:
        pieces.append("\n".join([header, *current]))
    return pieces


def _hard_split(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    words, parts, current = sentence.split(), [], ""
    for word in words:
        while len(word) > max_chars:  # a single unbroken token (base64, a URL) longer than a chunk
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:max_chars])
            word = word[max_chars:]
        if current and len(current) + 1 + len(word) > max_chars:
            parts.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        parts.append(current)
    return parts


def embedding_text(*, title: str, chunk: ChunkDraft) -> str:
    """What is embedded: title and section give a passage its context; ACLs never are."""
    header = " | ".join(part for part in (title, chunk.section) if part)
    return f"{header}\n{chunk.text}" if header else chunk.text


__all__ = ["ParsedElement", "chunk_document", "embedding_text"]
