"""Clearance inside other frameworks; each module needs its own optional extra.

* :mod:`clearance.integrations.llama_index` (``pip install 'clearance[llama-index]'``):
  a llama-index retriever of permission-trimmed nodes.

Every integration acts for one person, with that person's own identity: a
token over HTTP, or a validated principal in-process. None widens access.
"""
