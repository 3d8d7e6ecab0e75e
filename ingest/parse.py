"""Turn one file into a :class:`ParsedDocument`, offline, or fail with a clear reason.

Office, web, e-mail and text formats go through the `unstructured` partitioners
(imported lazily, one module per format); PDFs are read with pdfminer.six's
layout analysis. Every failure becomes a :class:`DocumentParseError` whose
``reason`` is short and stable, so an ingestion job records one line per bad
file and carries on.

Element kinds: `unstructured`'s ``Title`` -> TITLE, ``ListItem`` -> LIST_ITEM,
``Table`` -> TABLE, anything else with text -> TEXT. Without a trained spaCy
model (see :mod:`ingest.offline_nlp`) `unstructured` sees only auxiliary verbs,
so a short sentence may come back as a ``Title``; one that ends like a sentence
(``.``, ``!``, ``,`` or ``;``) is kept as TEXT instead. Workbooks give one TABLE
per sheet (page = 1-based sheet index, page_name = sheet name), slides give
page = slide number, PDFs page = page number.

PDFs: headings, text blocks and tables as :mod:`ingest.pdf_layout` finds them
(one TABLE per table, a row a line, cells joined by " | ").

Document title: the Office core property ``dc:title`` (unless it is an
application default such as "PowerPoint Presentation"), the HTML ``<title>``,
the e-mail subject, else the first TITLE element, else ``None``.
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

from clearance.errors import DocumentParseError
from ingest.elements import ElementKind, ParsedDocument, ParsedElement
from ingest.offline_nlp import ensure_offline
from ingest.pdf_layout import clean_text as _clean
from ingest.pdf_layout import parse_pdf

ensure_offline()

_OOXML_SUFFIXES: Final = frozenset({".docx", ".pptx", ".pptm", ".xlsx", ".xlsm"})
_TEXT_TABLE_SUFFIXES: Final = frozenset({".csv", ".tsv"})
_XLSX: Final[dict[str, Any]] = {
    "find_subtable": False,
    "include_header": True,
    "infer_table_structure": False,
}
_PPTX: Final[dict[str, Any]] = {"infer_table_structure": False}
_DELIMITED: Final[dict[str, Any]] = {"include_header": True, "infer_table_structure": False}
# Each suffix -> (module, function) of the `unstructured` partitioner, plus keyword
# arguments. E-mail attachments are separate files in their own right and are not
# followed; xlsx sheets come back whole, one table per sheet.
_PARTITIONERS: Final[dict[str, tuple[str, str, dict[str, Any]]]] = {
    ".docx": ("unstructured.partition.docx", "partition_docx", {"infer_table_structure": False}),
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

SUPPORTED_SUFFIXES: Final[frozenset[str]] = frozenset({*_PARTITIONERS, ".pdf"})

_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAX_REASON: Final = 200
_SENTENCE_END: Final = (".", "!", ",", ";")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_CORE_TITLE = "{http://purl.org/dc/elements/1.1/}title"
# Titles an Office application fills in by itself; they say nothing about the document.
_APP_DEFAULT_TITLE = re.compile(r"PowerPoint Presentation|Slide \d+", re.IGNORECASE)


def parse_document(path: Path) -> ParsedDocument:
    """Parse ``path`` into a title and elements, or raise :class:`DocumentParseError`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentParseError(f"unsupported file type {suffix or '(none)'}")
    try:
        head = _read_head(path)
        if not head:
            raise DocumentParseError("no text found")
        if suffix == ".pdf":
            document = parse_pdf(path)
        else:
            if suffix in _OOXML_SUFFIXES:
                _check_ooxml(path, head)
            document = _parse_with_unstructured(path, suffix)
    except DocumentParseError:
        raise
    except Exception as exc:  # one bad file must never stop a job
        raise DocumentParseError(_reason_for(exc, path)) from exc
    if not document.elements:
        if suffix == ".pdf":
            raise DocumentParseError("no extractable text (scanned PDF? OCR is not available)")
        raise DocumentParseError("no text found")
    return document


# -- checks and error reasons ---------------------------------------------------------


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(len(_OLE_MAGIC))
    except FileNotFoundError:
        raise DocumentParseError("file not found") from None
    except IsADirectoryError:
        raise DocumentParseError("not a file") from None
    except OSError as exc:
        raise DocumentParseError(f"unreadable file: {type(exc).__name__}") from None


def _check_ooxml(path: Path, head: bytes) -> None:
    """Reject what only looks like an Office Open XML file by its name.

    A password-protected .docx/.xlsx/.pptx is not a zip at all but an OLE compound
    file holding an ``EncryptedPackage`` stream; a legacy binary file renamed to the
    new suffix has the same signature.
    """
    if head.startswith(_OLE_MAGIC):
        raise DocumentParseError("encrypted or legacy binary Office file")
    try:
        with zipfile.ZipFile(path) as package:
            names = set(package.namelist())
    except zipfile.BadZipFile:
        raise DocumentParseError("corrupt or truncated file: not a zip archive") from None
    if "[Content_Types].xml" not in names:
        raise DocumentParseError("corrupt or truncated file: not an Office package")


def _reason_for(exc: Exception, path: Path) -> str:
    """A short, stable reason for an unexpected parser exception."""
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfminer.psexceptions import PSEOF

    if isinstance(exc, PDFPasswordIncorrect):
        return "encrypted PDF (password required)"
    if isinstance(exc, PDFEncryptionError):
        return "encrypted PDF (unsupported encryption)"
    if isinstance(exc, PDFSyntaxError | PSEOF):
        return "corrupt or truncated file: invalid PDF structure"
    if isinstance(exc, zipfile.BadZipFile | EOFError):
        return "corrupt or truncated file: damaged zip archive"
    if isinstance(exc, UnicodeError) or (type(exc).__name__ == "UnprocessableEntityError" and "encoding" in str(exc)):
        return "unknown text encoding"
    if type(exc).__name__ == "UnprocessableEntityError" and "password" in str(exc).lower():
        return "encrypted file (password required)"
    if type(exc).__name__ == "PackageNotFoundError":  # python-docx / python-pptx
        return "corrupt or truncated file: not an Office package"
    message = str(exc).replace(str(path), path.name).strip().splitlines()
    reason = f"parser failed: {type(exc).__name__}"
    if message:
        reason = f"{reason}: {message[0]}"
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 3] + "..."


# -- unstructured formats -------------------------------------------------------------


def _parse_with_unstructured(path: Path, suffix: str) -> ParsedDocument:
    import importlib

    module_name, function_name, options = _PARTITIONERS[suffix]
    partition: Callable[..., list[Any]] = getattr(importlib.import_module(module_name), function_name)
    if suffix in _TEXT_TABLE_SUFFIXES:
        # The table readers cannot stream UTF-16 and friends: decode as the text
        # readers do and hand them UTF-8.
        text = _detect_encoding(path)[1].lstrip("\ufeff")
        raw = partition(file=io.BytesIO(text.encode("utf-8")), encoding="utf-8", **options)
    else:
        raw = partition(filename=str(path), **options)
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
        yield ParsedElement(
            kind=_kind_of(element.category, text),
            text=text,
            page=metadata.page_number,
            page_name=metadata.page_name,
        )


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
    if suffix in _OOXML_SUFFIXES:
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
