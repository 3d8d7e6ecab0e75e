"""The store's failure as a domain error (defined in the one tree, ``core/errors.py``)."""

from __future__ import annotations

from core.errors import StoreUnavailableError as StoreUnavailableError

__all__ = ["StoreUnavailableError"]
