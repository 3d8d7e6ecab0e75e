"""Retrieval: the permission-filtered index, answer generation and citation checking."""
