"""Parsing: one file in, a format-independent :class:`ParsedDocument` out, or a per-file error.

:func:`parse_document` parses in the calling process; :class:`IsolatedParser` runs it in
reused worker processes (one or more, each for one file at a time) under the time and
memory limits of :class:`ParseLimits`.
"""

from ingest.parse.elements import ElementKind, ParsedDocument, ParsedElement
from ingest.parse.registry import DEFAULT_LIMITS, SUPPORTED_SUFFIXES, ParseLimits, parse_document
from ingest.parse.sandbox import IsolatedParser, ParserUnavailableError

__all__ = [
    "DEFAULT_LIMITS",
    "SUPPORTED_SUFFIXES",
    "ElementKind",
    "IsolatedParser",
    "ParseLimits",
    "ParsedDocument",
    "ParsedElement",
    "ParserUnavailableError",
    "parse_document",
]
