"""The one domain exception tree of Clearance.

Every error a caller can cause or observe is a subclass of :class:`ClearanceError`.
`api/` maps each class to an HTTP status and a fixed, safe title in one place; the
message of an exception is for logs and operators and is never echoed to a client
unless the class marks it as ``public``.

This module is a leaf: it imports nothing of ours, so every package may use it.

ClearanceError
├── AuthenticationError        401: missing, malformed, unverifiable or disallowed token
├── AuthorizationError         403: a valid caller lacks the role a route needs
├── AccessDeniedError          the security filter could not be built (no principals):
│                              fail closed, never search unfiltered
├── NotFoundError              404: job, document or route target unknown
├── InvalidInputError          422: a request or manifest that is not acceptable
│   └── ManifestError          an `.acl.json` that cannot be read or is malformed
├── DocumentParseError         one file could not be parsed (a job error line, not a crash)
├── IndexUnavailableError      503: the vector index cannot be reached or opened
├── StoreUnavailableError      503: the state store cannot be reached or written
├── GroupResolutionError       group overage could not be resolved (caller narrows)
├── GenerationError            the model failed (timeout, transport, empty output)
└── ModelBusyError             503 + Retry-After: the model's waiting line is full, or a
                               request waited in it longer than the bound
"""

from __future__ import annotations


class ClearanceError(Exception):
    """Base of every Clearance error.

    ``public`` says whether the message is written for an end user and may be
    shown to them; by default it is not.
    """

    public: bool = False


class AuthenticationError(ClearanceError):
    """The caller could not be authenticated."""


class AuthorizationError(ClearanceError):
    """The caller is authenticated but lacks a required role."""


class AccessDeniedError(ClearanceError):
    """No security filter can be built for this caller, so nothing may be searched."""


class NotFoundError(ClearanceError):
    """A named object does not exist (or is not visible to the caller)."""

    public = True


class InvalidInputError(ClearanceError):
    """Input that cannot be accepted; the message says which part and why."""

    public = True


class ManifestError(InvalidInputError):
    """An ACL manifest (`.acl.json`) is unreadable or malformed."""


class DocumentParseError(ClearanceError):
    """A single document could not be turned into text.

    ``reason`` is a short, stable, human-readable explanation recorded in the
    ingestion job (for example "encrypted PDF (password required)").
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IndexUnavailableError(ClearanceError):
    """The vector index cannot be reached or opened."""


class StoreUnavailableError(ClearanceError):
    """The state store cannot be reached or written: answers are refused (503), never returned unaudited."""


class GroupResolutionError(ClearanceError):
    """Group membership could not be resolved; callers must narrow, not widen."""


class GenerationError(ClearanceError):
    """The answer generator failed (transport, timeout, or unusable output)."""


class ModelBusyError(ClearanceError):
    """The model cannot take this request within the waiting bound; try again after ``retry_after`` seconds."""

    public = True

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"The model is busy with other questions; try again in {retry_after} s.")
        self.retry_after = retry_after
