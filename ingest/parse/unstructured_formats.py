"""The `unstructured` partitioners for office, web, e-mail and text formats.

One module per format, imported lazily. Before the first partition the
offline switches of :mod:`ingest.parse.offline_nlp` are installed (telemetry
off, no spaCy model download), at first use rather than at import, so that
importing the parsing package changes no process-wide state.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final
from xml.etree import ElementTree

from ingest.parse.elements import ElementKind, ParsedDocument, ParsedElement
from ingest.parse.offline_nlp import ensure_offline
from ingest.parse.pdf import clean_text as _clean
from ingest.parse.tables import html_table_rows, rows_text

OOXML_SUFFIXES: Final = frozenset({".docx", ".pptx", ".pptm", ".xlsx", ".xlsm"})
_TEXT_TABLE_SUFFIXES: Final = frozenset({".csv", ".tsv"})
# ``infer_table_structure`` gives each table's cells as HTML (no model involved for these formats): rows are kept
# as rows with their headers (see ingest/parse/tables.py) rather than flattened into one run of words.
_XLSX: Final[dict[str, Any]] = {
    "find_subtable": False,
    "include_header": True,
    "infer_table_structure": True,
}
_PPTX: Final[dict[str, Any]] = {"infer_table_structure": True}
_DELIMITED: Final[dict[str, Any]] = {"include_header": True, "infer_table_structure": True}
# Each suffix -> (module, function) of the `unstructured` partitioner, plus keyword
# arguments. E-mail attachments are separate files in their own right and are not
# followed; xlsx sheets come back whole, one table per sheet.
_PARTITIONERS: Final[dict[str, tuple[str, str, dict[str, Any]]]] = {
    ".docx": ("unstructured.partition.docx", "partition_docx", {"infer_table_structure": True}),
    ".pptx": ("unstructured.partition.pptx", "partition_pptx", _PPTX),
    ".pptm": ("unstructured.partition.pptx", "partition_pptx", _PPTX),
    ".xlsx": ("unstructured.partition.xlsx", "partition_xlsx", _XLSX),
    ".xlsm": ("unstructured.partition.xlsx", "partition_xlsx", _XLSX),
    # Legacy binary workbooks: the same partitioner reads them through xlrd.
    ".xls": ("unstructured.partition.xlsx", "partition_xlsx", _XLSX),
    ".html": ("unstructured.partition.html", "partition_html", {}),
    ".htm": ("unstructured.partition.html", "partition_html", {}),
    ".md": ("unstructured.partition.md", "partition_md", {}),
    ".markdown": ("unstructured.partition.md", "partition_md", {}),
    ".eml": ("unstructured.partition.email", "partition_email", {"process_attachments": False}),
    ".msg": ("unstructured.partition.msg", "partition_msg", {"process_attachments": False}),
    ".txt": ("unstructured.partition.text", "partition_text", {}),
    ".csv": ("unstructured.partition.csv", "partition_csv", _DELIMITED),
    # Converted to HTML by pandoc (the binary ships in the pypandoc-binary wheel).
    ".rtf": ("unstructured.partition.rtf", "partition_rtf", {}),
    ".odt": ("unstructured.partition.odt", "partition_odt", {}),
    ".epub": ("unstructured.partition.epub", "partition_epub", {}),
    ".rst": ("unstructured.partition.rst", "partition_rst", {}),
    ".org": ("unstructured.partition.org", "partition_org", {}),
    ".tsv": ("unstructured.partition.tsv", "partition_tsv", _DELIMITED),
}
UNSTRUCTURED_SUFFIXES: Final[frozenset[str]] = frozenset(_PARTITIONERS)
# `unstructured` detects each document's language with langdetect (``languages=["auto"]``)
# only to fill ``metadata.languages``, which nothing here reads (its title/text
# classification does not use it); ``[""]`` is its "skip detection" value. Detection was
# two thirds of the parse time of short .md/.txt/.eml files (in-process on two busy
# cores: 30 files/s with it, 105 without), and took seconds on long word salad.
_NO_LANGUAGE: Final[dict[str, Any]] = {"languages": [""]}
_SENTENCE_END: Final = (".", "!", ",", ";")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_CORE_TITLE = "{http://purl.org/dc/elements/1.1/}title"
# Titles an Office application fills in by itself; they say nothing about the document.
_APP_DEFAULT_TITLE = re.compile(r"PowerPoint Presentation|Slide \d+", re.IGNORECASE)


# -- unstructured formats -------------------------------------------------------------


def parse_with_unstructured(path: Path, suffix: str) -> ParsedDocument:
    """Partition ``path`` with the `unstructured` partitioner of its suffix."""
    import importlib

    ensure_offline()  # before `unstructured` is first imported: no telemetry, no model download

    module_name, function_name, options = _PARTITIONERS[suffix]
    partition: Callable[..., list[Any]] = getattr(importlib.import_module(module_name), function_name)
    if suffix in _TEXT_TABLE_SUFFIXES:
        # The table readers cannot stream UTF-16 and friends: decode as the text
        # readers do and hand them UTF-8.
        text = _detect_encoding(path)[1].lstrip("\ufeff")
        raw = partition(file=io.BytesIO(text.encode("utf-8")), encoding="utf-8", **_NO_LANGUAGE, **options)
    else:
        raw = partition(filename=str(path), **_NO_LANGUAGE, **options)
    elements = tuple(_convert(raw))
    title = _declared_title(path, suffix, raw)
    if title is None:
        title = next((e.text for e in elements if e.kind is ElementKind.TITLE), None)
    return ParsedDocument(title=title, elements=elements)


def _convert(raw: Iterable[Any]) -> Iterator[ParsedElement]:
    for element in raw:
        text = _clean(getattr(element, "text", "") or "")
        if not text:
            continue
        metadata = element.metadata
        if element.category == "Table":
            text = _table_text(getattr(metadata, "text_as_html", None)) or text
        yield ParsedElement(
            kind=_kind_of(element.category, text),
            text=text,
            page=metadata.page_number,
            page_name=metadata.page_name,
        )


def _table_text(html: str | None) -> str:
    """A table's rows as ``a | b`` lines, header first; empty when the partitioner gave no cells."""
    if not html:
        return ""
    rows = [[_clean(cell) for cell in row] for row in html_table_rows(html)]
    return rows_text([row for row in rows if any(row)])


def _kind_of(category: str, text: str) -> ElementKind:
    if category == "Title":
        return ElementKind.TEXT if text.endswith(_SENTENCE_END) else ElementKind.TITLE
    if category == "ListItem":
        return ElementKind.LIST_ITEM
    if category == "Table":
        return ElementKind.TABLE
    return ElementKind.TEXT


def _declared_title(path: Path, suffix: str, raw: list[Any]) -> str | None:
    """The title a format itself declares, where it has one."""
    if suffix in OOXML_SUFFIXES:
        return _ooxml_core_title(path)
    if suffix in {".html", ".htm"}:
        return _html_title(path)
    if suffix in {".eml", ".msg"}:
        subjects = (_clean(e.metadata.subject or "") for e in raw)
        return next((subject for subject in subjects if subject), None)
    return None


def _ooxml_core_title(path: Path) -> str | None:
    """``dc:title`` from the package's core properties (``docProps/core.xml``)."""
    try:
        with zipfile.ZipFile(path) as package:
            root = ElementTree.fromstring(package.read("docProps/core.xml"))
    except (KeyError, zipfile.BadZipFile, ElementTree.ParseError, OSError):
        return None
    node = root.find(_CORE_TITLE)
    title = _clean(node.text or "") if node is not None else ""
    if not title or _APP_DEFAULT_TITLE.fullmatch(title):
        return None
    return title


def _html_title(path: Path) -> str | None:
    import html

    _, text = _detect_encoding(path)
    match = _HTML_TITLE.search(text)
    return (_clean(html.unescape(match.group(1))) or None) if match else None


def _detect_encoding(path: Path) -> tuple[str, str]:
    """The file's text encoding and its decoded text, as `unstructured` detects them."""
    from unstructured.file_utils.encoding import detect_file_encoding

    with warnings.catch_warnings():
        # A guess among similar single-byte encodings is normal here, not worth a warning.
        warnings.simplefilter("ignore")
        encoding, text = detect_file_encoding(filename=str(path))
    return encoding, text
