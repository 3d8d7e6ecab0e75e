"""Access lists: allow and deny entries of one source object, and the rule they obey.

A chunk is readable iff its allow list meets the caller's keys and its deny list
does not. An empty allow list means nobody: there is no "public" default.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AccessList:
    """The effective access list of a document, as tenant-qualified keys."""

    allow: frozenset[str] = field(default_factory=frozenset)
    deny: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_empty(self) -> bool:
        """True when nobody can read the object (no allow entry at all)."""
        return not self.allow

    def permits(self, keys: frozenset[str]) -> bool:
        """The reference rule; the index filter must agree with it exactly."""
        return bool(self.allow & keys) and not (self.deny & keys)

    def fingerprint(self) -> str:
        """A stable hash, so an ACL-only change is detected without re-reading content."""
        canonical = json.dumps({"allow": sorted(self.allow), "deny": sorted(self.deny)}, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def nobody(cls) -> AccessList:
        return cls()
