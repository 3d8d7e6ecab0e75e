"""Parsing: one file in, a format-independent :class:`ParsedDocument` out, or a per-file error."""

from ingest.parse.elements import ElementKind, ParsedDocument, ParsedElement
from ingest.parse.registry import SUPPORTED_SUFFIXES, parse_document

__all__ = ["SUPPORTED_SUFFIXES", "ElementKind", "ParsedDocument", "ParsedElement", "parse_document"]
