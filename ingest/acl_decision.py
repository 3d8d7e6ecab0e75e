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

Every decision also records where it came from (:class:`AclOrigins` on
:class:`Granted`, the broken manifests on :class:`Nobody`), computed in the
same pass that makes it, so explain-access (:mod:`ingest.explain`) can never
tell a story that differs from what ingestion stored. Origins never take part
in equality: two decisions with the same ACL are the same decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
    # The manifest's path relative to the source root: reported by explanations, never part of a decision.
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """A manifest that exists (or may exist) but cannot be trusted; ``reason`` names it."""

    reason: str
    # The file (or folder) at fault, relative to the source root; for explanations only.
    source: str = field(default="", compare=False)


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


class Effect(StrEnum):
    """Which list of an access list an entry sits in."""

    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class EntryOrigin:
    """One entry of an effective ACL and the manifests of the chain that name it, root first."""

    effect: Effect
    key: str
    manifests: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AclOrigins:
    """Where an effective ACL came from.

    ``chain`` lists the manifests that were combined, root first: the deepest one
    that replaces what is above it, then every ``"inherit": true`` manifest below
    it. ``replaced`` lists the manifests above the chain whose entries it dropped.
    """

    chain: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    entries: tuple[EntryOrigin, ...] = ()

    def manifests_of(self, effect: Effect, key: str) -> tuple[str, ...]:
        """The manifests that name ``key`` in ``effect`` (empty when the ACL does not hold it)."""
        for entry in self.entries:
            if entry.effect is effect and entry.key == key:
                return entry.manifests
        return ()


@dataclass(frozen=True, slots=True)
class Granted:
    """The manifests were read and combined: this is the file's access list."""

    acl: AccessList
    warnings: tuple[str, ...] = ()
    origins: AclOrigins = field(default_factory=AclOrigins, compare=False)


@dataclass(frozen=True, slots=True)
class Nobody:
    """The file is visible to nobody, and why."""

    cause: NobodyCause
    reason: str
    # For MANIFEST_ERROR: every broken manifest on the way, each with its file (explanations only).
    problems: tuple[ManifestProblem, ...] = field(default=(), compare=False)


AclDecision = Granted | Nobody


def decide_acl(*, kind: EntryKind, levels: Sequence[LevelReading] = (), detail: str = "") -> AclDecision:
    """The decision for one entry; ``levels`` are the manifests found from the root down, sidecar last.

    ``detail`` adds context to a refusal (for example the OS error of an unreadable file).
    """
    if kind is not EntryKind.REGULAR_FILE:
        reason = _ENTRY_REASONS[kind] + (f" ({detail})" if detail else "")
        return Nobody(cause=NobodyCause(kind.value), reason=reason)
    problems = tuple(level for level in levels if isinstance(level, ManifestProblem))
    if problems:
        # Any broken level wins over every valid one, deeper or not: its intent is unknown.
        return Nobody(
            cause=NobodyCause.MANIFEST_ERROR,
            reason="ACL manifest error, not indexed: " + "; ".join(problem.reason for problem in problems),
            problems=problems,
        )
    combined = _combine([level for level in levels if isinstance(level, ManifestLevel)])
    if combined is None:
        return Nobody(cause=NobodyCause.NO_MANIFEST, reason=NO_ACL_WARNING)
    acl, origins = combined
    return Granted(acl=acl, warnings=_never_matching(acl), origins=origins)


def stored_acl(decision: AclDecision) -> AccessList:
    """The ACL written with a file's chunks: the granted one, or nobody."""
    return decision.acl if isinstance(decision, Granted) else AccessList.nobody()


def held_acl(*, allow: Iterable[str], deny: Iterable[str]) -> AccessList:
    """The ACL an index payload holds, so that explanations judge it with :meth:`AccessList.permits`.

    Reporting only: what a file's chunks carry is decided by :func:`decide_acl` alone.
    """
    return AccessList(allow=frozenset(allow), deny=frozenset(deny))


def _combine(levels: Sequence[ManifestLevel]) -> tuple[AccessList, AclOrigins] | None:
    # The chain is what the ACL is made of, so the ACL and its origins come from one list and cannot differ:
    # a level that does not inherit (or has no parent) starts the chain again, one that inherits joins it.
    chain: list[ManifestLevel] = []
    replaced: list[str] = []
    for level in levels:
        if not (level.inherit and chain):
            replaced.extend(earlier.source for earlier in chain)
            chain = []
        chain.append(level)
    if not chain:
        return None
    acl = AccessList(
        allow=frozenset[str]().union(*(level.allow for level in chain)),
        deny=frozenset[str]().union(*(level.deny for level in chain)),
    )
    entries = tuple(
        EntryOrigin(
            effect=effect,
            key=key,
            manifests=tuple(level.source for level in chain if key in (level.allow if allowed else level.deny)),
        )
        for effect, keys, allowed in ((Effect.ALLOW, acl.allow, True), (Effect.DENY, acl.deny, False))
        for key in sorted(keys)
    )
    origins = AclOrigins(chain=tuple(level.source for level in chain), replaced=tuple(replaced), entries=entries)
    return acl, origins


def _never_matching(acl: AccessList) -> tuple[str, ...]:
    # A valid manifest can still admit nobody; the admin should hear about it.
    if acl.is_empty:
        return (EMPTY_ALLOW_WARNING,)
    if acl.allow <= acl.deny:
        return (ALL_DENIED_WARNING,)
    return ()
