"""Ingestion: sources -> parse -> chunk -> embed -> index, with the ACL on every chunk."""
