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

Limits (:class:`ParseLimits`): the checks that need no separate process live here,
so the in-process parser and :class:`ingest.parse.sandbox.IsolatedParser` (which runs
this same function in a worker) refuse the same files with the same reasons. A zip
package (Office, OpenDocument, EPUB) is refused from its central directory alone,
before any parser inflates it, when its declared uncompressed size or its compression
ratio is over the limit; a PDF with more pages than ``max_pages`` is refused from its
page tree before layout analysis (which then reads no more than that many pages); a
document whose extracted text is longer than ``max_text_chars`` is refused after
parsing, since its chunk count, and so its embedding time, grows with that length.
Time and memory can only be bounded from outside the parsing process: those two
limits are applied by the isolated parser alone.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final

from core.errors import DocumentParseError
from ingest.parse.elements import ParsedDocument
from ingest.parse.pdf import parse_pdf
from ingest.parse.unstructured_formats import OOXML_SUFFIXES, UNSTRUCTURED_SUFFIXES, parse_with_unstructured

SUPPORTED_SUFFIXES: Final[frozenset[str]] = frozenset({*UNSTRUCTURED_SUFFIXES, ".pdf"})
# Formats that are zip packages, whose parsers inflate every part they read.
ZIP_SUFFIXES: Final[frozenset[str]] = frozenset({*OOXML_SUFFIXES, ".odt", ".epub"})

_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAX_REASON: Final = 200
_MB: Final = 1_000_000
# Below this declared size a high compression ratio is harmless (and common: a few MB of
# EMF drawings or styles compress 100-600:1 in real Office files), so the ratio is not checked.
_RATIO_FLOOR_BYTES: Final = 10 * _MB


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds on the work one document may cause.

    ``time_limit_s`` and ``memory_limit_bytes`` bound one parse in the worker process of
    :class:`ingest.parse.sandbox.IsolatedParser` (``RLIMIT_AS``, so the limit is on the
    worker's whole address space, imported libraries included); the in-process
    :func:`parse_document` cannot enforce them. The other limits are checked by
    :func:`parse_document` wherever it runs.

    ``max_compression_ratio`` is checked only for packages that declare more than 10 MB.
    ``max_text_chars`` bounds the extracted text, and with it the number of chunks to
    embed (about one per ``max_chunk_chars``, 1,000 by default).
    """

    time_limit_s: float = 120.0
    memory_limit_bytes: int = 2 * 1024**3
    max_decompressed_bytes: int = 200 * _MB
    max_compression_ratio: float = 100.0
    max_pages: int = 2_000
    max_text_chars: int = 10_000_000

    def __post_init__(self) -> None:
        for limit in fields(self):
            if getattr(self, limit.name) <= 0:
                raise ValueError(f"ParseLimits.{limit.name} must be positive")


DEFAULT_LIMITS: Final = ParseLimits()


def parse_document(path: Path, limits: ParseLimits = DEFAULT_LIMITS) -> ParsedDocument:
    """Parse ``path`` into a title and elements, or raise :class:`DocumentParseError`.

    Applies the size, ratio, page and text limits of ``limits`` (not its time and memory
    limits: see :class:`ParseLimits`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentParseError(f"unsupported file type {suffix or '(none)'}")
    try:
        head = _read_head(path)
        if not head:
            raise DocumentParseError("no text found")
        if suffix == ".pdf":
            document = parse_pdf(path, max_pages=limits.max_pages)
        else:
            if suffix in OOXML_SUFFIXES and head.startswith(_OLE_MAGIC):
                raise DocumentParseError("encrypted or legacy binary Office file")
            if suffix in ZIP_SUFFIXES:
                _check_package(path, suffix, limits)
            document = parse_with_unstructured(path, suffix)
    except DocumentParseError:
        raise
    except Exception as exc:  # one bad file must never stop a job
        raise DocumentParseError(_reason_for(exc, path)) from exc
    if not document.elements:
        if suffix == ".pdf":
            raise DocumentParseError("no extractable text (scanned PDF? OCR is not available)")
        raise DocumentParseError("no text found")
    text_chars = sum(len(element.text) for element in document.elements)
    if text_chars > limits.max_text_chars:
        raise DocumentParseError(
            f"extracted text exceeds the limit ({text_chars:,} characters, limit {limits.max_text_chars:,})"
        )
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


def _check_package(path: Path, suffix: str, limits: ParseLimits) -> None:
    """Refuse a zip package that is not one, or that would inflate past the limits.

    Reads only the central directory: the sizes it declares are what Python's zipfile
    (and so python-docx, python-pptx and openpyxl) will inflate at most, since it stops
    at the declared size of each member. Pandoc (.odt, .epub) inflates with its own
    reader, which only the isolated parser's memory limit bounds. (A password-protected
    .docx/.xlsx/.pptx is not a zip at all but an OLE compound file; the caller refuses
    those first.)
    """
    try:
        with zipfile.ZipFile(path) as package:
            members = package.infolist()
    except zipfile.BadZipFile:
        raise DocumentParseError("corrupt or truncated file: not a zip archive") from None
    if suffix in OOXML_SUFFIXES and not any(member.filename == "[Content_Types].xml" for member in members):
        raise DocumentParseError("corrupt or truncated file: not an Office package")
    inflated = sum(member.file_size for member in members)
    if inflated > limits.max_decompressed_bytes:
        raise DocumentParseError(
            f"decompressed size exceeds the limit ({inflated / _MB:,.0f} MB, "
            f"limit {limits.max_decompressed_bytes / _MB:,.0f} MB)"
        )
    compressed = max(sum(member.compress_size for member in members), 1)
    if inflated > _RATIO_FLOOR_BYTES and inflated / compressed > limits.max_compression_ratio:
        raise DocumentParseError(
            f"compression ratio exceeds the limit ({inflated / compressed:,.0f}:1, "
            f"limit {limits.max_compression_ratio:,.0f}:1)"
        )


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
