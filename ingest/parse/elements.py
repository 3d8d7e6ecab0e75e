"""The parsed shape of a document, independent of its file format."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ElementKind(StrEnum):
    """What a piece of parsed text is, as far as chunking cares."""

    TITLE = "title"
    TEXT = "text"
    LIST_ITEM = "list_item"
    TABLE = "table"


@dataclass(frozen=True, slots=True)
class ParsedElement:
    """One block of text from a document, with where it came from.

    ``page`` is the page of a PDF, the slide of a presentation or the 1-based
    sheet index of a workbook; ``page_name`` carries the sheet name where there
    is one. Both are ``None`` for formats without pages.
    """

    kind: ElementKind
    text: str
    page: int | None = None
    page_name: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A document's title (when the format carries one) and its elements in order."""

    title: str | None
    elements: tuple[ParsedElement, ...]
