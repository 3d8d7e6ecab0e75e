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

import zipfile
from pathlib import Path
from typing import Final

from core.errors import DocumentParseError
from ingest.parse.elements import ParsedDocument
from ingest.parse.pdf import parse_pdf
from ingest.parse.unstructured_formats import OOXML_SUFFIXES, UNSTRUCTURED_SUFFIXES, parse_with_unstructured

SUPPORTED_SUFFIXES: Final[frozenset[str]] = frozenset({*UNSTRUCTURED_SUFFIXES, ".pdf"})

_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAX_REASON: Final = 200


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
            if suffix in OOXML_SUFFIXES:
                _check_ooxml(path, head)
            document = parse_with_unstructured(path, suffix)
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
