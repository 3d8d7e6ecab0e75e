"""Clearance: permission-aware retrieval-augmented answers over enterprise documents."""

__version__ = "0.1.0"
