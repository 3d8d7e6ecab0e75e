"""The one place where a file's access is decided.

:func:`decide_acl` is the only function that turns what a source saw about a
file (what kind of entry it is, and the manifests that govern it) into an
:class:`AclDecision`; nothing else in ingestion produces an :class:`AccessList`
for a file, and the pipeline acts on the decision alone. When unsure, the
decision is "nobody".

The rules (the contract of the filesystem source, see README "ACL manifests"):

- Only regular files are documents. A symbolic link (to anything, inside or
  outside the tree), a FIFO, socket or device, a name that is not valid UTF-8
  and an entry that cannot be read are never indexed: visible to nobody.
- The effective ACL is computed from the source's root down: each folder's
  ``.acl.json``, then the file's sidecar ``<file name>.acl.json``.
- A level with ``"inherit": true`` and a parent ACL adds its entries to the
  parent's (union of allow, union of deny); otherwise it replaces them.
- No manifest anywhere above the file: visible to nobody (a warning; the
  content is stored with an empty ACL).
- A broken manifest anywhere on the way (unreadable, not a regular file,
  malformed, a near-miss name) makes the file visible to nobody, even below
  deeper valid manifests (an error; the file is not indexed and any earlier
  version is removed).
- Deny beats allow: a caller may read iff allow meets the caller's keys and
  deny does not (:meth:`AccessList.permits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from acl.access import AccessList

NO_ACL_WARNING = "no ACL manifest applies: stored as visible to nobody"
EMPTY_ALLOW_WARNING = "the effective allow list is empty: visible to nobody"
ALL_DENIED_WARNING = "every allow entry is also denied: visible to nobody"


@dataclass(frozen=True, slots=True)
class ManifestLevel:
    """The entries of one manifest file, already turned into tenant-qualified keys."""

    allow: frozenset[str]
    deny: frozenset[str]
    inherit: bool


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """A manifest that exists (or may exist) but cannot be trusted; ``reason`` names it."""

    reason: str


LevelReading = ManifestLevel | ManifestProblem


class EntryKind(StrEnum):
    """What the source found at a path, judged without following links."""

    REGULAR_FILE = "regular_file"
    SYMLINK = "symlink"
    SPECIAL_FILE = "special_file"
    UNDECODABLE_NAME = "undecodable_name"
    UNREADABLE = "unreadable"


class NobodyCause(StrEnum):
    """Why a file is visible to nobody; each cause fixes what the pipeline does."""

    NO_MANIFEST = "no_manifest"
    MANIFEST_ERROR = "manifest_error"
    SYMLINK = "symlink"
    SPECIAL_FILE = "special_file"
    UNDECODABLE_NAME = "undecodable_name"
    UNREADABLE = "unreadable"

    @property
    def stores_content(self) -> bool:
        """Only a file without any manifest is indexed (with an empty ACL, as the README promises)."""
        return self is NobodyCause.NO_MANIFEST

    @property
    def is_error(self) -> bool:
        """Errors make the job ``completed_with_errors``; the rest are warnings."""
        return self in _ERROR_CAUSES

    @property
    def has_identity(self) -> bool:
        """False when the shown path is an escaped rendering that could equal another file's real path."""
        return self is not NobodyCause.UNDECODABLE_NAME


_ERROR_CAUSES = frozenset({NobodyCause.MANIFEST_ERROR, NobodyCause.UNDECODABLE_NAME, NobodyCause.UNREADABLE})
_ENTRY_REASONS = {
    EntryKind.SYMLINK: "symbolic link skipped (links are never indexed)",
    EntryKind.SPECIAL_FILE: "not a regular file (FIFO, socket or device): skipped",
    EntryKind.UNDECODABLE_NAME: "name is not valid UTF-8: not indexed (rename it)",
    EntryKind.UNREADABLE: "cannot be read: not indexed",
}


@dataclass(frozen=True, slots=True)
class Granted:
    """The manifests were read and combined: this is the file's access list."""

    acl: AccessList
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Nobody:
    """The file is visible to nobody, and why."""

    cause: NobodyCause
    reason: str


AclDecision = Granted | Nobody


def decide_acl(*, kind: EntryKind, levels: Sequence[LevelReading] = (), detail: str = "") -> AclDecision:
    """The decision for one entry; ``levels`` are the manifests found from the root down, sidecar last.

    ``detail`` adds context to a refusal (for example the OS error of an unreadable file).
    """
    if kind is not EntryKind.REGULAR_FILE:
        reason = _ENTRY_REASONS[kind] + (f" ({detail})" if detail else "")
        return Nobody(cause=NobodyCause(kind.value), reason=reason)
    problems = [level.reason for level in levels if isinstance(level, ManifestProblem)]
    if problems:
        # Any broken level wins over every valid one, deeper or not: its intent is unknown.
        return Nobody(
            cause=NobodyCause.MANIFEST_ERROR, reason="ACL manifest error, not indexed: " + "; ".join(problems)
        )
    acl = _combine([level for level in levels if isinstance(level, ManifestLevel)])
    if acl is None:
        return Nobody(cause=NobodyCause.NO_MANIFEST, reason=NO_ACL_WARNING)
    return Granted(acl=acl, warnings=_never_matching(acl))


def stored_acl(decision: AclDecision) -> AccessList:
    """The ACL written with a file's chunks: the granted one, or nobody."""
    return decision.acl if isinstance(decision, Granted) else AccessList.nobody()


def _combine(levels: Sequence[ManifestLevel]) -> AccessList | None:
    acl: AccessList | None = None
    for level in levels:
        if level.inherit and acl is not None:
            acl = AccessList(allow=acl.allow | level.allow, deny=acl.deny | level.deny)
        else:
            acl = AccessList(allow=level.allow, deny=level.deny)
    return acl


def _never_matching(acl: AccessList) -> tuple[str, ...]:
    # A valid manifest can still admit nobody; the admin should hear about it.
    if acl.is_empty:
        return (EMPTY_ALLOW_WARNING,)
    if acl.allow <= acl.deny:
        return (ALL_DENIED_WARNING,)
    return ()
